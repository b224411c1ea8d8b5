"""What both modes show of a cycle in Dagster: its settings from the run, its metadata, its log lines."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import dagster as dg

from .._dagster import scheduled_tick
from ..cycle.alert import AlertCycle
from ..cycle.cycles import MAX_REPORTS
from ..cycle.delivery import CycleSettings
from ..state.instance_model import InstanceDecision
from .lineage import AssetLineage
from .resources import AlertStateResource, NotificationsResource

__all__ = ["cycle_metadata", "cycle_settings", "log_cycle"]


def cycle_settings(
    context: dg.OpExecutionContext, state: AlertStateResource, notifications: NotificationsResource, dry_run: bool
) -> CycleSettings:
    """The settings every alert evaluated by this op shares."""
    return CycleSettings(
        channels=notifications.channel_settings(),
        lease=dt.timedelta(seconds=state.delivery_lease_seconds),
        expire_after=dt.timedelta(hours=state.notification_expiry_hours),
        run_id=context.run_id,
        dry_run=dry_run,
        run_ended=_run_ended(context.instance),
        lineage=AssetLineage(context.instance),
        tick=scheduled_tick(context.run.tags),
    )


def cycle_metadata(cycle: AlertCycle) -> dict[str, Any]:
    """What a run (or an asset check evaluation) shows of one cycle; numbers as numbers so the UI plots them."""
    values = cycle.shown_values()
    metadata: dict[str, Any] = {
        "status": cycle.outcome.status,
        "actual_value": _metadata_value(values["actual_value"]),
        "threshold": _metadata_value(values["threshold"]),
        "context": dg.MetadataValue.json(values["context"]),
        "decision": cycle.decision.code if cycle.decision else "not_recorded",
        "reason": cycle.decision.reason if cycle.decision else (cycle.state_error or ""),
        "dry_run": cycle.dry_run,
        "notifications": dg.MetadataValue.json(cycle.report_data()),
    }
    if cycle.result is not None:
        metadata["query_ms"] = dg.MetadataValue.float(round(cycle.result.duration_ms, 2))
    verdict = cycle.result.verdict if cycle.result is not None else None
    if verdict is not None:
        metadata["baseline_reason"] = verdict.reason
        if verdict.band is not None:  # plotted beside actual_value on the asset check page
            metadata.update({k: _metadata_value(v) for k, v in verdict.band.as_metadata().items()})
    if cycle.result is not None and cycle.alert.rows is not None:
        metadata["row_count"] = dg.MetadataValue.int(int(cycle.result.actual_value))
        metadata["rows"] = dg.MetadataValue.md(_markdown_rows(cycle, cycle.alert.rows.sample))
    if cycle.instances is not None and cycle.query_error is None:  # a failed query evaluated no instance
        firing = [d for d in cycle.instances.instances if d.decision.state.condition == "firing"]
        metadata["instances"] = dg.MetadataValue.int(cycle.instances.current)
        metadata["firing_instances"] = dg.MetadataValue.int(len(firing))
        metadata["firing"] = dg.MetadataValue.md(_markdown_instances(firing))
    if cycle.several_rows:
        metadata["warning"] = cycle.several_rows
    if cycle.outcome.error:
        metadata["error"] = cycle.outcome.error
    return metadata


MAX_TABLE_ROWS = 100
"""The most instances a run's or check's table of firing instances lists (the count says how many there are)."""


def _markdown_instances(firing: list[InstanceDecision]) -> str:
    """The firing instances as a markdown table (labels, value, threshold, firing since), at most
    :data:`MAX_TABLE_ROWS` of them."""
    if not firing:
        return "no instance is firing"
    shown = sorted(firing, key=lambda d: d.name)[:MAX_TABLE_ROWS]
    keys = sorted({key for d in shown for key in d.labels})
    header = [*keys, "value", "threshold", "firing since"]
    lines = [" | ".join(_md_cell(c) for c in header), " | ".join("---" for _ in header)]
    for item in shown:
        outcome, since = item.outcome, item.decision.state.firing_since
        values = [outcome.actual_value, outcome.threshold] if outcome is not None else ["(missing)", ""]
        cells = [item.labels.get(k, "") for k in keys] + values + [since.isoformat(timespec="seconds") if since else ""]
        lines.append(" | ".join(_md_cell(c) for c in cells))
    more = f"\n\n{len(firing) - len(shown):,} more not listed" if len(firing) > len(shown) else ""
    count = f"{len(firing):,} instance{'s' if len(firing) != 1 else ''} firing"
    return f"{count}:\n\n" + "\n".join(f"| {line} |" for line in lines) + more


def log_cycle(log: Any, cycle: AlertCycle) -> None:
    """Write the cycle's summary and each notification's fate to ``log`` (a run's log)."""
    if cycle.several_rows:
        log.warning(f"alert '{cycle.alert.name}': {cycle.several_rows}")
    (log.warning if cycle.outcome.status != "OK" else log.info)(cycle.summary())
    if len(cycle.reports) <= MAX_REPORTS:
        for report in cycle.reports:
            log.info(f"notification {report.describe()}")
        return
    for line in cycle.report_data():  # an instance alert's thousands: one line per channel, event, outcome and part
        part = f" ({line['part']})" if line.get("part") else ""
        log.info(f"{line['count']} notification(s) {line['event']} via {line['channel']}: {line['outcome']}{part}")


def _markdown_rows(cycle: AlertCycle, sample: int) -> str:
    """A failed-rows alert's first ``sample`` rows as a markdown table, with the count."""
    assert cycle.result is not None
    columns, rows = cycle.result.columns, cycle.result.rows[:sample]
    count = f"{'at least ' if cycle.result.more_rows else ''}{cycle.result.actual_value} rows"
    if not rows:
        return count
    lines = [" | ".join(_md_cell(c) for c in columns), " | ".join("---" for _ in columns)]
    lines += [" | ".join(_md_cell(row.get(c)) for c in columns) for row in rows]
    return f"{count}, the first {len(rows)}:\n\n" + "\n".join(f"| {line} |" for line in lines)


def _md_cell(value: Any) -> str:
    return str("" if value is None else value).replace("|", "\\|").replace("\n", " ")[:200]


def _metadata_value(value: Any) -> Any:
    if value is None:
        return dg.MetadataValue.null()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return dg.MetadataValue.text(str(value))
    return dg.MetadataValue.float(float(value))


def _run_ended(instance: dg.DagsterInstance) -> Callable[[str], bool]:
    """Whether Dagster records the run as finished (success, failure or canceled): it sends nothing any more."""

    def ended(run_id: str) -> bool:
        run = instance.get_run_by_id(run_id)
        return run is not None and run.is_finished

    return ended
