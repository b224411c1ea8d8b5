"""``sqlsentinel status | history | prune``: what the state database has recorded, and deleting old history.

None of them creates the state tables (see :func:`.common.open_store`); stored text is printed escaped.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from ..cycle.check_evaluations import rule_of
from ..durations import parse_duration
from ..state import admin
from ..state.history import alert_history, history_stats
from ..state.silences import Silence
from .common import (
    alert_and_file,
    database_errors,
    database_option,
    echo,
    echo_json,
    load_or_exit,
    open_store,
    printable,
    when,
)

__all__ = ["history", "prune", "status"]


def _never(name: str) -> dict[str, Any]:
    return {
        "alert": name,
        "state": "never evaluated",
        "last_status": None,
        "since": "-",
        "silenced": None,
        "last_value": None,
        "last_evaluated_at": "-",
        "last_notified_at": "-",
        "last_error": None,
        "notification_count": 0,
        "last_delivered_per_channel": {},
        "failed_notifications": 0,
        "undelivered_notifications": 0,
    }


def _echo_unusable(silences_: list[Silence]) -> None:
    """Say which silences cannot be evaluated, and so silence nothing."""
    for silence_ in silences_:
        if problems := silence_.problems():
            echo(f"note: silence {silence_.id} silences nothing, its matchers cannot be evaluated: {problems[0]}")


@click.command()
@click.argument("config_file", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
@database_errors
def status(config_file: str | None, database_url: str | None, as_json: bool) -> None:
    """Every evaluated alert (with CONFIG_FILE: every alert in it, evaluated or not): state, since when,
    silenced or not, last value, last delivered notification."""
    store = open_store(database_url, create_tables=False)
    rows = [
        {
            "alert": s.alert,
            "state": s.condition,
            "last_status": s.last_status,
            "since": when(s.since),
            "silenced": s.silenced_by.describe() if s.silenced_by else None,
            "last_value": s.last_value,
            "last_evaluated_at": when(s.last_evaluated_at),
            "last_notified_at": when(s.last_notified_at),
            "last_error": s.last_error,
            "notification_count": s.notification_count,
            "last_delivered_per_channel": {c: when(t) for c, t in s.delivered_per_channel.items()},
            "failed_notifications": s.failed_notifications,
            "undelivered_notifications": s.undelivered_notifications,
            **({"instance_of": s.instance_of} if s.instance_of else {}),
            "acknowledged": s.acknowledged,
            "muted_channels": list(s.owed_channels),
        }
        for s in admin.alert_statuses(store)
        if s.current
    ]
    instances: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if "instance_of" in row:
            instances.setdefault(row["instance_of"], []).append(row)
    if config_file is not None:
        evaluated = {row["alert"]: row for row in rows}
        config = load_or_exit(config_file)
        watched = [row for row in rows if rule_of(config.watch_rules, row["alert"]) is not None]
        rows = [*(evaluated.get(name) or _never(name) for name in config.alert_names), *watched]
    rows = [r for row in rows if "instance_of" not in row for r in (row, *instances.get(row["alert"], []))]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no alert has been evaluated yet")
    for row in rows:
        if row["state"] == "never evaluated":
            echo(f"{row['alert']}: never evaluated")
            continue
        silenced = f"  [{row['silenced']}]" if row["silenced"] else ""
        silenced += f"  [acknowledged by {row['acknowledged']}]" if row.get("acknowledged") else ""
        muted = row.get("muted_channels")
        silenced += f"  [firing held for {', '.join(muted)} by their time intervals]" if muted else ""
        indent = "  " if "instance_of" in row else ""
        echo(
            f"{indent}{row['alert']}: {row['state']} ({row['last_status']} since {row['since']}), "
            f"last value {row['last_value']!r}, last notified {row['last_notified_at']}{silenced}"
        )
        if row["last_error"]:
            echo(f"  last error: {row['last_error']}")
        if row["failed_notifications"]:
            click.echo(f"  {row['failed_notifications']} notification(s) failed or expired (see history)")
        if row["undelivered_notifications"]:
            click.echo(
                f"  {row['undelivered_notifications']} notification(s) not delivered yet: pending, or being sent "
                "(one a killed run held is retried as soon as Dagster marks that run finished)"
            )
    _echo_unusable(admin.list_silences(store))


@click.command()
@click.argument("name", required=False)
@click.option("--alert", "alert_option", help="The alert, in SQL Sentinel's form: history alerts.yaml --alert NAME.")
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(1, 10_000), help="How many evaluations to list."
)
@click.option(
    "--offset",
    default=0,
    show_default=True,
    type=click.IntRange(0, 2**31 - 1),
    help="Skip this many of the newest evaluations.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
@database_errors
def history(
    name: str | None, alert_option: str | None, limit: int, offset: int, as_json: bool, database_url: str | None
) -> None:
    """The latest evaluations of NAME and statistics over everything recorded; without NAME, the latest
    evaluations of every alert."""
    name, _ = alert_and_file(name, alert_option)
    store = open_store(database_url, create_tables=False)
    rows = alert_history(store, name, limit, offset)
    if name is None:
        if as_json:
            echo_json({"evaluations": rows})
            return
        for row in rows:
            echo(f"{when(row['evaluated_at'])}  {row['alert']}  {row['status']:<5} -> {row['reason']}")
        if not rows:
            click.echo("no evaluations recorded")
        return
    stats = history_stats(store, name)
    if as_json:
        echo_json({"stats": stats.__dict__, "evaluations": rows})
        return
    if not stats.runs:
        raise click.ClickException(f"no history for alert '{printable(name)}'")
    p50 = f"{stats.duration_p50_ms:.1f} ms" if stats.duration_p50_ms is not None else "-"
    p95 = f"{stats.duration_p95_ms:.1f} ms" if stats.duration_p95_ms is not None else "-"
    sent = stats.notifications
    echo(
        f"{name}: {stats.runs} runs ({stats.alert} ALERT, {stats.ok} OK, {stats.error} ERROR), "
        f"firing {stats.firing_share:.0%}, query p50 {p50}, p95 {p95}; notifications: "
        f"{sent.get('delivered', 0)} sent, {sent.get('suppressed', 0)} suppressed, {sent.get('muted', 0)} muted, "
        f"{sent.get('failed', 0)} failed, "
        f"{sent.get('pending', 0)} pending, {sent.get('sending', 0)} being sent, {sent.get('expired', 0)} expired"
    )
    for row in rows:
        value = f" value={row['actual_value']}" if row["actual_value"] is not None else ""
        error = f" error={row['error']}" if row["error"] else ""
        echo(f"  {when(row['evaluated_at'])}  {row['status']:<5}{value}{error}  -> {row['reason']}")


@click.command()
@click.option("--older-than", required=True, help="Age, e.g. 30d (at most 3650d).")
@database_option
@database_errors
def prune(older_than: str, database_url: str | None) -> None:
    """Delete history, finished notifications, expired silences and gone instances older than --older-than."""
    try:
        age = dt.timedelta(seconds=parse_duration(older_than))
        removed = admin.prune_history(open_store(database_url, create_tables=False), age)
    except ValueError as exc:
        raise click.ClickException(f"cannot prune: {exc}") from None
    click.echo(", ".join(f"{count} {what}" for what, count in removed.items()) + " removed")
