"""Checks mode: every alert is an asset check, all evaluated by one job, ``sqlsentinel_checks``.

A run evaluates the checks it was launched with (a schedule's batch, a materialization burst, or the checks
picked in the UI). Queries run concurrently in a bounded pool, each warehouse at most ``pool_size`` at once;
each alert goes through the same :func:`~.cycle.run_cycle` as in jobs mode and its check evaluation is recorded
as soon as it is done, so one slow or failing alert never holds back the others.
"""

# No `from __future__ import annotations` here: Dagster inspects the op's `context` annotation at runtime.

from collections.abc import Iterator
from typing import TYPE_CHECKING

import dagster as dg

from ..config import AlertConfig, LoadedConfig
from ..errors import ConfigError, ConfigProblem
from ..naming import (
    NOTIFICATIONS_RESOURCE_KEY,
    PLAIN_NAMES,
    STATE_RESOURCE_KEY,
    FileNames,
    check_name,
)
from .checks_batch import ChecksConfig, evaluate_batch

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
        yield from evaluate_batch(context, alerts, loaded, config, names, lambda a: alert_asset_key(a, loaded, names))

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


def build_checks_job(
    checks: dg.AssetChecksDefinition, names: FileNames = PLAIN_NAMES, tags: dict[str, str] | None = None
) -> "AssetJob":
    """``sqlsentinel_checks``: the one job that runs any subset of the alert checks; every run gets ``tags``
    (``runs:`` in the file)."""
    return dg.define_asset_job(
        names.checks_job,
        selection=dg.AssetSelection.checks(checks),
        description="Evaluate SQL alerts as asset checks (schedules and sensors launch it with the alerts due).",
        executor_def=dg.in_process_executor,
        tags=tags or None,
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
