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
import hashlib
import logging
import re
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import LoadedConfig
from ..config.targets import NotifyTarget
from ..config.watch import WatchRule
from ..naming import OWN_CHECK_METADATA
from ..notifiers import DeliveryReport, channel_id, deliver_grouped, notifiers_for
from ..state.decision import Decision
from ..state.model import Outcome, StateSettings
from ..state.silences import AlertLabels
from ..state.store import StateStore
from ..state.watched import WatchedCheck, WatchedLabels
from .alert import FALLBACK, CycleSettings, deliver_to, delivery_options, json_safe, ledger_channels, tell_fallback_lost
from .results import MAX_CONTEXT_COLUMNS, safe_value

__all__ = [
    "MAX_NAME",
    "CheckEvaluation",
    "CheckKey",
    "GoneChecks",
    "WatchTick",
    "check_url",
    "labels_of",
    "outcome_of",
    "payload_of",
    "rule_of",
    "state_settings",
    "watch_tick",
    "watched_name",
]

MAX_NAME = 200
"""The longest alert name the state keeps (as for alerts: the ledger key ``<name>/<n>/<event>/<channel>`` must
fit its 255-character column). Longer watched names are cut and end in ``~`` and 12 hex digits of their sha256."""
_SEVERITY = {"ERROR": "error", "WARN": "warning"}
"""Dagster's check severity as an alert severity (for routes, silences' ``severity=`` and channels)."""

_PARTITIONED = re.compile(r"^(?P<asset>.*?):(?P<check>[A-Za-z0-9_]+)\[(?P<partition>.*)\]$", re.DOTALL)
"""``<asset>:<check>[<partition>]`` after the rule: check names are letters, digits and ``_`` (Dagster's rule), so the
first ``[`` after one starts the partition, whatever the partition key holds (``:``, ``[``, ``]``...)."""

Logger = logging.Logger | logging.LoggerAdapter[Any]
CheckKey = tuple[tuple[str, ...], str]
"""An asset check as (asset key path, check name)."""
GoneChecks = Callable[[Collection[CheckKey]], Mapping[CheckKey, str]]
"""Given checks with a firing state, those that no longer exist, each with why that is known (said in the
``gone`` decision's reason). It must name only checks whose absence is definitive."""


@dataclass(frozen=True)
class CheckEvaluation:
    """One asset check evaluation from Dagster's event log, as plain values."""

    storage_id: int
    """The event's storage id: evaluations are read, and recorded, in this order."""
    asset: tuple[str, ...]
    check: str
    passed: bool
    severity: str
    """As Dagster gives it: ``ERROR`` or ``WARN``."""
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    """The evaluation's metadata as plain values (numbers, text, JSON)."""
    run_id: str | None = None
    timestamp: float = 0.0
    partition: str | None = None


@dataclass
class WatchTick:
    """What one pass over new evaluations did."""

    read: int = 0
    """Evaluations looked at (in storage-id order)."""
    last_storage_id: int | None = None
    """The last evaluation looked at: everything up to it is done (the cursor may move there)."""
    recorded: int = 0
    """(rule, check) evaluations recorded."""
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
        read = f"{self.read} evaluation(s) read, {self.recorded} recorded{again}"
        return f"{read}: {decided}; notifications: {delivery}{late}"


def watched_name(rule: str, asset: Sequence[str], check: str, partition: str | None = None) -> str:
    """``<rule>:<asset key path>:<check>`` (``dbt_tests:shop/orders:not_null_id``), and for one partition of a
    partitioned check ``<rule>:<asset key path>:<check>[<partition>]`` (``...:not_null_id[2024-01-31]``), at most
    :data:`MAX_NAME` characters: a longer one is cut and ends in ``~`` and 12 hex digits of the full name's
    sha256."""
    name = f"{rule}:{'/'.join(asset)}:{check}" + (f"[{partition}]" if partition else "")
    if len(name) <= MAX_NAME:
        return name
    return f"{name[: MAX_NAME - 13]}~{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def rule_of(rules: Sequence[WatchRule], name: str) -> WatchRule | None:
    """The rule whose checks ``name`` names (``<rule>:<asset>:<check>`` of a check it watches, the name of one
    of its partitions, ``<rule>:<asset>:<check>[<partition>]``, or a cut name of either), or None."""
    rule_name, _, rest = name.partition(":")
    rule = next((r for r in rules if r.name == rule_name), None)
    if rule is None or not rest:
        return None
    partitioned = _PARTITIONED.match(rest)
    asset, check = (partitioned["asset"], partitioned["check"]) if partitioned else rest.rpartition(":")[::2]
    if asset and check and rule.watches(tuple(asset.split("/")), check):
        return rule
    return rule if len(name) == MAX_NAME and "~" in name[-13:] else None


def state_settings(rule: WatchRule) -> StateSettings:
    """The state-machine settings of ``rule`` (checks never error: a check that cannot run records no evaluation)."""
    interval = dt.timedelta(seconds=rule.repeat_interval) if rule.repeat_interval else None
    return StateSettings(interval, rule.for_, rule.recover_after)


def outcome_of(rule: WatchRule, evaluation: CheckEvaluation) -> Outcome:
    """``ALERT`` when the check failed with a severity ``rule`` watches; otherwise ``OK`` (a failure of another
    severity counts as passing for this rule: it resolves). The context names the asset, the check and its
    severity, then the evaluation's metadata (made safe, at most 50 entries in all)."""
    failed = not evaluation.passed and evaluation.severity in rule.severity
    context: dict[str, Any] = {
        "asset": "/".join(evaluation.asset),
        "check": evaluation.check,
        "check_severity": evaluation.severity,
        **({"partition": evaluation.partition} if evaluation.partition else {}),
    }
    entries = list(evaluation.metadata.items())
    room = MAX_CONTEXT_COLUMNS - len(context)
    for label, value in entries[:room]:
        context[label if label not in context else f"metadata: {label}"] = safe_value(value)
    if len(entries) > room:
        context["..."] = f"{len(entries) - room} more metadata entries not shown"
    return Outcome("ALERT" if failed else "OK", context=json_safe(context))


def labels_of(rule: WatchRule, evaluation: CheckEvaluation) -> AlertLabels:
    """What silences match: the watched name, the severity (``error`` for ERROR, ``warning`` for WARN) and the
    tags ``watch`` (the rule), ``asset`` and ``check``; for a partition also the tag ``partition``, and the check's
    name matches as well as the partition's (:class:`.state.watched.WatchedLabels`): silencing the check
    silences all its partitions."""
    tags = {"watch": rule.name, "asset": "/".join(evaluation.asset), "check": evaluation.check}
    severity = _SEVERITY.get(evaluation.severity, "error")
    check_name = watched_name(rule.name, evaluation.asset, evaluation.check)
    if not evaluation.partition:
        return AlertLabels(check_name, severity, (), tags)
    name = watched_name(rule.name, evaluation.asset, evaluation.check, evaluation.partition)
    return WatchedLabels(name, severity, (), {**tags, "partition": evaluation.partition}, check_name=check_name)


def check_url(base_url: str | None, asset: Sequence[str], check: str) -> str | None:
    """The check's page in the Dagster UI (``<base>/assets/shop/orders?view=checks&checkDetail=not_null_id``),
    or None without a base URL."""
    if not base_url:
        return None
    path = "/".join(urllib.parse.quote(part, safe="") for part in asset)
    query = urllib.parse.urlencode({"view": "checks", "checkDetail": check})
    return f"{base_url.rstrip('/')}/assets/{path}?{query}"


def payload_of(rule: WatchRule, evaluation: CheckEvaluation, base_url: str | None) -> dict[str, Any]:
    """The message of an evaluation, with the keys an alert's message has: the description names the asset,
    the check and how it ended (``failed (ERROR): <the check's description>``); ``run_url`` links to the check
    in the UI when ``base_url`` is set; ``run_id`` is the run that evaluated it."""
    return _message(labels_of(rule, evaluation), outcome_of(rule, evaluation), evaluation, base_url)


def _message(
    labels: AlertLabels, outcome: Outcome, evaluation: CheckEvaluation, base_url: str | None
) -> dict[str, Any]:
    verdict = "passed" if evaluation.passed else f"failed ({evaluation.severity})"
    detail = f": {safe_value(evaluation.description)}" if evaluation.description else ""
    where = _where(evaluation.asset, evaluation.partition)
    stamp = dt.datetime.fromtimestamp(evaluation.timestamp, dt.UTC) if evaluation.timestamp else dt.datetime.now(dt.UTC)
    payload: dict[str, Any] = json_safe(
        {
            "alert_name": labels.name,
            "status": outcome.status,
            "actual_value": None,
            "threshold": None,
            "context": outcome.context,
            "error": None,
            "description": f"asset check {evaluation.check} on {where} {verdict}{detail}",
            "severity": labels.severity,
            "owners": [],
            "tags": dict(labels.tags or {}),
            "timestamp": stamp.isoformat(timespec="seconds"),
            "run_id": evaluation.run_id,
            "run_url": check_url(base_url, evaluation.asset, evaluation.check),
        }
    )
    return payload


def watch_tick(
    evaluations: Iterable[CheckEvaluation],
    config: LoadedConfig,
    store: StateStore,
    settings: CycleSettings,
    logger: Logger,
    *,
    deadline: float | None = None,
    gone: GoneChecks | None = None,
) -> WatchTick:
    """Record each evaluation for every rule that watches its check (each at most once, whoever else reads it),
    then go over the checks still failed: resolve those ``gone`` says no longer exist (reason ``gone``), remind
    the others whose reminder is due (or whose silence ended); and deliver what is pending for them: the same
    decide/record and deliver as alerts.

    ``deadline`` (``time.monotonic()``): stop reading evaluations, resolving gone checks and delivering once it
    has passed; what is left is done at the next tick (``last_storage_id`` says how far this one got).
    ``gone`` is not asked about a check recorded in this tick: the evaluation just read shows it exists (and
    Dagster may still be writing the records that say so).
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
                payload = _message(labels, outcome, evaluation, settings.channels.webserver_base_url)
                decision = _record(store, rule, config, labels, outcome, payload, evaluation)
                _count(tick, decision, labels.name, logger)
                recorded.add(labels.name)
                if decision is not None and decision.notify:
                    due[labels.name] = (rule, payload)
        tick.last_storage_id = evaluation.storage_id
    needing = [
        (watched, owner)
        for watched in store.watched_needing_work(list(rules))
        if (owner := rules.get(watched.rule)) is not None and rule_of([owner], watched.name) is not None
    ]  # left out: the rule is gone, or no longer watches this check
    firing = [w for w, _ in needing if w.state.condition == "firing" and w.asset and w.name not in recorded]
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
        elif watched.state.condition == "firing" and _may_notify(watched, owner, store):
            decision = _re_decide(store, owner, config, watched)
            if decision is not None:
                tick.decisions[decision.code] += 1
                logger.info(f"watched check '{watched.name}': {decision.reason}")
                if decision.notify:
                    due[watched.name] = (owner, watched.payload)
        if watched.undelivered and watched.name not in due:
            due[watched.name] = (owner, watched.payload)
    tick.reports = _deliver(due, config, store, settings, logger, deadline, tick)
    return tick


def _where(asset: Sequence[str], partition: str | None) -> str:
    """``shop/orders``, or ``shop/orders (partition 2024-01-31)``."""
    return "/".join(asset) + (f" (partition {partition})" if partition else "")


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
        state_settings(rule),
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
        state_settings(rule),
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
    where = _where(watched.asset, watched.partition)
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
        logger.info(f"watched check '{name}': {decision.reason}")


def _may_notify(watched: WatchedCheck, rule: WatchRule, store: StateStore) -> bool:
    """Whether re-deciding a firing check on its last evaluation may notify: a reminder is due, or a
    notification is owed since a silence (the decision itself, under the state's lock, has the last word)."""
    state = watched.state
    if state.episode_suppressed:
        return True  # owed once its silence ends: the decision checks the silences
    if rule.repeat_interval is None:
        return False
    last = state.last_notified_at or state.firing_since
    return last is None or store.clock() - last >= dt.timedelta(seconds=rule.repeat_interval)


def _deliver(
    due: dict[str, tuple[WatchRule, dict[str, Any]]],
    config: LoadedConfig,
    store: StateStore,
    settings: CycleSettings,
    logger: Logger,
    deadline: float | None,
    tick: WatchTick,
) -> list[DeliveryReport]:
    """Deliver the pending notifications of ``due``: each check alone on its targets, then one message per
    ``group: true`` target listing every check of the tick (in parts when over the channel's limits)."""
    fallback = config.fallback_targets()
    reports: list[DeliveryReport] = []
    groups: dict[str, tuple[NotifyTarget, dict[str, list[str]]]] = {}
    for name, (rule, payload) in sorted(due.items()):
        if deadline is not None and time.monotonic() > deadline:
            tick.out_of_time = True  # still pending: delivered at the next tick
            break
        targets = config.watch_targets(rule)
        grouped = [(channel_id(i, t), t) for i, t in enumerate(targets) if t.group]
        grouped += [(channel_id(i, t, FALLBACK), t) for i, t in enumerate(fallback) if t.group]
        for channel, target in grouped:
            groups.setdefault(target.model_dump_json(), (target, {}))[1].setdefault(name, []).append(channel)
        skip = [channel for channel, _ in grouped]
        reports += deliver_to(store, name, targets, fallback, payload, settings, logger, skip=skip)
    for target, members in groups.values():
        notifier = next(iter(notifiers_for(f"group of {len(members)}", [target], settings.channels, logger).values()))
        for name, group_reports in deliver_grouped(store, members, notifier, **delivery_options(settings)).items():
            reports += group_reports
            lost = [r for r in group_reports if r.given_up]
            tell_fallback_lost(name, due[name][1], lost, fallback, settings, logger)
    return reports
