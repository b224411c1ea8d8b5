"""One alert's cycle, without Dagster: evaluate the query, decide and record, deliver, tell the fallback.

Every way of running alerts (a job per alert, a batch of asset checks, the CLI) calls :func:`run_cycle` and
only differs in how it shows the returned :class:`AlertCycle`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ..config import AlertConfig, LoadedConfig
from ..config.targets import NotifyTarget
from ..errors import SentinelError, StateDatabaseError
from ..notifiers import ChannelSettings, DeliveryReport, channel_id, deliver_grouped, deliver_pending, notifiers_for
from ..notifiers.probe import broadcast
from ..notifiers.retry import tries
from ..redact import redact_text
from ..state.decision import Decision
from ..state.model import Outcome, StateSettings
from ..state.silences import AlertLabels
from ..state.store import StateStore
from .learned import baseline_payload, judged
from .results import AlertResult

__all__ = [
    "FALLBACK",
    "AlertCycle",
    "CycleSettings",
    "deliver_groups",
    "deliver_to",
    "delivery_options",
    "grouped_channels",
    "json_safe",
    "ledger_channels",
    "run_cycle",
    "settings_of",
    "tell_fallback_lost",
]

FALLBACK = "fallback:"

Logger = logging.Logger | logging.LoggerAdapter[Any]


@dataclass(frozen=True)
class CycleSettings:
    """What every cycle of a run shares: channel settings, delivery lease and expiry, the run's identity."""

    channels: ChannelSettings
    lease: dt.timedelta
    expire_after: dt.timedelta
    run_id: str | None
    dry_run: bool = False
    run_ended: Callable[[str], bool] | None = None
    """Whether another run has ended (then a notification it was sending is taken over at once)."""
    group_later: bool = False
    """Leave notifications for ``group: true`` targets to :func:`deliver_groups` over the whole batch (checks
    mode); otherwise each cycle delivers its own as a group of one."""


@dataclass(frozen=True)
class AlertCycle:
    """What one evaluation of one alert did: its outcome, the decision, and each notification's fate."""

    alert: AlertConfig
    outcome: Outcome
    result: AlertResult | None = None
    decision: Decision | None = None
    reports: list[DeliveryReport] = field(default_factory=list)
    query_error: str | None = None
    """The query failed or broke the result contract (the outcome is ERROR)."""
    state_error: str | None = None
    """The outcome could not be recorded, so nothing was notified; worth retrying the run."""
    dry_run: bool = False

    @property
    def undelivered(self) -> list[DeliveryReport]:
        """Notifications this cycle tried and did not deliver (not those another run is sending)."""
        return [r for r in self.reports if r.outcome not in ("delivered", "in_flight")]

    @property
    def failure(self) -> str | None:
        """Why the run evaluating this alert must fail, or None."""
        if self.state_error:
            return self.state_error
        if self.query_error:
            return self.query_error
        if self.undelivered:
            lines = "; ".join(f"{r.event} via {r.channel}: {r.error} ({_what_next(r)})" for r in self.undelivered)
            return f"alert '{self.alert.name}': {len(self.undelivered)} notification(s) not delivered: {lines}"
        return None

    def shown_values(self) -> dict[str, Any]:
        """``actual_value``, ``threshold`` and ``context`` as JSON values (for metadata and logs)."""
        values: dict[str, Any] = json_safe(
            {
                "actual_value": self.outcome.actual_value,
                "threshold": self.outcome.threshold,
                "context": self.outcome.context,
            }
        )
        return values

    def values_text(self) -> str:
        """``value 7.5, threshold 5``: only what the query returned (empty for neither)."""
        values = self.shown_values()
        shown = (f"{word} {values[key]!r}" for key, word in _SHOWN if values[key] is not None)
        return ", ".join(shown)

    @property
    def several_rows(self) -> str | None:
        """Why only the first row counted, when a query (not a failed-rows alert) returned more than one."""
        if self.result is None or not self.result.more_rows or self.alert.rows is not None:
            return None
        return "the query returned more than one row; the first was used (return one row, e.g. with LIMIT 1)"

    def summary(self) -> str:
        """One line: the alert, its status and values, and the decision."""
        prefix = "dry run: " if self.dry_run else ""
        shown = f" ({self.values_text()})" if self.values_text() else ""
        reason = self.decision.reason if self.decision else "not recorded"
        return f"{prefix}alert '{self.alert.name}' is {self.outcome.status}{shown}; decision: {reason}"


_SHOWN = (("actual_value", "value"), ("threshold", "threshold"))


def run_cycle(
    alert: AlertConfig,
    config: LoadedConfig,
    evaluate: Callable[[AlertConfig], AlertResult],
    store: Callable[[], StateStore],
    settings: CycleSettings,
    logger: Logger,
) -> AlertCycle:
    """Evaluate ``alert``, record the decision, deliver what is pending; never raises for the alert's own errors."""
    query_error: str | None = None
    result: AlertResult | None = None
    try:
        result = evaluate(alert) if alert.baseline is None else judged(alert, evaluate(alert), store)
        outcome = Outcome(
            result.status, result.actual_value, result.threshold, result.context, None, result.duration_ms
        )
    except SentinelError as exc:
        query_error = str(exc)
        outcome = Outcome("ERROR", error=str(exc))
    targets, fallback = config.targets(alert), config.fallback_targets()
    channels = ledger_channels(targets, fallback)
    labels = AlertLabels(alert.name, alert.severity, tuple(alert.owners), dict(alert.tags))
    run_url = settings.channels.run_url(settings.run_id) if settings.run_id else None
    payload = {
        **_payload(alert, outcome, settings.run_id, run_url),
        **_rows_payload(alert, result),
        **baseline_payload(result),
    }
    cycle = AlertCycle(alert, outcome, result, query_error=query_error, dry_run=settings.dry_run)
    try:
        state = store()
        decision = state.record(
            labels, outcome, settings_of(alert), channels, payload, settings.run_id, dry_run=settings.dry_run
        )
    except (sa.exc.SQLAlchemyError, RuntimeError, StateDatabaseError) as exc:
        cause = redact_text(str(getattr(exc, "orig", None) or exc).splitlines()[0])
        state_error = (
            f"alert '{alert.name}' is {outcome.status} but the alert state could not be recorded "
            f"(nothing was notified): {cause}"
        )
        return replace(cycle, state_error=state_error)
    cycle = replace(cycle, decision=decision)
    if settings.dry_run:
        return cycle
    skip = [c for c, _ in grouped_channels(alert, config)]
    about = _payload(alert, outcome, settings.run_id, run_url)
    reports = deliver_to(state, alert.name, targets, fallback, about, settings, logger, skip=skip)
    cycle = replace(cycle, reports=reports)
    return cycle if settings.group_later else deliver_groups([cycle], config, state, settings, logger)[0]


def deliver_groups(
    cycles: Sequence[AlertCycle], config: LoadedConfig, store: StateStore, settings: CycleSettings, logger: Logger
) -> list[AlertCycle]:
    """Deliver the notifications of ``cycles`` bound for ``group: true`` targets: one message per target
    listing every alert (several, ``part 2 of 5``, when one would be over the channel's limits), each
    notification still claimed and recorded on its own. Returns the cycles with those deliveries added to
    their reports (the fallback hears about any given up)."""
    groups: dict[str, tuple[NotifyTarget, dict[str, list[str]]]] = {}
    for cycle in cycles:
        if cycle.decision is None or cycle.dry_run:
            continue
        for channel, target in grouped_channels(cycle.alert, config):
            key = target.model_dump_json()
            groups.setdefault(key, (target, {}))[1].setdefault(cycle.alert.name, []).append(channel)
    added: dict[str, list[DeliveryReport]] = {}
    for target, members in groups.values():
        notifier = notifiers_for(f"group of {len(members)}", [target], settings.channels, logger)
        reports = deliver_grouped(store, members, next(iter(notifier.values())), **delivery_options(settings))
        for alert, alert_reports in reports.items():
            added.setdefault(alert, []).extend(alert_reports)
    done = []
    for cycle in cycles:
        new = added.get(cycle.alert.name, [])
        _tell_fallback(cycle.alert, cycle.outcome, [r for r in new if r.given_up], config, settings, logger)
        done.append(replace(cycle, reports=[*cycle.reports, *new]) if new else cycle)
    return done


def ledger_channels(
    targets: Sequence[NotifyTarget], fallback: Sequence[NotifyTarget], *, send_resolved: bool = True
) -> dict[str, set[str]]:
    """The events each notify entry takes in the ledger, by channel id: a target takes firing, reminder, error
    and, unless its ``send_resolved`` (or ``send_resolved`` here) is off, resolved; a fallback target only error."""
    channels: dict[str, set[str]] = {
        channel_id(i, t): {"firing", "reminder", "error", *(["resolved"] if t.send_resolved and send_resolved else [])}
        for i, t in enumerate(targets)
    }
    channels.update({channel_id(i, t, FALLBACK): {"error"} for i, t in enumerate(fallback)})
    return channels


def deliver_to(
    store: StateStore,
    name: str,
    targets: Sequence[NotifyTarget],
    fallback: Sequence[NotifyTarget],
    about: dict[str, Any],
    settings: CycleSettings,
    logger: Logger,
    *,
    skip: Sequence[str] = (),
) -> list[DeliveryReport]:
    """Deliver what is pending for the alert ``name`` on its targets and fallback (except the ``skip`` channels,
    delivered grouped), then tell the fallback about any notification given up (``about``: the alert's message)."""
    notifiers = {
        **notifiers_for(name, targets, settings.channels, logger),
        **notifiers_for(name, fallback, settings.channels, logger, FALLBACK),
    }
    reports = deliver_pending(store, name, notifiers, **delivery_options(settings), skip=skip)
    tell_fallback_lost(name, about, [r for r in reports if r.given_up], fallback, settings, logger)
    return reports


def grouped_channels(alert: AlertConfig, config: LoadedConfig) -> list[tuple[str, NotifyTarget]]:
    """The channel ids of ``alert``'s targets (fallback included) that deliver grouped, with the targets."""
    return [
        *((channel_id(i, t), t) for i, t in enumerate(config.targets(alert)) if t.group),
        *((channel_id(i, t, FALLBACK), t) for i, t in enumerate(config.fallback_targets()) if t.group),
    ]


def delivery_options(settings: CycleSettings) -> dict[str, Any]:
    """The keyword arguments ``deliver_pending`` and ``deliver_grouped`` take from ``settings``."""
    return {
        "run_id": settings.run_id,
        "retry": settings.channels.retry,
        "lease": settings.lease,
        "expire_after": settings.expire_after,
        "run_ended": settings.run_ended,
    }


def settings_of(alert: AlertConfig) -> StateSettings:
    """The state-machine settings of ``alert``."""
    interval = dt.timedelta(seconds=alert.repeat_interval) if alert.repeat_interval else None
    return StateSettings(interval, alert.for_, alert.recover_after, alert.error_after)


def json_safe(values: Any) -> Any:
    """Database values (Decimal, datetime, ...) as JSON values: numbers stay numbers, the rest become text."""
    return json.loads(json.dumps(values, default=lambda v: float(v) if isinstance(v, Decimal) else str(v)))


def _tell_fallback(
    alert: AlertConfig,
    outcome: Outcome,
    given_up: list[DeliveryReport],
    config: LoadedConfig,
    settings: CycleSettings,
    logger: Logger,
) -> None:
    """Tell the fallback receivers about notifications that will never be delivered."""
    if not given_up:
        return
    run_url = settings.channels.run_url(settings.run_id) if settings.run_id else None
    about = _payload(alert, outcome, settings.run_id, run_url)
    tell_fallback_lost(alert.name, about, given_up, config.fallback_targets(), settings, logger)


def tell_fallback_lost(
    name: str,
    about: dict[str, Any],
    given_up: Sequence[DeliveryReport],
    fallback: Sequence[NotifyTarget],
    settings: CycleSettings,
    logger: Logger,
) -> None:
    """Tell the ``fallback`` receivers that notifications of the alert ``name`` (``about``: its message) will
    never be delivered."""
    if not given_up or not fallback:
        return
    lost = "; ".join(f"{r.event} via {r.channel} ({r.outcome}: {r.error})" for r in given_up)
    message = {
        **about,
        "event": "error",
        "error": f"notification(s) of alert '{name}' could not be delivered: {lost}",
        "reason": "delivery failed",
    }
    key = f"{name}/fallback/{settings.run_id}/{'+'.join(r.channel for r in given_up)}"
    for result in broadcast(name, fallback, message, key, settings.channels, logger, FALLBACK):
        if result.delivered:
            logger.warning(f"told fallback {result.channel} that notifications of '{name}' were lost")
        else:
            logger.error(f"fallback {result.channel} could not be told either: {result.error}")


def _what_next(report: DeliveryReport) -> str:
    attempts = tries(report.attempts)
    return {
        "retry": f"{attempts}; will retry at the next evaluation",
        "failed": f"{attempts}; not retryable, given up",
        "expired": "undelivered past the expiry, given up",
    }[report.outcome]


def _rows_payload(alert: AlertConfig, result: AlertResult | None) -> dict[str, Any]:
    """A failed-rows alert's rows for its messages: the count (``row_count_more``: at least that many), the
    columns, the rows kept, how many of them to show, and whether to attach them all as CSV."""
    if alert.rows is None or result is None:
        return {}
    rows: dict[str, Any] = json_safe(
        {
            "row_count": result.actual_value,
            "row_count_more": result.more_rows,
            "columns": list(result.columns),
            "rows": list(result.rows),
            "rows_shown": alert.rows.sample,
            "rows_attach": alert.rows.attach,
        }
    )
    return rows


def _payload(alert: AlertConfig, outcome: Outcome, run_id: str | None, run_url: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = json_safe(
        {
            "alert_name": alert.name,
            "status": outcome.status,
            "actual_value": outcome.actual_value,
            "threshold": outcome.threshold,
            "context": outcome.context,
            "error": outcome.error,
            "description": alert.description,
            "severity": alert.severity,
            "owners": list(alert.owners),
            "tags": dict(alert.tags),
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "run_id": run_id,
            "run_url": run_url,
        }
    )
    return payload
