"""``watch:``: the deployment's asset checks as alerts, without Dagster.

Each (watch rule, asset check) pair is one alert in the state: named ``<rule>:<asset key path>:<check>``, it
goes through the same decision, silences, ledger and delivery as an alert; a partitioned check is one alert per
partition, ``<rule>:<asset key path>:<check>[<partition>]``. An evaluation of the check is its evaluation:
failed with a severity the rule watches is ``ALERT``, anything else ``OK``. The Dagster layer
(:mod:`.watch_sensor`) reads the evaluations from the instance and hands them to :func:`watch_tick` as
:class:`CheckEvaluation` values, in storage-id order, with a way to tell which checks no longer exist
(:data:`GoneChecks`): a firing check that is gone resolves (``gone``) instead of reminding forever.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import LoadedConfig
from ..config.watch import WatchRule
from ..naming import OWN_CHECK_METADATA
from ..notifiers import DeliveryReport
from ..state.decision import Decision
from ..state.model import Outcome
from ..state.silences import AlertLabels
from ..state.store import StateStore
from ..state.watched import WatchedCheck
from .check_evaluations import (
    CheckEvaluation,
    CheckKey,
    labels_of,
    message_of,
    outcome_of,
    place_of,
    rule_of,
    state_settings,
)
from .delivery import (
    CycleSettings,
    ledger_channels,
)
from .platform import (
    Observation,
    changes_state,
    observation_labels,
    observation_outcome,
    observation_payload,
    platform_rule_of,
    selects,
    subject_of,
)
from .watch_delivery import deliver_watched, may_notify

__all__ = ["GoneChecks", "WatchTick", "watch_tick"]


Logger = logging.Logger | logging.LoggerAdapter[Any]
GoneChecks = Callable[[Collection[CheckKey]], Mapping[CheckKey, str]]
"""Given checks with a firing state, those that no longer exist, each with why that is known (said in the
``gone`` decision's reason). It must name only checks whose absence is definitive."""


@dataclass
class WatchTick:
    """What one pass over new evaluations did."""

    read: int = 0
    """Evaluations looked at (in storage-id order)."""
    last_storage_id: int | None = None
    """The last evaluation looked at: everything up to it is done (the cursor may move there)."""
    observed: int = 0
    """Runs, ticks, code locations and materializations looked at (:mod:`.platform`)."""
    recorded: int = 0
    """(rule, check) evaluations and observations recorded."""
    duplicates: int = 0
    """(rule, check) evaluations already recorded (another tick, or before a restart), left alone."""
    decisions: Counter[str] = field(default_factory=Counter)
    """Decisions by code (``first_notification``, ``resolved``, ``gone``...)."""
    reports: list[DeliveryReport] = field(default_factory=list)
    out_of_time: bool = False
    """The deadline passed: the rest waits for the next tick."""

    def summary(self) -> str:
        """One line for the sensor's tick."""
        decided = ", ".join(f"{n} {code}" for code, n in sorted(self.decisions.items())) or "nothing decided"
        sent = Counter(r.outcome for r in self.reports)
        delivery = ", ".join(f"{n} {outcome}" for outcome, n in sorted(sent.items())) or "none"
        late = "; out of time, the rest at the next tick" if self.out_of_time else ""
        again = f" ({self.duplicates} already recorded)" if self.duplicates else ""
        observed = f", {self.observed} observation(s)" if self.observed else ""
        read = f"{self.read} evaluation(s) read{observed}, {self.recorded} recorded{again}"
        return f"{read}: {decided}; notifications: {delivery}{late}"


def watch_tick(
    evaluations: Iterable[CheckEvaluation],
    config: LoadedConfig,
    store: StateStore,
    settings: CycleSettings,
    logger: Logger,
    *,
    deadline: float | None = None,
    gone: GoneChecks | None = None,
    observations: Iterable[Observation] = (),
    active: Sequence[WatchedCheck] | None = None,
) -> WatchTick:
    """Record each evaluation for every rule that watches its check (each at most once, whoever else reads it),
    then go over the checks still failed: resolve those ``gone`` says no longer exist (reason ``gone``), remind
    the others whose reminder is due (or whose silence ended); and deliver what is pending for them: the same
    decide/record and deliver as alerts.

    ``deadline`` (``time.monotonic()``): stop reading evaluations, resolving gone checks and delivering once it
    has passed; what is left is done at the next tick (``last_storage_id`` says how far this one got).
    ``gone`` is not asked about a check recorded in this tick: the evaluation just read shows it exists (and
    Dagster may still be writing the records that say so).

    ``observations`` (runs, ticks, code locations, failed materializations: :mod:`.platform`) are recorded after
    the evaluations, each only when it can change its subject's state (:func:`.platform.changes_state`), judged
    on ``active`` (the platform subjects pending or firing, as :meth:`.StateStore.watched_active` gives them; read
    here when None).
    """
    tick = WatchTick()
    rules = {rule.name: rule for rule in config.watch_rules}
    due: dict[str, tuple[WatchRule, dict[str, Any]]] = {}
    recorded: set[str] = set()
    for evaluation in evaluations:
        if deadline is not None and time.monotonic() > deadline:
            tick.out_of_time = True
            break
        tick.read += 1
        if OWN_CHECK_METADATA in evaluation.metadata:  # an alert's own check (checks mode): it notified already
            tick.last_storage_id = evaluation.storage_id
            continue
        for rule in rules.values():
            if rule.watches(evaluation.asset, evaluation.check):
                labels, outcome = labels_of(rule, evaluation), outcome_of(rule, evaluation)
                payload = message_of(labels, outcome, evaluation, settings.channels.webserver_base_url)
                decision = _record(store, rule, config, labels, outcome, payload, evaluation)
                _count(tick, decision, labels.name, logger)
                recorded.add(labels.name)
                if decision is not None and decision.notify:
                    due[labels.name] = (rule, payload)
        tick.last_storage_id = evaluation.storage_id
    _observe(observations, active, rules, config, store, settings, logger, deadline, tick, recorded, due)
    needing = [
        (watched, owner)
        for watched in store.watched_needing_work(list(rules))
        if (owner := rules.get(watched.rule)) is not None and _still_watches(owner, watched)
    ]  # left out: the rule is gone, or no longer watches this check
    firing = [
        w
        for w, owner in needing
        if w.state.condition == "firing" and owner.checks and w.asset and w.name not in recorded
    ]
    vanished = gone({(w.asset, w.check) for w in firing}) if gone is not None and firing else {}
    for watched, owner in needing:
        why = vanished.get((watched.asset, watched.check)) if watched.name not in recorded else None
        if watched.state.condition == "firing" and why is not None:
            if deadline is not None and time.monotonic() > deadline:
                continue  # resolved at the next tick
            payload = _gone_payload(watched, why, store.clock())
            decision = store.resolve_gone_watched(watched, _channels(owner, config), payload, None, why=why)
            if decision is not None:
                tick.decisions[decision.code] += 1
                logger.info(f"watched check '{watched.name}': {decision.reason}")
                if decision.notify:
                    due[watched.name] = (owner, payload)
        elif watched.state.condition == "firing" and may_notify(watched, owner, store):
            decision = _re_decide(store, owner, config, watched)
            if decision is not None:
                tick.decisions[decision.code] += 1
                logger.info(f"watched check '{watched.name}': {decision.reason}")
                if decision.notify:
                    due[watched.name] = (owner, watched.payload)
        if watched.undelivered and watched.name not in due:
            due[watched.name] = (owner, watched.payload)
    tick.reports = deliver_watched(due, config, store, settings, logger, deadline, tick)
    return tick


def _observe(
    observations: Iterable[Observation],
    active: Sequence[WatchedCheck] | None,
    rules: Mapping[str, WatchRule],
    config: LoadedConfig,
    store: StateStore,
    settings: CycleSettings,
    logger: Logger,
    deadline: float | None,
    tick: WatchTick,
    recorded: set[str],
    due: dict[str, tuple[WatchRule, dict[str, Any]]],
) -> None:
    """Record the ``observations`` that can change their subject's state (the others write nothing)."""
    platform = [name for name, rule in rules.items() if rule.kind != "checks"]
    if active is None:
        active = store.watched_active(platform) if platform else []
    known = {w.name: w.state for w in active}
    for observation in observations:
        rule = rules.get(observation.rule)
        if rule is None:
            continue
        if deadline is not None and time.monotonic() > deadline:
            tick.out_of_time = True
            break
        tick.observed += 1
        labels = observation_labels(observation)
        if not changes_state(observation, known.get(labels.name)):
            continue
        outcome = observation_outcome(observation)
        payload = observation_payload(observation, labels, outcome)
        decision = store.record_watched(
            labels, outcome, state_settings(rule, config), _channels(rule, config), payload, observation.run_id,
            rule=rule.name, storage_id=observation.key,
        )  # fmt: skip
        _count(tick, decision, labels.name, logger)
        recorded.add(labels.name)
        if decision is not None:
            known[labels.name] = decision.state  # a later observation of it in this pass is judged on it
            if decision.notify:
                due[labels.name] = (rule, payload)


def _channels(rule: WatchRule, config: LoadedConfig) -> dict[str, set[str]]:
    return ledger_channels(config.watch_targets(rule), config.fallback_targets(), send_resolved=rule.send_resolved)


def _record(
    store: StateStore,
    rule: WatchRule,
    config: LoadedConfig,
    labels: AlertLabels,
    outcome: Outcome,
    payload: dict[str, Any],
    evaluation: CheckEvaluation,
) -> Decision | None:
    return store.record_watched(
        labels,
        outcome,
        state_settings(rule, config),
        _channels(rule, config),
        payload,
        evaluation.run_id,
        rule=rule.name,
        storage_id=evaluation.storage_id,
        asset=evaluation.asset,
        check=evaluation.check,
        partition=evaluation.partition,
    )


def _re_decide(store: StateStore, rule: WatchRule, config: LoadedConfig, watched: WatchedCheck) -> Decision | None:
    """Decide again on the check's last evaluation (a reminder, or the notification owed since a silence)."""
    return store.record_watched(
        watched.labels,
        watched.outcome,
        state_settings(rule, config),
        _channels(rule, config),
        watched.payload,
        None,
        rule=rule.name,
        storage_id=watched.storage_id,
        asset=watched.asset,
        check=watched.check,
        partition=watched.partition,
    )


def _gone_payload(watched: WatchedCheck, why: str, now: dt.datetime) -> dict[str, Any]:
    """The resolved message of a check that is gone: its last message, saying why it ends."""
    where = place_of(watched.asset, watched.partition)
    return {
        **watched.payload,
        "status": "OK",
        "description": f"asset check {watched.check} on {where} is gone: {why}",
        "timestamp": now.isoformat(timespec="seconds"),
        "run_id": None,
    }


def _count(tick: WatchTick, decision: Decision | None, name: str, logger: Logger) -> None:
    if decision is None:
        tick.duplicates += 1
        return
    tick.recorded += 1
    tick.decisions[decision.code] += 1
    if decision.event is not None:
        logger.info(f"watched '{name}': {decision.reason}")


def _still_watches(rule: WatchRule, watched: WatchedCheck) -> bool:
    """Whether ``rule`` still watches the check of ``watched``: by its recorded asset and check (a cut name, or an
    asset key part holding ``/``, cannot be read back), else, for a state recorded before those were, by its
    name."""
    if rule.kind != "checks":
        subject = subject_of(watched.labels)
        return selects(rule, *subject) if subject else platform_rule_of([rule], watched.name) is not None
    if watched.asset and watched.check:
        return rule.watches(watched.asset, watched.check)
    return rule_of([rule], watched.name) is not None
