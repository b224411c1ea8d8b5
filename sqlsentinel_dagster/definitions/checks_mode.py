"""Checks mode: every alert is an asset check, all evaluated by one job, ``sqlsentinel_checks``.

A run evaluates the checks it was launched with (a schedule's batch, a materialization burst, or the checks
picked in the UI). Queries run concurrently in a bounded pool, each warehouse at most ``pool_size`` at once;
each alert goes through the same :func:`~.cycle.run_cycle` as in jobs mode and its check evaluation is recorded
as soon as it is done, so one slow or failing alert never holds back the others.
"""

# No `from __future__ import annotations` here: Dagster inspects the op's `context` annotation at runtime.

import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from ..config import AlertConfig, LoadedConfig
from ..cycle.alert import AlertCycle, deliver_groups, run_cycle
from ..cycle.delivery import grouped_channels
from ..cycle.lineage_order import lineage_waves
from ..errors import ConfigError, ConfigProblem
from ..naming import (
    NOTIFICATIONS_RESOURCE_KEY,
    OWN_CHECK_METADATA,
    PLAIN_NAMES,
    STATE_RESOURCE_KEY,
    TAG_ALERT,
    TAG_DECISION,
    TAG_STATUS,
    FileNames,
    check_name,
)
from ..redact import redact_text
from ..state.model import Outcome
from .cycle_metadata import cycle_metadata, cycle_settings, log_cycle
from .resources import AlertStateResource, NotificationsResource, WarehouseResource

if TYPE_CHECKING:
    # The type define_asset_job returns is not exported by dagster: imported for type checking only, here only.
    from .._dagster import AssetJob

__all__ = [
    "AssetJob",
    "ChecksConfig",
    "alert_asset_key",
    "build_checks",
    "build_checks_job",
    "check_key",
    "warehouse_asset_key",
    "warehouse_assets",
]

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


def warehouse_asset_key(database: str, names: FileNames = PLAIN_NAMES) -> dg.AssetKey:
    """The asset that alerts without ``asset:`` are checks on: ``sqlsentinel/<database>`` (with the file's
    namespace: ``sqlsentinel/<namespace>/<database>``)."""
    return dg.AssetKey(names.warehouse_asset(database))


def alert_asset_key(alert: AlertConfig, config: LoadedConfig, names: FileNames = PLAIN_NAMES) -> dg.AssetKey:
    """The asset ``alert`` is a check on: its ``asset:``, else its warehouse's asset."""
    if alert.asset:
        return dg.AssetKey(list(alert.asset))
    return warehouse_asset_key(config.database_name(alert), names)


def check_key(alert: AlertConfig, config: LoadedConfig, names: FileNames = PLAIN_NAMES) -> dg.AssetCheckKey:
    """The asset check of ``alert``: its safe name, on its asset."""
    return dg.AssetCheckKey(alert_asset_key(alert, config, names), check_name(alert.name))


def warehouse_assets(config: LoadedConfig, names: FileNames = PLAIN_NAMES) -> list[dg.AssetSpec]:
    """``sqlsentinel/<database>`` for each warehouse with alerts that name no asset: external, not materializable,
    in group ``sqlsentinel``, so each such alert's check has a page without adding to the lineage graph."""
    databases = sorted({config.database_name(a) for a in config.alerts if not a.asset})
    return [
        dg.AssetSpec(
            warehouse_asset_key(name, names),
            group_name="sqlsentinel",
            description=f"SQL alerts on warehouse '{name}' that watch no particular asset (their checks are here).",
            kinds={"sql"},
        )
        for name in databases
    ]


def build_checks(config: LoadedConfig, names: FileNames = PLAIN_NAMES) -> dg.AssetChecksDefinition:
    """One multi-asset check holding every alert, subsettable so a run evaluates exactly what it selected."""
    by_key = {check_key(a, config, names): a for a in config.alerts}
    _refuse_output_collisions(by_key, config)
    specs = [_spec(alert, key, config) for key, alert in by_key.items()]
    databases = sorted(config.file.all_databases())

    @dg.multi_asset_check(
        specs=specs,
        name=names.checks_op,
        can_subset=True,
        required_resource_keys={
            STATE_RESOURCE_KEY,
            NOTIFICATIONS_RESOURCE_KEY,
            *(names.warehouse_resource(d) for d in databases),
        },
        description="Evaluate the selected SQL alerts: queries concurrently, each decided, recorded and notified.",
    )
    def evaluate_checks(context: dg.AssetCheckExecutionContext, config: ChecksConfig) -> Iterator[dg.AssetCheckResult]:
        alerts = [by_key[k] for k in sorted(context.selected_asset_check_keys, key=str) if k in by_key]
        yield from _evaluate(context, alerts, loaded, config, names)

    loaded = config
    return evaluate_checks


def _refuse_output_collisions(by_key: dict[dg.AssetCheckKey, AlertConfig], config: LoadedConfig) -> None:
    """Dagster names each check's output ``<asset as identifier>_<check>``, so (``a``, ``b_c``) and (``a_b``,
    ``c``) would silently become one check. Refuse that, naming both alerts."""
    seen: dict[str, AlertConfig] = {}
    problems: list[ConfigProblem] = []
    for key, alert in by_key.items():
        output = f"{key.asset_key.to_python_identifier()}_{key.name}"
        if output in seen:
            other = seen[output]
            problems.append(
                ConfigProblem(
                    0,
                    f"alert '{alert.name}'",
                    f"its check ({key.asset_key.to_user_string()}: {key.name}) gets the same Dagster name '{output}' "
                    f"as alert '{other.name}''s check; rename one of the alerts",
                    str(config.path),
                )
            )
        seen[output] = alert
    if problems:
        raise ConfigError(str(config.path), problems)


def build_checks_job(checks: dg.AssetChecksDefinition, names: FileNames = PLAIN_NAMES) -> "AssetJob":
    """``sqlsentinel_checks``: the one job that runs any subset of the alert checks."""
    return dg.define_asset_job(
        names.checks_job,
        selection=dg.AssetSelection.checks(checks),
        description="Evaluate SQL alerts as asset checks (schedules and sensors launch it with the alerts due).",
        executor_def=dg.in_process_executor,
    )


def _spec(alert: AlertConfig, key: dg.AssetCheckKey, config: LoadedConfig) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name=key.name,
        asset=key.asset_key,
        description=alert.description or f"SQL alert '{alert.name}'",
        metadata={
            "alert": alert.name,
            "database": config.database_name(alert),
            "severity": alert.severity,
            "schedule": f"{alert.schedule} ({alert.timezone})" if alert.schedule else "(on materialization only)",
            "on_materialization": str(alert.on_materialization).lower(),
            "query": dg.MetadataValue.md(f"```sql\n{alert.query.strip()}\n```"),
        },
    )


def _evaluate(
    context: dg.AssetCheckExecutionContext,
    alerts: Sequence[AlertConfig],
    config: LoadedConfig,
    run: ChecksConfig,
    names: FileNames,
) -> Iterator[dg.AssetCheckResult]:
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

    def one(alert: AlertConfig) -> tuple[AlertCycle, list[logging.LogRecord]]:
        log = _BufferedLog(alert.name)
        warehouse = warehouses[config.database_name(alert)]
        try:
            cycle = run_cycle(alert, config, warehouse.evaluate, lambda: state.get_store(instance), settings, log)
        except Exception as exc:  # a bug must cost this alert its result, not the whole batch
            error = redact_text(f"alert '{alert.name}': unexpected {type(exc).__name__}: {exc}".splitlines()[0])
            log.exception(error)
            cycle = AlertCycle(alert, Outcome("ERROR", error=error), state_error=error, dry_run=run.dry_run)
        return cycle, log.records

    if len(alerts) == 1:
        instance.add_run_tags(op.run_id, {TAG_ALERT: alerts[0].name})
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
                yield _reported(cycle, config, names, op.log, statuses, failures)
    if held:
        for cycle in deliver_groups(held, config, state.get_store(instance), settings, op.log):
            yield _reported(cycle, config, names, op.log, statuses, failures)
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


def _reported(
    cycle: AlertCycle, config: LoadedConfig, names: FileNames, log: Any, statuses: list[str], failures: list[str]
) -> dg.AssetCheckResult:
    """Log ``cycle`` (unless it is an OK alert that notified nobody: its check says it all), count it, and make
    its check result."""
    if cycle.outcome.status != "OK" or cycle.reports or (cycle.result and cycle.result.more_rows):
        log_cycle(log, cycle)
    statuses.append(cycle.outcome.status)
    if cycle.failure:
        failures.append(cycle.failure)
    return _check_result(cycle, config, names)


def _check_result(cycle: AlertCycle, config: LoadedConfig, names: FileNames) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=alert_asset_key(cycle.alert, config, names),
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
