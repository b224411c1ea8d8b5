"""What an alert's op does in a run: evaluate, decide and record, deliver, then show it all on the run."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import dagster as dg
import sqlalchemy as sa

from .config import AlertConfig, LoadedConfig
from .config.targets import NotifyTarget
from .errors import SentinelError
from .evaluate import AlertResult
from .naming import TAG_DECISION, TAG_STATUS
from .notifiers import ChannelSettings, DeliveryReport, channel_id, deliver_pending, notifiers_for
from .notifiers.probe import broadcast
from .redact import redact_text
from .resources import AlertStateResource, NotificationsResource, WarehouseResource
from .state.decision import Decision
from .state.model import Outcome, StateSettings
from .state.silences import AlertLabels

__all__ = ["FALLBACK", "AlertResources", "run_alert", "settings_of"]

FALLBACK = "fallback:"


def run_alert(
    context: dg.OpExecutionContext,
    alert: AlertConfig,
    config: LoadedConfig,
    resources: AlertResources,
    *,
    dry_run: bool,
) -> None:
    """Evaluate ``alert`` and act on the outcome; fail the run on a query error or an undelivered notification."""
    query_error: SentinelError | None = None
    result: AlertResult | None = None
    try:
        result = resources.warehouse.evaluate(alert)
        outcome = Outcome(
            result.status, result.actual_value, result.threshold, result.context, None, result.duration_ms
        )
    except SentinelError as exc:
        query_error = exc
        outcome = Outcome("ERROR", error=str(exc))
    settings = resources.notifications.channel_settings()
    targets, fallback = config.targets(alert), config.fallback_targets()
    channels: dict[str, set[str]] = {
        channel_id(i, t): {"firing", "reminder", "error", *(["resolved"] if t.send_resolved else [])}
        for i, t in enumerate(targets)
    }
    channels.update({channel_id(i, t, FALLBACK): {"error"} for i, t in enumerate(fallback)})
    labels = AlertLabels(alert.name, alert.severity, tuple(alert.owners), dict(alert.tags))
    payload = _payload(alert, outcome, context.run_id, settings.run_url(context.run_id))
    try:
        store = resources.state.get_store(context.instance)
        decision = store.record(labels, outcome, settings_of(alert), channels, payload, context.run_id, dry_run=dry_run)
    except (sa.exc.SQLAlchemyError, RuntimeError) as exc:
        context.instance.add_run_tags(context.run_id, {TAG_STATUS: outcome.status})
        cause = redact_text(str(getattr(exc, "orig", None) or exc).splitlines()[0])
        raise dg.Failure(
            description=f"alert '{alert.name}' is {outcome.status} but the alert state could not be recorded "
            f"(nothing was notified): {cause}",
            allow_retries=True,
        ) from None
    reports: list[DeliveryReport] = []
    if not dry_run:
        notifiers = {
            **notifiers_for(alert.name, targets, settings, context.log),
            **notifiers_for(alert.name, fallback, settings, context.log, FALLBACK),
        }
        reports = deliver_pending(
            store,
            alert.name,
            notifiers,
            run_id=context.run_id,
            retry=settings.retry,
            lease=dt.timedelta(seconds=resources.state.delivery_lease_seconds),
            expire_after=dt.timedelta(hours=resources.state.notification_expiry_hours),
        )
        _tell_fallback(context, alert, payload, [r for r in reports if r.given_up], fallback, settings)
    _show(context, alert, outcome, decision, reports, dry_run, result)
    if query_error is not None:
        raise dg.Failure(description=str(query_error), allow_retries=False)
    undelivered = [r for r in reports if r.outcome != "delivered"]
    if undelivered:
        lines = "; ".join(f"{r.event} via {r.channel}: {r.error} ({_what_next(r)})" for r in undelivered)
        raise dg.Failure(description=f"alert '{alert.name}': {len(undelivered)} notification(s) not delivered: {lines}")


@dataclass(frozen=True)
class AlertResources:
    """The resources an alert's op uses."""

    warehouse: WarehouseResource
    state: AlertStateResource
    notifications: NotificationsResource


def _tell_fallback(
    context: dg.OpExecutionContext,
    alert: AlertConfig,
    payload: dict[str, Any],
    given_up: list[DeliveryReport],
    fallback: list[NotifyTarget],
    settings: ChannelSettings,
) -> None:
    """Tell the fallback receivers about notifications that will never be delivered."""
    if not given_up or not fallback:
        return
    lost = "; ".join(f"{r.event} via {r.channel} ({r.outcome}: {r.error})" for r in given_up)
    message = {
        **payload,
        "event": "error",
        "error": f"notification(s) of alert '{alert.name}' could not be delivered: {lost}",
        "reason": "delivery failed",
    }
    key = f"{alert.name}/fallback/{context.run_id}"
    for result in broadcast(alert.name, fallback, message, key, settings, context.log, FALLBACK):
        if result.delivered:
            context.log.warning(f"told fallback {result.channel} that notifications of '{alert.name}' were lost")
        else:
            context.log.error(f"fallback {result.channel} could not be told either: {result.error}")


def settings_of(alert: AlertConfig) -> StateSettings:
    """The state-machine settings of ``alert``."""
    interval = dt.timedelta(seconds=alert.repeat_interval) if alert.repeat_interval else None
    return StateSettings(interval, alert.for_, alert.recover_after, alert.error_after)


def _what_next(report: DeliveryReport) -> str:
    tries = f"{report.attempts} tr{'y' if report.attempts == 1 else 'ies'}"
    return {
        "retry": f"{tries}; will retry at the next evaluation",
        "failed": f"{tries}; not retryable, given up",
        "expired": "undelivered past the expiry, given up",
    }[report.outcome]


def _payload(alert: AlertConfig, outcome: Outcome, run_id: str, run_url: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = _json_safe(
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


def _show(
    context: dg.OpExecutionContext,
    alert: AlertConfig,
    outcome: Outcome,
    decision: Decision,
    reports: list[DeliveryReport],
    dry_run: bool,
    result: AlertResult | None,
) -> None:
    tags = {TAG_STATUS: outcome.status, TAG_DECISION: ("dry_run:" if dry_run else "") + decision.code}
    context.instance.add_run_tags(context.run_id, tags)
    values = _json_safe(
        {"actual_value": outcome.actual_value, "threshold": outcome.threshold, "context": outcome.context}
    )
    metadata: dict[str, Any] = {
        "status": outcome.status,
        "actual_value": _metadata_value(values["actual_value"]),
        "threshold": _metadata_value(values["threshold"]),
        "context": dg.MetadataValue.json(values["context"]),
        "decision": decision.code,
        "reason": decision.reason,
        "dry_run": dry_run,
        "notifications": dg.MetadataValue.json([r.__dict__ for r in reports]),
    }
    if result is not None:
        metadata["query_ms"] = round(result.duration_ms, 2)
        if result.more_rows:
            context.log.warning(f"alert '{alert.name}': the query returned more than one row; the first was used")
    context.add_output_metadata(metadata)
    prefix = "dry run: " if dry_run else ""
    shown = f"value {values['actual_value']!r}, threshold {values['threshold']!r}"
    log = context.log.warning if outcome.status != "OK" else context.log.info
    log(f"{prefix}alert '{alert.name}' is {outcome.status} ({shown}); decision: {decision.reason}")
    for report in reports:
        error = f" ({report.error})" if report.error else ""
        context.log.info(
            f"notification {report.event} via {report.channel}: {report.outcome} after {report.attempts} tries{error}"
        )


def _json_safe(values: Any) -> Any:
    """Database values (Decimal, datetime, ...) as JSON values: numbers stay numbers, the rest become text."""
    return json.loads(json.dumps(values, default=lambda v: float(v) if isinstance(v, Decimal) else str(v)))


def _metadata_value(value: Any) -> Any:
    if value is None:
        return dg.MetadataValue.null()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return dg.MetadataValue.text(str(value))
    return value
