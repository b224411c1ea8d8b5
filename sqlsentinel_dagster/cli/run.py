"""``sqlsentinel run``: evaluate alerts now, in this process, through the same cycle as Dagster runs."""

from __future__ import annotations

import datetime as dt
import difflib
import json
import logging
import os
from typing import Any

import click

from ..config import AlertConfig, LoadedConfig
from ..cycle.alert import AlertCycle, json_safe, run_cycle
from ..cycle.cycles import MAX_REPORTS
from ..cycle.delivery import CycleSettings
from ..notifiers.base import text_table
from ..state.store import StateStore
from .common import NO_TABLES, database_option, load_or_exit, open_store, printable

__all__ = ["run"]


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--alert", "names", multiple=True, help="Evaluate this alert (repeatable); default: every enabled alert.")
@click.option("--dry-run", is_flag=True, help="Show each decision; notify nobody and change no state.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
def run(path: str, names: tuple[str, ...], dry_run: bool, as_json: bool, database_url: str | None) -> None:
    """Evaluate the alerts in PATH now: status, value, decision and what was notified, per alert.

    Uses the same state as Dagster runs (DAGSTER_HOME or --database-url), so a notification sent here is not
    sent again by the next scheduled run. With --dry-run and no state database, decisions are those of a first
    evaluation. Exit 1 if any alert errored or left a notification undelivered.
    """
    from ..definitions.resources import AlertStateResource, NotificationsResource, WarehouseResource

    config = load_or_exit(path)
    alerts = _selected(config, names)
    store = _state(database_url, dry_run)
    defaults = AlertStateResource()
    settings = CycleSettings(
        channels=NotificationsResource().channel_settings(),
        lease=dt.timedelta(seconds=defaults.delivery_lease_seconds),
        expire_after=dt.timedelta(hours=defaults.notification_expiry_hours),
        run_id=None,
        dry_run=dry_run,
    )
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the `log` channel writes here
    logger = logging.getLogger("sqlsentinel.run")
    warehouses = {
        name: WarehouseResource(config_path=str(config.path), database=name) for name in config.file.all_databases()
    }
    cycles = [
        run_cycle(alert, config, warehouses[config.database_name(alert)].evaluate, lambda: store, settings, logger)
        for alert in alerts
    ]
    if as_json:
        click.echo(json.dumps([_row(c) for c in cycles], indent=2, default=str))
    else:
        for cycle in cycles:
            _print(cycle)
    if any(c.failure for c in cycles):
        raise SystemExit(1)


def _selected(config: LoadedConfig, names: tuple[str, ...]) -> list[AlertConfig]:
    if not names:
        return [a for a in config.alerts if a.enabled]
    known = config.alert_names
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise click.ClickException(f"no alert named '{name}' in {config.path}{hint}")
    return [config.alert(name) for name in names]


def _state(database_url: str | None, dry_run: bool) -> StateStore:
    """The state store; a dry run creates no tables (without any, decisions are those of a first evaluation)."""
    first = "decisions as for a first evaluation"
    if dry_run and not database_url and not os.environ.get("DAGSTER_HOME"):
        click.echo(f"no state database (DAGSTER_HOME or --database-url): {first}", err=True)
        return StateStore.from_url("sqlite://")
    if not dry_run:
        return open_store(database_url)
    try:
        return open_store(database_url, create_tables=False)
    except click.ClickException as exc:
        if not exc.message.startswith(NO_TABLES):
            raise
        click.echo(f"{printable(exc.message)}: {first}", err=True)
        return StateStore.from_url("sqlite://")


def _row(cycle: AlertCycle) -> dict[str, Any]:
    values = cycle.shown_values()
    return {
        "alert": cycle.alert.name,
        "status": cycle.outcome.status,
        "actual_value": values["actual_value"],
        "threshold": values["threshold"],
        "context": values["context"],
        "error": cycle.outcome.error,
        "several_rows": cycle.several_rows is not None,
        "decision": cycle.decision.code if cycle.decision else None,
        "reason": cycle.decision.reason if cycle.decision else cycle.state_error,
        "notifications": cycle.report_data(),
        "dry_run": cycle.dry_run,
        **({"instances": _instances(cycle)} if cycle.instances is not None else {}),
    }


def _instances(cycle: AlertCycle) -> list[dict[str, Any]]:
    """An instance alert's instances as this evaluation decided them: labels, status, values and decision."""
    assert cycle.instances is not None
    return [
        {
            "instance": item.name,
            "labels": dict(item.labels),
            "status": item.outcome.status if item.outcome is not None else "MISSING",
            **json_safe(
                {
                    "actual_value": item.outcome.actual_value if item.outcome else None,
                    "threshold": item.outcome.threshold if item.outcome else None,
                }
            ),
            "state": item.decision.state.condition,
            "decision": item.decision.code,
            "reason": item.decision.reason,
        }
        for item in cycle.instances.instances
    ]


SHOWN_INSTANCES = 50
"""The most instances ``sqlsentinel run`` lists per alert as text (``--json`` lists them all)."""


def _print(cycle: AlertCycle) -> None:
    """Lines for a person: query values, errors and silence reasons come from outside, so they are escaped."""
    row = _row(cycle)
    shown = f" ({cycle.values_text()})" if cycle.values_text() else ""
    lines = [f"{row['alert']}: {row['status']}{shown}; decision: {row['reason']}"]
    if row["error"]:
        lines.append(f"  error: {row['error']}")
    if cycle.several_rows:
        lines.append(f"  note: {cycle.several_rows}")
    if cycle.instances is not None:
        table = [("instance", "status", "value", "threshold", "decision")]
        for item in row["instances"][:SHOWN_INSTANCES]:
            values = ("" if item[k] is None else str(item[k]) for k in ("actual_value", "threshold"))
            table.append((item["instance"][len(cycle.alert.name) :], item["status"], *values, item["reason"]))
        lines += [f"  {line}" for line in text_table(table).splitlines()]
        if len(row["instances"]) > SHOWN_INSTANCES:
            lines.append(f"  ... {len(row['instances']) - SHOWN_INSTANCES:,} more instances (--json lists them all)")
    if len(cycle.reports) <= MAX_REPORTS:
        lines += [f"  {report.describe()}" for report in cycle.reports]
    else:
        lines += [f"  {n['count']} x {n['event']} via {n['channel']}: {n['outcome']}" for n in row["notifications"]]
    for line in lines:
        click.echo(printable(line))
