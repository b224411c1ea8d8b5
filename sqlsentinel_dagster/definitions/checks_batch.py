"""One run of ``sqlsentinel_checks``: the selected alerts evaluated concurrently in a bounded pool (each warehouse
at most ``pool_size`` at once), upstream alerts first under ``inhibit: [{upstream: true}]``, each through the same
:func:`~..cycle.alert.run_cycle` as in jobs mode, its check result yielded as soon as it is done. Alerts already
evaluated for the run's schedule tick (a retried shard) are left out."""

# No `from __future__ import annotations` here: Dagster inspects the op's `context` annotation at runtime.

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from typing import Any

import dagster as dg
from pydantic import Field

from ..config import AlertConfig, LoadedConfig
from ..cycle.alert import AlertCycle, deliver_groups, deliver_recorded, run_cycle
from ..cycle.cycles import STATE_ERRORS
from ..cycle.delivery import grouped_channels
from ..cycle.lineage_order import lineage_waves
from ..naming import (
    NOTIFICATIONS_RESOURCE_KEY,
    OWN_CHECK_METADATA,
    STATE_RESOURCE_KEY,
    TAG_ALERT,
    TAG_DECISION,
    TAG_HOST,
    TAG_STATUS,
    FileNames,
    check_name,
    host,
)
from ..redact import redact_text
from ..state.model import Outcome
from ..state.store import StateStore
from .cycle_metadata import cycle_metadata, cycle_settings, log_cycle
from .resources import AlertStateResource, NotificationsResource, WarehouseResource

__all__ = ["TAG_ALERT_COUNT", "ChecksConfig", "evaluate_batch"]

TAG_ALERT_COUNT = "sqlsentinel/alerts"
_SEVERITY = {
    "critical": dg.AssetCheckSeverity.ERROR,
    "error": dg.AssetCheckSeverity.ERROR,
    "warning": dg.AssetCheckSeverity.WARN,
    "info": dg.AssetCheckSeverity.WARN,
}


class ChecksConfig(dg.Config):
    """Run configuration of ``sqlsentinel_checks`` (editable in the Launchpad)."""

    dry_run: bool = Field(
        default=False,
        description="Evaluate and show the decisions without notifying anyone or changing any alert's state.",
    )
    concurrency: int = Field(
        default=8, ge=1, le=64, description="Alerts evaluated at once (each warehouse also caps at its pool_size)."
    )


def evaluate_batch(
    context: dg.AssetCheckExecutionContext,
    alerts: Sequence[AlertConfig],
    config: LoadedConfig,
    run: ChecksConfig,
    names: FileNames,
    asset_of: Callable[[AlertConfig], dg.AssetKey],
) -> Iterator[dg.AssetCheckResult]:
    """Evaluate ``alerts`` (the run's selected checks) and yield each one's check result on ``asset_of`` it."""
    op = context.op_execution_context
    resources = op.resources
    state: AlertStateResource = getattr(resources, STATE_RESOURCE_KEY)
    notifications: NotificationsResource = getattr(resources, NOTIFICATIONS_RESOURCE_KEY)
    settings = replace(cycle_settings(op, state, notifications, run.dry_run), group_later=True)
    warehouses = {
        name: _Warehouse(getattr(resources, names.warehouse_resource(name))) for name in config.file.all_databases()
    }
    instance = context.instance
    failures: list[str] = []
    statuses: list[str] = []

    def store() -> StateStore:
        return state.get_store(instance)

    done = _evaluated_for_tick(alerts, None if run.dry_run else settings.tick, store, op.log)

    def one(alert: AlertConfig) -> tuple[AlertCycle, list[logging.LogRecord]]:
        log = _BufferedLog(alert.name)
        warehouse = warehouses[config.database_name(alert)]
        try:
            if alert.name in done:
                cycle = deliver_recorded(alert, config, store, settings, log)
            else:
                cycle = run_cycle(alert, config, warehouse.evaluate, store, settings, log)
        except Exception as exc:  # a bug must cost this alert its result, not the whole batch
            error = redact_text(f"alert '{alert.name}': unexpected {type(exc).__name__}: {exc}".splitlines()[0])
            log.exception(error)
            cycle = AlertCycle(alert, Outcome("ERROR", error=error), state_error=error, dry_run=run.dry_run)
        return cycle, log.records

    instance.add_run_tags(op.run_id, {TAG_HOST: host(), **({TAG_ALERT: alerts[0].name} if len(alerts) == 1 else {})})
    with ThreadPoolExecutor(
        max_workers=max(1, min(run.concurrency, len(alerts))), thread_name_prefix="sqlsentinel"
    ) as pool:
        held: list[AlertCycle] = []  # alerts with group: true targets, reported once the groups are sent
        for wave in lineage_waves(alerts, config, settings.lineage):  # upstream alerts first (inhibit: upstream)
            for future in as_completed([pool.submit(one, alert) for alert in wave]):
                cycle, records = future.result()
                for record in records:
                    op.log.log(record.levelno, record.getMessage())
                if (
                    grouped_channels(config.targets(cycle.alert), config.fallback_targets())
                    and cycle.decision is not None
                    and not run.dry_run
                ):
                    held.append(cycle)
                    continue
                yield from _reported(cycle, asset_of, op.log, statuses, failures)
    if held:
        for cycle in deliver_groups(held, config, store(), settings, op.log):
            yield from _reported(cycle, asset_of, op.log, statuses, failures)
    status = "ERROR" if "ERROR" in statuses else "ALERT" if "ALERT" in statuses else "OK"
    instance.add_run_tags(
        op.run_id,
        {
            TAG_STATUS: status,
            TAG_DECISION: "dry_run:batch" if run.dry_run else "batch",
            TAG_ALERT_COUNT: str(len(alerts)),
        },
    )
    if failures:
        shown = "\n".join(f"- {f}" for f in failures[:20])
        more = f"\n(and {len(failures) - 20} more)" if len(failures) > 20 else ""
        raise dg.Failure(description=f"{len(failures)} of {len(alerts)} alert(s) failed:\n{shown}{more}")


def _evaluated_for_tick(
    alerts: Sequence[AlertConfig], tick: str | None, store: Callable[[], StateStore], log: Any
) -> set[str]:
    """Which of ``alerts`` another run of the schedule tick ``tick`` already evaluated (a retried shard, or the same
    tick launched twice): they are not evaluated again and their check outputs are left out, as a subsettable
    check allows; what their evaluation left undelivered is delivered."""
    if tick is None:
        return set()
    try:
        done = store().ticked([alert.name for alert in alerts], tick)
    except STATE_ERRORS:  # each alert's own record says what is wrong with the state database
        return set()
    if done:
        shown = ", ".join(sorted(done)[:10]) + (f" and {len(done) - 10} more" if len(done) > 10 else "")
        log.info(f"{len(done)} alert(s) already evaluated for the tick of {tick}, not evaluated again: {shown}")
    return done


def _reported(
    cycle: AlertCycle,
    asset_of: Callable[[AlertConfig], dg.AssetKey],
    log: Any,
    statuses: list[str],
    failures: list[str],
) -> Iterator[dg.AssetCheckResult]:
    """Log ``cycle`` (unless it is an OK alert that notified nobody: its check says it all), count it, and make
    its check result; none for an alert another run of the tick evaluated (that run's result stands)."""
    if cycle.failure:
        failures.append(cycle.failure)
    if cycle.decision is not None and cycle.decision.code == "already_evaluated":
        if cycle.reports:
            log.info(f"alert '{cycle.alert.name}': delivered what its evaluation for this tick left undelivered")
            log_cycle(log, cycle)
        return
    if cycle.outcome.status != "OK" or cycle.reports or (cycle.result and cycle.result.more_rows):
        log_cycle(log, cycle)
    statuses.append(cycle.outcome.status)
    yield dg.AssetCheckResult(
        asset_key=asset_of(cycle.alert),
        check_name=check_name(cycle.alert.name),
        passed=cycle.outcome.status == "OK",
        severity=_SEVERITY[cycle.alert.severity],
        metadata={**cycle_metadata(cycle), OWN_CHECK_METADATA: cycle.alert.name},
        description=cycle.summary(),
    )


class _Warehouse:
    """A warehouse resource whose queries are capped at its pool size at once."""

    def __init__(self, resource: WarehouseResource) -> None:
        self.resource = resource
        self.slots = threading.BoundedSemaphore(resource.pool_size())

    def evaluate(self, alert: AlertConfig) -> Any:
        with self.slots:
            return self.resource.evaluate(alert)


class _BufferedLog(logging.Logger):
    """A logger that keeps its records, so a worker thread's lines reach the run's log from the main thread."""

    def __init__(self, name: str) -> None:
        super().__init__(f"sqlsentinel.{name}")
        self.propagate = False
        self.records: list[logging.LogRecord] = []

    def handle(self, record: logging.LogRecord) -> None:
        self.records.append(record)
