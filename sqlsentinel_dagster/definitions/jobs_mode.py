"""Jobs mode: one job and one schedule per alert. The job's op (one per warehouse, shared by its jobs) runs one
:func:`~..cycle.alert.run_cycle` and shows it all on the run."""

# No `from __future__ import annotations`: Dagster inspects the op's `context` and `config` annotations at runtime.

from dataclasses import dataclass
from typing import Any

import dagster as dg
from pydantic import Field

from ..config import AlertConfig, LoadedConfig
from ..cycle.alert import AlertCycle, run_cycle
from ..naming import (
    NOTIFICATIONS_RESOURCE_KEY,
    PLAIN_NAMES,
    STATE_RESOURCE_KEY,
    TAG_ALERT,
    TAG_DATABASE,
    TAG_DECISION,
    TAG_HOST,
    TAG_SEVERITY,
    TAG_STATUS,
    FileNames,
    host,
    job_name,
    schedule_name,
)
from .cycle_metadata import cycle_metadata, cycle_settings, log_cycle
from .resources import AlertStateResource, NotificationsResource, WarehouseResource

__all__ = ["AlertResources", "EvaluateConfig", "build_evaluate_op", "build_job", "build_schedule", "run_alert"]


@dataclass(frozen=True)
class AlertResources:
    """The resources an alert's op uses."""

    warehouse: WarehouseResource
    state: AlertStateResource
    notifications: NotificationsResource


def run_alert(
    context: dg.OpExecutionContext,
    alert: AlertConfig,
    config: LoadedConfig,
    resources: AlertResources,
    *,
    dry_run: bool,
) -> None:
    """Evaluate ``alert`` and act on the outcome; fail the run on a query error or an undelivered notification."""
    cycle = run_cycle(
        alert,
        config,
        resources.warehouse.evaluate,
        lambda: resources.state.get_store(context.instance),
        cycle_settings(context, resources.state, resources.notifications, dry_run),
        context.log,
    )
    if cycle.state_error:
        context.instance.add_run_tags(context.run_id, {TAG_STATUS: cycle.outcome.status})
        raise dg.Failure(description=cycle.state_error, allow_retries=True)
    _show(context, cycle)
    if cycle.failure:
        raise dg.Failure(description=cycle.failure, allow_retries=not cycle.query_error)


def _show(context: dg.OpExecutionContext, cycle: AlertCycle) -> None:
    assert cycle.decision is not None
    prefix = "dry_run:" if cycle.dry_run else ""
    context.instance.add_run_tags(
        context.run_id, {TAG_STATUS: cycle.outcome.status, TAG_DECISION: prefix + cycle.decision.code, TAG_HOST: host()}
    )
    context.add_output_metadata(cycle_metadata(cycle))
    log_cycle(context.log, cycle)


class EvaluateConfig(dg.Config):
    """Run configuration of an alert job (editable in the Launchpad)."""

    dry_run: bool = Field(
        default=False,
        description="Evaluate and show the decision without notifying anyone or changing the alert's state.",
    )


def build_evaluate_op(database: str, loaded: LoadedConfig, names: FileNames = PLAIN_NAMES) -> dg.OpDefinition:
    """The op that evaluates alerts on ``database``; it finds its alert from the job it runs in.

    One op per warehouse, shared by that warehouse's jobs, keeps thousands of jobs cheap to load.
    """
    warehouse_key = names.warehouse_resource(database)

    @dg.op(
        name=names.evaluate_op(database),
        description=f"Run the job's alert query on database '{database}', decide, record and notify.",
        required_resource_keys={warehouse_key, STATE_RESOURCE_KEY, NOTIFICATIONS_RESOURCE_KEY},
        out=dg.Out(dg.Nothing),
    )
    def evaluate_alert(context: dg.OpExecutionContext, config: EvaluateConfig) -> None:
        resources = AlertResources(
            warehouse=getattr(context.resources, warehouse_key),
            state=getattr(context.resources, STATE_RESOURCE_KEY),
            notifications=getattr(context.resources, NOTIFICATIONS_RESOURCE_KEY),
        )
        alert = loaded.alert(context.job_def.tags[TAG_ALERT])  # the job's own tag: run tags can be edited
        run_alert(context, alert, loaded, resources, dry_run=config.dry_run)

    return evaluate_alert


def build_job(alert: AlertConfig, config: LoadedConfig, evaluate_op: dg.OpDefinition) -> dg.JobDefinition:
    """The job of ``alert``: the evaluate op of its warehouse, the alert's description, owners and tags."""
    tags = {**alert.tags, TAG_ALERT: alert.name, TAG_SEVERITY: alert.severity}
    database = config.database_name(alert)
    return dg.JobDefinition(
        graph_def=dg.GraphDefinition(name=job_name(alert.name), node_defs=[evaluate_op]),
        description=alert.description or f"SQL alert '{alert.name}'",
        tags=tags,
        run_tags={**config.file.runs.run_tags(), **tags, TAG_DATABASE: database},
        metadata=_job_metadata(alert, database, config),
        owners=alert.owners or None,
        executor_def=dg.in_process_executor,  # one op: a subprocess per step would only add latency
    )


def build_schedule(alert: AlertConfig, job: dg.JobDefinition) -> dg.ScheduleDefinition:
    """The schedule of ``alert``: its cron in its timezone; RUNNING when enabled unless the file says otherwise."""
    assert alert.schedule is not None, "alerts without a schedule run on materialization only"
    return dg.ScheduleDefinition(
        name=schedule_name(alert.name),
        cron_schedule=alert.schedule,
        execution_timezone=alert.timezone,
        job=job,
        description=f"Evaluate '{alert.name}' on '{alert.schedule}' ({alert.timezone})",
        default_status=(
            dg.DefaultScheduleStatus.RUNNING if alert.schedule_running else dg.DefaultScheduleStatus.STOPPED
        ),
    )


def _job_metadata(alert: AlertConfig, database: str, config: LoadedConfig) -> dict[str, Any]:
    return {
        "query": dg.MetadataValue.md(f"```sql\n{alert.query.strip()}\n```"),
        "schedule": f"{alert.schedule} ({alert.timezone})" if alert.schedule else "(on materialization only)",
        **({"asset": dg.MetadataValue.asset(dg.AssetKey(list(alert.asset)))} if alert.asset else {}),
        "on_materialization": str(alert.on_materialization).lower(),
        "database": database,
        "severity": alert.severity,
        "enabled": str(alert.enabled).lower(),
        "timeout_seconds": alert.timeout,
        "channels": ", ".join(target.channel for target in config.targets(alert)) or "(none)",
        "alerts_file": dg.MetadataValue.path(str(config.path)),
    }
