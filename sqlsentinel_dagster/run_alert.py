"""What an alert's op does in a run: evaluate, decide and record, deliver, then show it all on the run."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import dagster as dg

from .config import AlertConfig
from .errors import SentinelError
from .evaluate import AlertResult
from .naming import TAG_DECISION, TAG_STATUS
from .notifiers import DeliveryReport, channel_id, deliver_pending, notifiers_for
from .resources import AlertStateResource, WarehouseResource
from .state.decision import Decision
from .state.model import Outcome, StateSettings
from .state.silences import AlertLabels

__all__ = ["run_alert"]


def run_alert(
    context: dg.OpExecutionContext,
    alert: AlertConfig,
    warehouse: WarehouseResource,
    state: AlertStateResource,
    *,
    dry_run: bool,
) -> None:
    """Evaluate ``alert`` and act on the outcome; fail the run on a query error or an undelivered notification."""
    query_error: SentinelError | None = None
    result: AlertResult | None = None
    try:
        result = warehouse.evaluate(alert)
        outcome = Outcome(
            result.status, result.actual_value, result.threshold, result.context, None, result.duration_ms
        )
    except SentinelError as exc:
        query_error = exc
        outcome = Outcome("ERROR", error=str(exc))
    store = state.get_store(context.instance)
    labels = AlertLabels(alert.name, alert.severity, tuple(alert.owners), dict(alert.tags))
    decision = store.record(
        labels,
        outcome,
        settings_of(alert),
        {channel_id(i, t): t.send_resolved for i, t in enumerate(alert.notify)},
        _payload(alert, outcome, context.run_id),
        context.run_id,
        dry_run=dry_run,
    )
    reports: list[DeliveryReport] = []
    if not dry_run:
        reports = deliver_pending(
            store,
            alert.name,
            notifiers_for(alert.name, alert.notify, context.log),
            run_id=context.run_id,
            lease=dt.timedelta(seconds=state.delivery_lease_seconds),
            expire_after=dt.timedelta(hours=state.notification_expiry_hours),
        )
    _show(context, alert, outcome, decision, reports, dry_run, result)
    if query_error is not None:
        raise dg.Failure(description=str(query_error), allow_retries=False)
    undelivered = [r for r in reports if r.outcome in ("retry", "failed")]
    if undelivered:
        lines = "; ".join(f"{r.event} via {r.channel}: {r.error} ({_what_next(r)})" for r in undelivered)
        raise dg.Failure(description=f"alert '{alert.name}': {len(undelivered)} notification(s) not delivered: {lines}")


def settings_of(alert: AlertConfig) -> StateSettings:
    """The state-machine settings of ``alert``."""
    interval = dt.timedelta(seconds=alert.repeat_interval) if alert.repeat_interval else None
    return StateSettings(interval, alert.for_, alert.recover_after, alert.error_after)


def _what_next(report: DeliveryReport) -> str:
    return "will retry at the next evaluation" if report.outcome == "retry" else "not retryable, given up"


def _payload(alert: AlertConfig, outcome: Outcome, run_id: str) -> dict[str, Any]:
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
        context.log.info(
            f"notification {report.event} via {report.channel}: {report.outcome}"
            + (f" ({report.error})" if report.error else "")
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
