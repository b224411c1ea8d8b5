"""An instance alert's cycle (``instances:``), without Dagster: record every row's instance in one transaction,
then deliver what its instances owe, one message per target listing them (split to fit the channel's limits).

The alert itself is recorded too, as an alert whose only notifications are errors: a failed query (when no
instance is evaluated, and none counts as missing) or a cut result, each notified once per run of them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..config import AlertConfig, LoadedConfig
from ..config.targets import EmailTarget, NotifyTarget, recipients_of
from ..errors import SentinelError
from ..notifiers import DeliveryReport, Notifier, channel_id, deliver_pending, notifiers_for
from ..notifiers.deliver import NO_LONGER_LISTED
from ..state.instances import InstanceLabels, InstanceRow, without_collection
from ..state.model import Outcome
from ..state.silences import AlertLabels
from ..state.store import Intent, StateStore
from .cycles import (
    STATE_ERRORS,
    AlertCycle,
    alert_labels,
    alert_payload,
    cut_result,
    deliver_groups,
    json_safe,
    settings_of,
    state_failure,
)
from .delivery import (
    FALLBACK,
    CycleSettings,
    Logger,
    deliver_to,
    deliver_to_groups,
    delivery_options,
    grouped_channels,
    ledger_channels,
    tell_fallback_lost,
)
from .instances import InstanceResult
from .learned import baseline_payload
from .results import AlertResult

__all__ = ["deliver_instances", "instance_targets", "run_instances"]


def run_instances(
    alert: AlertConfig,
    config: LoadedConfig,
    result: AlertResult | None,
    outcome: Outcome,
    store: Callable[[], StateStore],
    settings: CycleSettings,
    logger: Logger,
) -> AlertCycle:
    """Record and deliver one evaluation of the instance alert ``alert``: ``result`` is None (and ``outcome`` an
    ERROR) when the query failed. The returned cycle's outcome is the worst row's; its decision the alert's."""
    assert alert.instances is not None
    spec = alert.instances
    found = result.instances if result is not None else None
    targets, fallback = config.targets(alert), config.fallback_targets()
    channels = ledger_channels(targets, fallback)
    run_url = settings.channels.run_url(settings.run_id) if settings.run_id else None
    labels = alert_labels(alert)
    recorded_as = outcome
    if found is not None and found.cut:
        cut = f"alert '{alert.name}': {cut_result(spec.max)}"
        recorded_as = Outcome("ERROR", error=cut, duration_ms=outcome.duration_ms)
    about = alert_payload(alert, recorded_as, settings.run_id, run_url)
    cycle = AlertCycle(alert, outcome, result, query_error=outcome.error, dry_run=settings.dry_run)
    try:
        state = store()
        recorded = state.record_instances(
            labels,
            recorded_as,
            settings_of(alert, config, settings.lineage),
            {channel: events & {"error"} for channel, events in channels.items()},
            about,
            None if found is None else _rows(alert, found, labels, about),
            settings.run_id,
            instance_channels=_router(config, alert, targets, channels),
            cut=found is not None and found.cut,
            missing_after=spec.missing_after,
            most=spec.max,
            dry_run=settings.dry_run,
            tick=None if settings.dry_run else settings.tick,
        )
    except STATE_ERRORS as exc:
        return replace(cycle, state_error=state_failure(alert, outcome, exc))
    cycle = replace(cycle, decision=recorded.parent, instances=recorded)
    if settings.dry_run:
        return cycle
    skip = [c for c, _ in grouped_channels(targets, fallback)]
    reports = deliver_to(state, alert.name, targets, fallback, about, settings, logger, skip=skip)
    reports += deliver_instances(state, alert, targets, fallback, about, settings, logger)
    cycle = replace(cycle, reports=reports)
    return cycle if settings.group_later else deliver_groups([cycle], config, state, settings, logger)[0]


def instance_targets(targets: Sequence[NotifyTarget]) -> tuple[list[int], list[int]]:
    """The positions of ``targets`` that get one message listing the instances (every channel that lists many
    alerts in one message and has no template of its own for one) and of those that get a message per instance
    (PagerDuty, an incident per instance; a target with a ``subject`` or ``body`` template)."""
    listed: list[int] = []
    each: list[int] = []
    for index, target in enumerate(targets):
        templated = any(getattr(target, name, None) is not None for name in ("subject", "body"))
        (each if target.channel == "pagerduty" or templated else listed).append(index)
    return listed, each


def _router(
    config: LoadedConfig, alert: AlertConfig, targets: Sequence[NotifyTarget], channels: Mapping[str, set[str]]
) -> Callable[[InstanceLabels], Mapping[str, Collection[str]]]:
    """The channels an instance with given labels notifies: every target's, or with ``routes:`` by label only
    those of the routes its labels match (:meth:`.LoadedConfig.routed_positions`)."""
    chosen: dict[tuple[int, ...], dict[str, set[str]]] = {}

    def channels_for(labels: InstanceLabels) -> Mapping[str, Collection[str]]:
        positions = config.routed_positions(alert, labels)
        if positions is None:
            return channels
        key = tuple(positions)
        if key not in chosen:
            wanted = {channel_id(i, targets[i]) for i in positions}
            chosen[key] = {c: events for c, events in channels.items() if c in wanted}
        return chosen[key]

    return channels_for


@without_collection
def _rows(alert: AlertConfig, found: InstanceResult, parent: AlertLabels, about: dict[str, Any]) -> list[InstanceRow]:
    """Each row of ``found`` as an instance to record, with its labels for silences and its message."""
    rows = []
    for row in found.rows:
        result = row.result
        outcome = Outcome(result.status, result.actual_value, result.threshold, result.context, None)
        shown = json_safe(
            {"actual_value": result.actual_value, "threshold": result.threshold, "context": result.context}
        )
        payload = {**about, **shown, **baseline_payload(result), "status": result.status, "error": None}
        payload.update(instance=row.name, labels=row.labels)
        labels = InstanceLabels.of(parent, row.name, row.labels)
        rows.append(InstanceRow(labels, outcome, payload))
    return rows


def deliver_instances(
    store: StateStore,
    alert: AlertConfig,
    targets: Sequence[NotifyTarget],
    fallback: Sequence[NotifyTarget],
    about: dict[str, Any],
    settings: CycleSettings,
    logger: Logger,
) -> list[DeliveryReport]:
    """Deliver every undelivered notification of ``alert``'s instances: one message per listing target (several
    when one would be over the channel's limits), and one per instance on the others. Each notification is
    claimed and recorded on its own, so a retry holds only what is undelivered."""
    pending = store.instance_pending(alert.name)
    if not pending:
        return []
    listed, each = instance_targets(targets)
    reports: list[DeliveryReport] = []
    offered = {channel_id(i, t) for i, t in enumerate(targets)}
    for intents in pending.values():  # left by an earlier version of the file: given up, and the fallback told
        gone = [i for i in intents if i.channel not in offered]
        if gone:
            reports += _fail(store, gone, f"{gone[0].channel}: {NO_LONGER_LISTED}", settings)
    members: dict[str, list[tuple[str, NotifyTarget]]] = {}
    for name, intents in pending.items():
        for i in listed:
            target = _addressed(store, targets[i], channel_id(i, targets[i]), intents, settings, reports)
            if target is not None:
                members.setdefault(name, []).append((channel_id(i, targets[i]), target))
    reports += [r for found in deliver_to_groups(members, store, settings, logger).values() for r in found]
    if each:
        skip = [channel_id(i, t) for i, t in enumerate(targets) if i not in each]
        skip += [channel_id(i, t, FALLBACK) for i, t in enumerate(fallback)]
        shared = {i: _one_notifier(alert.name, targets[i], settings, logger) for i in each}
        own_channels = {channel_id(i, targets[i]) for i in each}
        for name, intents in pending.items():
            if not any(intent.channel in own_channels for intent in intents):
                continue
            notifiers: dict[str, Notifier | SentinelError] = {}
            for i in each:
                target = _addressed(store, targets[i], channel_id(i, targets[i]), intents, settings, reports)
                if target is not None:
                    own = shared[i] if target is targets[i] else _one_notifier(name, target, settings, logger)
                    notifiers[channel_id(i, targets[i])] = own
            reports += deliver_pending(store, name, notifiers, **delivery_options(settings), skip=skip)
    lost = [r for r in reports if r.given_up]
    tell_fallback_lost(alert.name, about, lost, fallback, settings, logger)
    return reports


def _addressed(
    store: StateStore,
    target: NotifyTarget,
    channel: str,
    intents: Sequence[Intent],
    settings: CycleSettings,
    reports: list[DeliveryReport],
) -> NotifyTarget | None:
    """``target`` for an instance's notifications on ``channel`` (``intents``: the instance's undelivered ones):
    with ``recipients_from``, addressed to the recipients its row's column names as well as the target's own.
    A row whose column holds no address, or a part that is not one, fails those notifications for good (named in
    ``reports``, so the fallback hears of them); nothing else fails. None when there is nothing to send."""
    if not isinstance(target, EmailTarget) or target.recipients_from is None:
        return target
    column = target.recipients_from
    mine = [i for i in intents if i.channel == channel]
    if not mine:
        return None
    row = mine[-1].payload
    value = _column(row.get("labels") or {}, column, _column(row.get("context") or {}, column))
    valid, invalid = recipients_of(value)
    if valid and not invalid:
        return target.model_copy(update={"recipients": list(dict.fromkeys([*target.recipients, *valid]))})
    shown = ", ".join(repr(part) for part in invalid[:3]) or "no address"
    error = f"{channel}: recipients_from '{column}' of {mine[-1].alert} holds {shown}, not an email address"
    reports += _fail(store, mine, error, settings)
    return None


def _column(values: Mapping[str, Any], column: str, default: Any = None) -> Any:
    """``values[column]``, the name matched as ``by`` columns are, whatever its case (``OWNER_EMAIL``)."""
    if column in values:
        return values[column]
    lowered = column.lower()
    return next((value for key, value in values.items() if key.lower() == lowered), default)


def _fail(store: StateStore, intents: Sequence[Intent], error: str, settings: CycleSettings) -> list[DeliveryReport]:
    """Give up on ``intents`` for good with ``error`` (those another run holds are left to it): their reports."""
    claimed = store.claim_many([i.id for i in intents], settings.run_id, settings.lease)
    store.finish_many(sorted(claimed), delivered=False, error=error, permanent=True)
    return [DeliveryReport(i.channel, i.event, "failed", 0, error) for i in intents if i.id in claimed]


def _one_notifier(name: str, target: NotifyTarget, settings: CycleSettings, logger: Logger) -> Notifier | SentinelError:
    """The notifier of ``target`` for the alert or instance ``name`` (an error in its place if it cannot be built)."""
    return next(iter(notifiers_for(name, [target], settings.channels, logger).values()))
