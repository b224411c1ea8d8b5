"""``sqlsentinel validate | init | list | test-notify``: check, start and inspect an alerts file without starting
Dagster."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any

import click

from .._dagster import next_ticks
from ..config import LoadedConfig
from ..naming import job_name, schedule_name
from ..notifiers.probe import send_test_message
from ..notifiers.registry import ChannelSettings, smtp_from_env
from ..notifiers.retry import tries
from ..starter import starter_alerts, starter_definitions
from .common import load_or_exit

__all__ = ["init", "list_alerts", "test_notify", "validate"]


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
def validate(path: str) -> None:
    """Check PATH; list every problem. Exit 0 when valid, 1 when not."""
    config = load_or_exit(path)
    for note in config.notes:
        click.echo(f"note: {note}")
    count, rules = len(config.alerts), len(config.watch_rules)
    watched = f", {rules} watch rule{'s' if rules != 1 else ''}" if rules else ""
    click.echo(f"{path}: valid, {count} alert{'s' if count != 1 else ''}{watched}")


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option(
    "--database-url", default="sqlite:///warehouse.db", show_default=True, help="Warehouse URL (${VAR} allowed)."
)
@click.option("--mode", type=click.Choice(["jobs", "checks"]), default="jobs", show_default=True)
def init(directory: str, database_url: str, mode: str) -> None:
    """Write a starter alerts.yaml and definitions.py into DIRECTORY; both validate and run as they are."""
    folder = Path(directory)
    files = {folder / "alerts.yaml": starter_alerts(database_url), folder / "definitions.py": starter_definitions(mode)}
    existing = [str(path) for path in files if path.exists()]
    if existing:
        raise click.ClickException(f"not overwriting {', '.join(existing)}")
    folder.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
        click.echo(f"wrote {path}")
    click.echo(
        f"next: sqlsentinel run {folder / 'alerts.yaml'} --dry-run, then dagster dev -f {folder / 'definitions.py'}"
    )


@click.command(name="list")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--next", "next_count", default=3, show_default=True, help="How many upcoming run times to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_alerts(path: str, next_count: int, as_json: bool) -> None:
    """Show each alert in PATH: schedule, timezone, next run times, channels, job and schedule names."""
    config = load_or_exit(path)
    rows = _rows(config, next_count, dt.datetime.now(dt.UTC))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = "enabled" if row["enabled"] else "disabled"
        click.echo(f"{row['name']}  [{row['severity']}, {state}, schedule {row['schedule_status']}]")
        click.echo(f"  schedule:  {row['schedule'] or 'none'} ({row['timezone']})")
        click.echo(f"  next runs: {', '.join(row['next_runs']) or '-'}")
        click.echo(f"  database:  {row['database']}")
        if row["asset"]:
            after = " (and after each materialization)" if row["on_materialization"] else ""
            click.echo(f"  asset:     {row['asset']}{after}")
        click.echo(f"  channels:  {', '.join(row['channels']) or '(none)'}")
        click.echo(f"  job:       {row['job']}")
        click.echo(f"  schedule name: {row['schedule_name']}")


def _rows(config: LoadedConfig, next_count: int, now: dt.datetime) -> list[dict[str, Any]]:
    return [
        {
            "name": alert.name,
            "severity": alert.severity,
            "enabled": alert.enabled,
            "schedule": alert.schedule,
            "timezone": alert.timezone,
            "schedule_status": "running" if alert.schedule_running else "stopped",
            "next_runs": [t.isoformat() for t in next_ticks(alert.schedule, alert.timezone, now, next_count)]
            if alert.schedule
            else [],
            "asset": "/".join(alert.asset) if alert.asset else None,
            "on_materialization": alert.on_materialization,
            "database": config.database_name(alert),
            "channels": [target.channel for target in config.targets(alert)],
            "job": job_name(alert.name),
            "schedule_name": schedule_name(alert.name) if alert.schedule else None,
        }
        for alert in config.alerts
    ]


@click.command(name="test-notify")
@click.argument("path", type=click.Path(dir_okay=False))
@click.argument("name")
def test_notify(path: str, name: str) -> None:
    """Send a test message through the channels of alert NAME in PATH (SMTP_* and ${VAR} from the environment)."""
    config = load_or_exit(path)
    alert = next((a for a in config.alerts if a.name == name), None)
    if alert is None:
        raise click.ClickException(f"no alert named '{name}' in {path}")
    targets = config.targets(alert)
    if not targets:
        raise click.ClickException(f"alert '{name}' has no notify channels")
    settings = ChannelSettings(smtp=smtp_from_env(os.environ))
    results = send_test_message(alert, targets, settings, logging.getLogger("sqlsentinel"))
    for result in results:
        attempts = tries(result.attempts)
        click.echo(
            f"{result.channel}: "
            + (f"delivered ({attempts})" if result.delivered else f"FAILED ({attempts}): {result.error}")
        )
    if not all(r.delivered for r in results):
        raise SystemExit(1)
