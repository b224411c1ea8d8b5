"""Replays of an alerts file's alerts from the state database: what the CLI and the Launchpad job share.

Reads the recorded evaluations and every silence (expired ones too) and compares each alert's current
settings with the proposed ones; it only reads the database.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from ..baselines import MAX_SAMPLES
from ..config import AlertConfig, LoadedConfig, load_config
from ..cycle.alert import settings_of
from ..durations import parse_duration
from ..state import admin
from ..state.configs import last_valid
from ..state.history import MAX_EVALUATIONS_READ, evaluations_between, first_evaluated_at
from ..state.model import StateSettings
from ..state.silences import AlertLabels, Silence
from ..state.store import StateStore
from .baseline import Baselines, Judged, judge_sides
from .core import Evaluation, compare
from .report import AlertReplay
from .timeline import timeline
from .window import Rule

__all__ = ["DEFAULT_DAYS", "Changes", "ReplayRun", "labels_of", "parse_period", "replay_alert", "replay_config"]

DEFAULT_DAYS = 30
"""The period replayed when none is given: as long as the default history retention."""
_LONGEST_STREAK = 1000  # as alerts.yaml allows for `for`, `recover_after` and `error_after`
_FAR = 10**15
"""A number past :func:`parse_duration`'s bound in any unit (10^15 ms is 31,700 years): larger ones are cut to it,
so that the bound it names is the reason given, not an overflow."""
_AMOUNT = re.compile(r"^\s*(?P<sign>[+-]?)\s*(?P<number>\d+(\.\d+)?)(?P<rest>.*)$", re.DOTALL)
"""A signed number and what follows it: how ``--since`` is told apart as a duration that ``parse_duration`` refuses
(zero, negative, too long) from text that is no duration at all (its unit is checked by ``parse_duration``)."""


@dataclass(frozen=True)
class Changes:
    """Proposed settings; None leaves a setting as the alert has it."""

    for_count: int | None = None
    recover_after: int | None = None
    error_after: int | None = None
    repeat_interval: dt.timedelta | Literal["none"] | None = None
    """A new interval, ``"none"`` to turn reminders off, or None to keep the alert's."""

    @classmethod
    def parse(
        cls,
        *,
        for_count: int | None = None,
        recover_after: int | None = None,
        error_after: int | None = None,
        repeat_interval: str | None = None,
    ) -> Changes:
        """Changes from options as typed; raise ValueError naming every problem."""
        problems = [
            f"{name} must be from 1 to {_LONGEST_STREAK}, got {value}"
            for name, value in (("for", for_count), ("recover_after", recover_after), ("error_after", error_after))
            if value is not None and not 1 <= value <= _LONGEST_STREAK
        ]
        interval: dt.timedelta | Literal["none"] | None = None
        if repeat_interval is not None and repeat_interval.strip().lower() == "none":
            interval = "none"
        elif repeat_interval is not None and repeat_interval.strip():
            try:
                interval = dt.timedelta(seconds=parse_duration(repeat_interval.strip()))
            except ValueError as exc:
                problems.append(f"repeat_interval: {exc}, or 'none' to turn reminders off")
        if problems:
            raise ValueError("; ".join(problems))
        return cls(for_count, recover_after, error_after, interval)

    @property
    def any(self) -> bool:
        """Whether any setting is changed."""
        return any(v is not None for v in (self.for_count, self.recover_after, self.error_after, self.repeat_interval))

    def apply(self, settings: StateSettings) -> StateSettings:
        """``settings`` with these changes."""
        interval = settings.repeat_interval if self.repeat_interval is None else self.repeat_interval
        return replace(
            settings,
            repeat_interval=None if interval == "none" else interval,
            for_count=self.for_count or settings.for_count,
            recover_after=self.recover_after or settings.recover_after,
            error_after=self.error_after or settings.error_after,
        )


@dataclass(frozen=True)
class ReplayRun:
    """Replays of one or more alerts, with what holds for all of them."""

    replays: list[AlertReplay]
    """Largest change in notifications first."""
    notes: list[str]


def parse_period(
    now: dt.datetime, *, days: int | None = None, since: str | None = None, option: str = "--"
) -> dt.datetime:
    """The start of the period ending ``now``: ``days`` back (default :data:`DEFAULT_DAYS`), or ``since``, a
    duration back (``7d``) or an ISO date or time (without a timezone, the local one).

    Raise ValueError naming the option as ``option`` + ``days`` (``--days`` for the CLI, ``days`` for the
    Launchpad job's config) and what is wrong: zero or negative, longer than any duration can be (the bound of
    :func:`..config.models.parse_duration`, 10 years), neither a duration nor a date, or not in the past."""
    days_name, since_name = f"{option}days", f"{option}since"
    if days is not None and since is not None:
        raise ValueError(f"give {days_name} or {since_name}, not both")
    if since is None:
        count = DEFAULT_DAYS if days is None else days
        shown = str(count) if abs(count) < 10**40 else "(a number of over 40 digits)"
        if count == 0:
            raise ValueError(f"{days_name} 0: zero days replay nothing; give a positive number of days such as 7")
        if count < 0:
            raise ValueError(f"{days_name} {shown}: a negative number of days; give a positive one such as 7")
        return now - _back(f"{days_name} {shown}", str(count) if count < _FAR else str(_FAR), "d")
    text = since.strip()
    shown = text if len(text) <= 40 else text[:40] + "..."
    amount = _AMOUNT.match(text)
    if amount is not None and _is_duration_unit(amount.group("rest")):
        name = f"{since_name} {shown}"
        if float(amount.group("number")) == 0:
            raise ValueError(f"{name}: a zero duration replays nothing; give a positive duration such as 7d")
        if amount.group("sign") == "-":
            raise ValueError(f"{name}: a negative duration; give how far back as a positive duration such as 7d")
        number = amount.group("number")
        return now - _back(name, number if float(number) < _FAR else str(_FAR), amount.group("rest"))
    try:
        start = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{since_name} {shown!r} is neither a duration such as 7d nor an ISO date such as 2026-11-01"
        ) from None
    start = start if start.tzinfo else start.astimezone()
    if start >= now:
        raise ValueError(f"{since_name} {start.isoformat(timespec='seconds')} is not in the past")
    return start.astimezone(dt.UTC)


def _is_duration_unit(rest: str) -> bool:
    """Whether ``rest`` is what may follow a number in a duration (``d``, ``h``, ``30s``'s ``s``, nothing), as
    :func:`parse_duration` reads it."""
    try:
        parse_duration("1" + rest)
    except ValueError:
        return False
    return True


def _back(name: str, number: str, unit: str) -> dt.timedelta:
    """``number`` (positive, at most :data:`_FAR`) of ``unit`` as a timedelta; ValueError naming ``name`` when it
    is longer than any duration may be."""
    try:
        return dt.timedelta(seconds=parse_duration(number + unit))
    except ValueError as exc:  # the only refusal left for a positive amount with a unit: past parse_duration's bound
        bound = str(exc).rpartition("; ")[2]  # "at most 3650d (10 years)": named by parse_duration, not repeated here
        raise ValueError(f"{name}: longer than the history that can be kept; {bound}") from None


def labels_of(alert: AlertConfig) -> AlertLabels:
    """What silences match ``alert`` on, as its runs record it."""
    return AlertLabels(alert.name, alert.severity, tuple(alert.owners), dict(alert.tags))


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
) -> AlertReplay:
    """Replay the evaluations of the alert ``labels`` names, recorded from ``start`` to ``end``; a side whose
    baseline is not the recorded one re-judges their statuses (see :mod:`.baseline`)."""
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
    comparison = compare(
        evaluations,
        labels=labels,
        silences=silences,
        current=current,
        proposed=proposed,
        judged=(judged.current, judged.proposed),
    )
    lines = timeline(evaluations, comparison, start, end)
    return AlertReplay(name, comparison, start, end, history_starts, lines, [*notes, *judged.notes], baselines)


def replay_config(
    store: StateStore,
    config: LoadedConfig,
    changes: Changes,
    *,
    name: str | None,
    start: dt.datetime,
    end: dt.datetime,
) -> ReplayRun:
    """Replay the alert ``name`` of ``config`` (its settings against ``changes``), or, without ``name``, every
    alert: the last valid version of the file recorded in ``store`` against the file with ``changes``.

    Raise ValueError for a ``name`` the file does not have, with the closest name."""
    silences = admin.list_silences(store, include_expired=True)
    if name is not None:
        alert = _alert(config, name)
        current = settings_of(alert)
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
        )
        unchanged = "no change proposed (for, recover_after, error_after or repeat_interval): both sides are the same"
        rejudged = (
            f"the baseline in {config.path} is not the one of its version recorded in the state database, which "
            "judged the recorded statuses: both sides re-judge them"
        )
        return ReplayRun([replay], [*([] if changes.any else [unchanged]), *([rejudged] if baselines.any else [])])
    recorded, notes = _recorded_alerts(store, config)
    replays = []
    for alert in config.alerts:
        before = alert if recorded is None else recorded.get(alert.name)
        alert_notes = (
            [] if before is not None else ["not in the recorded version: the file's settings are used for both"]
        )
        deployed = before or alert
        current = settings_of(deployed)
        proposed = changes.apply(settings_of(alert))
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
        )
        replays.append(replace(replay, notes=[*alert_notes, *replay.notes]))
    replays.sort(key=lambda r: (-abs(r.comparison.change), r.alert))
    return ReplayRun(replays, notes)


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
