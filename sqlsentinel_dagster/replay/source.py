"""Replays of an alerts file's alerts from the state database: what the CLI and the Launchpad job share.

Reads the recorded evaluations, every silence (expired ones too), the acknowledgements and when the alerts that
may inhibit each one fired (:mod:`.recorded`), and compares each alert's current settings with the proposed ones;
it only reads the database.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial

from ..baselines import MAX_SAMPLES
from ..config import AlertConfig, LoadedConfig, load_config
from ..cycle.cycles import alert_labels as labels_of
from ..cycle.cycles import settings_of
from ..cycle.delivery import Lineage
from ..state import admin
from ..state.configs import last_valid
from ..state.history import MAX_EVALUATIONS_READ, evaluations_between, first_evaluated_at
from ..state.instance_model import InstanceLabels
from ..state.model import StateSettings
from ..state.silences import AlertLabels, Silence
from ..state.store import StateStore
from .baseline import Baselines, Judged, judge_sides
from .changes import Changes
from .core import Evaluation, compare
from .recorded import NO_LINEAGE, Sources, acknowledgements
from .report import AlertReplay
from .timeline import timeline
from .window import Rule

__all__ = ["ReplayRun", "labels_of", "replay_alert", "replay_config"]


@dataclass(frozen=True)
class ReplayRun:
    """Replays of one or more alerts, with what holds for all of them."""

    replays: list[AlertReplay]
    """Largest change in notifications first."""
    notes: list[str]


def replay_alert(
    store: StateStore,
    labels: AlertLabels,
    current: StateSettings,
    proposed: StateSettings,
    *,
    start: dt.datetime,
    end: dt.datetime,
    silences: Sequence[Silence],
    baselines: Baselines | None = None,
    sources: Sources | None = None,
) -> AlertReplay:
    """Replay the evaluations of the alert ``labels`` names, recorded from ``start`` to ``end``, with its
    acknowledgements and inhibited while one of ``sources`` fired; a side whose baseline is not the recorded one
    re-judges their statuses (see :mod:`.baseline`)."""
    name = labels.name
    rows, cut = evaluations_between(store, name, start, end)
    evaluations = [
        Evaluation(row["evaluated_at"], row["status"], row["actual_value"], row["error"])
        for row in rows
        if row["status"] in ("ALERT", "OK", "ERROR")
    ]
    history_starts = first_evaluated_at(store, name)
    notes = []
    if cut and evaluations:
        notes.append(
            f"more than {MAX_EVALUATIONS_READ:,} evaluations in the period: only the newest "
            f"{len(evaluations):,}, from {evaluations[0].at.isoformat(timespec='seconds')}, are replayed"
        )
    if history_starts is None:
        notes.append(f"no evaluation of '{name}' is recorded")
    elif history_starts > start:
        notes.append(
            f"the recorded history of '{name}' starts at {history_starts.isoformat(timespec='seconds')}: older "
            "evaluations were pruned (AlertStateResource.history_retention_days, 30 by default) or never made, "
            "so the replay cannot go further back"
        )
    baselines = baselines or Baselines()
    judged = _judged(store, name, evaluations, baselines)
    rules = [*current.inhibit, *(rule for rule in proposed.inhibit if rule not in current.inhibit)]
    upstream = {**current.upstream, **proposed.upstream}
    firing, inhibition = sources.of(labels, rules, upstream) if sources is not None else ([], [])
    comparison = compare(
        evaluations,
        labels=labels,
        silences=silences,
        current=current,
        proposed=proposed,
        judged=(judged.current, judged.proposed),
        acks=acknowledgements(store, name, start, end),
        sources=firing,
    )
    lines = timeline(evaluations, comparison, start, end)
    notes += inhibition
    return AlertReplay(name, comparison, start, end, history_starts, lines, [*notes, *judged.notes], baselines)


def replay_config(
    store: StateStore,
    config: LoadedConfig,
    changes: Changes,
    *,
    name: str | None,
    start: dt.datetime,
    end: dt.datetime,
    lineage: Lineage | None = None,
) -> ReplayRun:
    """Replay the alert ``name`` of ``config`` (its settings against ``changes``), or, without ``name``, every
    alert: the last valid version of the file recorded in ``store`` against the file with ``changes``.

    Raise ValueError for a ``name`` the file does not have, with the closest name. The alerts that may inhibit them
    fire as their current settings say: the file's with ``name``, the recorded version's without. ``upstream``
    inhibition rules apply only with the deployment's ``lineage`` (as it is now)."""
    silences = admin.list_silences(store, include_expired=True)
    alerts = {alert.name: alert for alert in config.alerts}
    recorded, notes = _recorded_alerts(store, config) if name is None else (None, [])
    sources = Sources(store, config, {**alerts, **(recorded or {})}, start=start, end=end)
    held = _Held(silences, sources, lineage)
    if lineage is None and any(rule.upstream for rule in config.file.inhibit):
        notes.append(NO_LINEAGE)
    settings = partial(settings_of, config=config, lineage=lineage)
    if name is not None and _instance_alert(config, name) is not None:
        run = _replay_instances(store, config, changes, name, start=start, end=end, held=held)
        return replace(run, notes=[*notes, *run.notes])
    if name is not None:
        alert = _alert(config, name)
        current = settings(alert)
        deployed = (_recorded_alerts(store, config)[0] or {}).get(name, alert)  # what judged the recorded statuses
        baselines = Baselines(Rule.of(deployed), Rule.of(alert), Rule.of(alert))
        replay = replay_alert(
            store,
            labels_of(alert),
            current,
            changes.apply(current),
            start=start,
            end=end,
            silences=silences,
            baselines=baselines,
            sources=sources,
        )
        unchanged = (
            "no change proposed (for, recover_after, error_after, repeat_interval, min_interval or time intervals): "
            "both sides are the same"
        )
        rejudged = (
            f"the baseline in {config.path} is not the one of its version recorded in the state database, which "
            "judged the recorded statuses: both sides re-judge them"
        )
        notes += [*([] if changes.any else [unchanged]), *([rejudged] if baselines.any else [])]
        return ReplayRun([replay], notes)
    replays = []
    for alert in config.alerts:
        if alert.instances is not None:  # its instances, each replayed on its own
            instances = _replay_instances(store, config, changes, alert.name, start=start, end=end, held=held)
            replays += instances.replays
            notes += instances.notes[:1]
            continue
        before = alert if recorded is None else recorded.get(alert.name)
        alert_notes = (
            [] if before is not None else ["not in the recorded version: the file's settings are used for both"]
        )
        deployed = before or alert
        current = settings(deployed)
        proposed = changes.apply(settings(alert))
        baselines = Baselines(Rule.of(deployed), Rule.of(deployed), Rule.of(alert))
        replay = replay_alert(
            store,
            labels_of(alert),
            current,
            proposed,
            start=start,
            end=end,
            silences=silences,
            baselines=baselines,
            sources=sources,
        )
        replays.append(replace(replay, notes=[*alert_notes, *replay.notes]))
    replays.sort(key=lambda r: (-abs(r.comparison.change), r.alert))
    return ReplayRun(replays, notes)


def _replay_instances(
    store: StateStore,
    config: LoadedConfig,
    changes: Changes,
    name: str,
    *,
    start: dt.datetime,
    end: dt.datetime,
    held: _Held,
) -> ReplayRun:
    """Replay each recorded instance of the instance alert ``name`` (or only the instance ``name``), under the
    file's settings and the proposed ones, with what may hold them (``held``); the notes sum them for the alert."""
    alert = _instance_alert(config, name)
    assert alert is not None
    current = settings_of(alert, config, held.lineage)
    proposed = changes.apply(current)
    parent = labels_of(alert)
    recorded = store.instances_of(alert.name)
    chosen = {name: recorded.get(name, {})} if name != alert.name else recorded
    replays = []
    for instance, labels in chosen.items():
        instance_labels = InstanceLabels.of(parent, instance, labels)
        replay = replay_alert(
            store,
            instance_labels,
            current,
            proposed,
            start=start,
            end=end,
            silences=held.silences,
            sources=held.sources,
        )
        replays.append(replay)
    replays.sort(key=lambda r: (-abs(r.comparison.change), r.alert))
    before, after = sum(r.comparison.current.total for r in replays), sum(r.comparison.proposed.total for r in replays)
    total = (
        f"{alert.name}: {len(replays)} instance{'s' if len(replays) != 1 else ''} replayed; notifications "
        f"{before} under the current settings, {after} under the proposed ones ({after - before:+d})"
    )
    if len(replays) > MAX_INSTANCES_SHOWN:
        total += f"; the {MAX_INSTANCES_SHOWN} largest changes are listed"
    notes = [total, *([] if recorded else [f"no instance of '{alert.name}' is recorded"])]
    return ReplayRun(replays[:MAX_INSTANCES_SHOWN], notes)


MAX_INSTANCES_SHOWN = 200
"""The most instances of one alert a replay lists (largest change first); its note sums them all."""


@dataclass(frozen=True)
class _Held:
    """What may hold the notifications of every alert of a replay: silences, the alerts that may inhibit them, and
    the lineage ``upstream`` rules follow (None: such rules do not apply)."""

    silences: Sequence[Silence]
    sources: Sources
    lineage: Lineage | None


def _instance_alert(config: LoadedConfig, name: str) -> AlertConfig | None:
    """The instance alert ``name`` is, or is an instance of (``error_rate{endpoint="/orders"}``), or None."""
    try:
        alert = config.alert(name.partition("{")[0])
    except KeyError:
        return None
    return alert if alert.instances is not None else None


def _alert(config: LoadedConfig, name: str) -> AlertConfig:
    try:
        return config.alert(name)
    except KeyError:
        close = difflib.get_close_matches(name, config.alert_names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"no alert named '{name}' in {config.path}{hint}") from None


def _judged(store: StateStore, name: str, evaluations: list[Evaluation], baselines: Baselines) -> Judged:
    """The evaluations each side decides: re-judged by a side's baseline when it is not the recorded one, learning
    first from the evaluations recorded in the baseline's lookback before the first of them."""
    before: list[Evaluation] = []
    if baselines.any and evaluations:
        first = evaluations[0].at
        rows, _ = evaluations_between(store, name, first - baselines.lookback, first, limit=MAX_SAMPLES)
        before = [
            Evaluation(row["evaluated_at"], row["status"], row["actual_value"], row["error"])
            for row in rows
            if row["status"] in ("ALERT", "OK", "ERROR") and row["evaluated_at"] < first
        ]
    return judge_sides(evaluations, baselines, before)


def _recorded_alerts(store: StateStore, config: LoadedConfig) -> tuple[dict[str, AlertConfig] | None, list[str]]:
    """Each alert of the last valid version of the file recorded in ``store`` (None when no version is recorded),
    and a note saying what is compared."""
    saved = last_valid(store, str(config.path))
    if saved is None:
        return None, [
            f"no version of {config.path} is recorded in the state database (code servers record each valid "
            "version they load, under the path they load it from): the file's settings are used for both, so "
            "only the options make a difference"
        ]
    previous = load_config(config.path, text=saved.content, strict=False)
    note = (
        f"current: the version of {config.path} recorded {saved.loaded_at:%Y-%m-%d %H:%M} UTC "
        f"(sha256 {saved.digest[:12]}); proposed: the file as it is now"
    )
    return {alert.name: alert for alert in previous.alerts}, [note]
