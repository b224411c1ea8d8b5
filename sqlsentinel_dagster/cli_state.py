"""``sqlsentinel status | silence | unsilence | silences | history | prune``: alert state in the Dagster instance."""

from __future__ import annotations

import datetime as dt
import difflib
import getpass
import json
from pathlib import Path
from typing import Any

import click

from .config import LoadedConfig
from .config.models import parse_duration
from .redact import redact_text
from .state import admin
from .state.silences import Silence, parse_matcher
from .state.store import StateStore

__all__ = ["COMMANDS", "database_option", "open_store"]

database_option = click.option(
    "--database-url",
    "--state-db",  # SQL Sentinel's name
    "database_url",
    envvar=["SQLSENTINEL_STATE_URL", "STATE_DB_URL"],
    help="SQLAlchemy URL of the state tables (or SQLSENTINEL_STATE_URL, STATE_DB_URL); default: the Dagster "
    "instance in DAGSTER_HOME.",
)


def open_store(database_url: str | None) -> StateStore:
    if database_url:
        return StateStore.from_url(database_url)
    import dagster as dg

    from ._instance_db import instance_state_url

    try:
        instance = dg.DagsterInstance.get()
    except Exception as exc:  # Dagster raises its own error types for a missing or bad DAGSTER_HOME
        message = redact_text(str(exc))
        hint = "set DAGSTER_HOME or --database-url"
        raise click.ClickException(f"cannot open the Dagster instance: {message} ({hint})") from None
    return StateStore.from_url(instance_state_url(instance))


def _alert_and_file(argument: str | None, alert: str | None) -> tuple[str | None, LoadedConfig | None]:
    """SQL Sentinel's form ``<config_file> --alert NAME`` or ours, ``NAME``: the alert and the file, if given."""
    if argument and argument.endswith((".yaml", ".yml")) and Path(argument).is_file():
        from .cli import load_or_exit

        return alert, load_or_exit(argument)
    if argument and alert:
        raise click.ClickException(f"give the alert once: '{argument}' or --alert '{alert}'")
    return argument or alert, None


def _refuse_unknown(name: str, store: StateStore, config: LoadedConfig | None) -> None:
    """A name that matches no known alert is a typo until proven otherwise (``--force``)."""
    known = config.alert_names if config is not None else admin.known_alerts(store)
    if known and name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        where = f"in {config.path}" if config is not None else "in the state database"
        raise click.ClickException(f"no alert named '{name}' {where}{hint}; --force to silence it anyway")


def _when(value: dt.datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


def _echo_json(rows: Any) -> None:
    click.echo(json.dumps(rows, indent=2, default=str))


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
    }


def _silence_row(silence: Silence, now: dt.datetime) -> dict[str, Any]:
    return {
        "id": silence.id,
        "state": silence.state(now),
        "matchers": [str(m) for m in silence.matchers],
        "starts_at": _when(silence.starts_at),
        "ends_at": _when(silence.ends_at),
        "author": silence.author,
        "reason": silence.reason,
    }


@click.command()
@click.argument("config_file", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
def status(config_file: str | None, database_url: str | None, as_json: bool) -> None:
    """Every evaluated alert (with CONFIG_FILE: every alert in it, evaluated or not): state, since when,
    silenced or not, last value, last delivered notification."""
    from .cli import load_or_exit

    store = open_store(database_url)
    rows = [
        {
            "alert": s.alert,
            "state": s.condition,
            "last_status": s.last_status,
            "since": _when(s.since),
            "silenced": s.silenced_by.describe() if s.silenced_by else None,
            "last_value": s.last_value,
            "last_evaluated_at": _when(s.last_evaluated_at),
            "last_notified_at": _when(s.last_notified_at),
            "last_error": s.last_error,
            "notification_count": s.notification_count,
            "last_delivered_per_channel": {c: _when(t) for c, t in s.delivered_per_channel.items()},
            "failed_notifications": s.failed_notifications,
        }
        for s in admin.alert_statuses(store)
    ]
    if config_file is not None:
        evaluated = {row["alert"]: row for row in rows}
        rows = [evaluated.get(name) or _never(name) for name in load_or_exit(config_file).alert_names]
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no alert has been evaluated yet")
    for row in rows:
        if row["state"] == "never evaluated":
            click.echo(f"{row['alert']}: never evaluated")
            continue
        silenced = f"  [{row['silenced']}]" if row["silenced"] else ""
        click.echo(
            f"{row['alert']}: {row['state']} ({row['last_status']} since {row['since']}), "
            f"last value {row['last_value']!r}, last notified {row['last_notified_at']}{silenced}"
        )
        if row["last_error"]:
            click.echo(f"  last error: {row['last_error']}")
        if row["failed_notifications"]:
            click.echo(f"  {row['failed_notifications']} notification(s) failed or expired (see history)")


@click.command()
@click.argument("name", required=False)
@click.option("--alert", "alert_option", help="The alert, in SQL Sentinel's form: silence alerts.yaml --alert NAME.")
@click.option("--force", is_flag=True, help="Silence NAME even though no known alert has that name.")
@click.option("--match", "matches", multiple=True, help="key=value, key=~regex or key~glob; repeatable.")
@click.option("--duration", help="How long, e.g. 30m, 2h, 1d.")
@click.option("--until", help="When it ends, an ISO time.")
@click.option("--reason", required=True, help="Why; shown on every suppressed run.")
@click.option("--author", help="Who; default: your user name.")
@database_option
def silence(
    name: str | None,
    alert_option: str | None,
    force: bool,
    matches: tuple[str, ...],
    duration: str | None,
    until: str | None,
    reason: str,
    author: str | None,
    database_url: str | None,
) -> None:
    """Silence the alert NAME (or every alert matching --match) for --duration or until --until.

    A NAME no known alert has (in the file given, or in the state database) is refused unless --force."""
    name, config = _alert_and_file(name, alert_option)
    store = open_store(database_url)
    if name and not force:
        _refuse_unknown(name, store, config)
    try:
        matchers = [parse_matcher(f"alert={name}")] if name else []
        matchers += [parse_matcher(m) for m in matches]
        now = store.clock()
        if (duration is None) == (until is None):
            raise ValueError("give exactly one of --duration (e.g. 2h) or --until (e.g. 2026-12-01T09:00+01:00)")
        if duration is not None:
            ends_at = now + dt.timedelta(seconds=parse_duration(duration))
        else:
            ends_at = dt.datetime.fromisoformat(str(until))
            ends_at = ends_at if ends_at.tzinfo else ends_at.astimezone()
        created = admin.add_silence(store, matchers, ends_at=ends_at, author=author or getpass.getuser(), reason=reason)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"silence {created.id}: {', '.join(map(str, created.matchers))} {created.describe()}")


@click.command()
@click.argument("target", required=False)
@click.option("--alert", "alert_option", help="The alert, in SQL Sentinel's form: unsilence alerts.yaml --alert NAME.")
@database_option
def unsilence(target: str | None, alert_option: str | None, database_url: str | None) -> None:
    """End the silence with id TARGET, or the silences made for the alert named TARGET."""
    target, _ = _alert_and_file(target, alert_option)
    if not target:
        raise click.ClickException("give a silence id or an alert name")
    store = open_store(database_url)
    ended = admin.end_silences(store, target)
    if not ended:
        raise click.ClickException(f"no active or pending silence with id or alert name '{target}'")
    for silence_ in ended:
        click.echo(f"ended silence {silence_.id} ({', '.join(map(str, silence_.matchers))})")
    still = [s for s in admin.alert_statuses(store) if s.alert == target and s.silenced_by]
    for status_ in still:
        assert status_.silenced_by is not None
        click.echo(f"note: '{target}' is still {status_.silenced_by.describe()} (silence {status_.silenced_by.id})")


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
def silences(show_all: bool, as_json: bool, database_url: str | None) -> None:
    """Pending and active silences (--all: expired ones too)."""
    store = open_store(database_url)
    now = store.clock()
    rows = [_silence_row(s, now) for s in admin.list_silences(store, include_expired=show_all)]
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no silences")
    for row in rows:
        click.echo(
            f"{row['id']}  {row['state']:<8} {', '.join(row['matchers'])}  {row['starts_at']} -> {row['ends_at']}  "
            f"by {row['author']}: {row['reason']}"
        )


@click.command()
@click.argument("name", required=False)
@click.option("--alert", "alert_option", help="The alert, in SQL Sentinel's form: history alerts.yaml --alert NAME.")
@click.option("--limit", default=20, show_default=True, help="How many evaluations to list.")
@click.option("--offset", default=0, show_default=True, help="Skip this many of the newest evaluations.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
def history(
    name: str | None, alert_option: str | None, limit: int, offset: int, as_json: bool, database_url: str | None
) -> None:
    """The latest evaluations of NAME and statistics over everything recorded; without NAME, the latest
    evaluations of every alert."""
    name, _ = _alert_and_file(name, alert_option)
    store = open_store(database_url)
    rows = admin.alert_history(store, name, limit, offset)
    if name is None:
        if as_json:
            _echo_json({"evaluations": rows})
            return
        for row in rows:
            click.echo(f"{_when(row['evaluated_at'])}  {row['alert']}  {row['status']:<5} -> {row['reason']}")
        if not rows:
            click.echo("no evaluations recorded")
        return
    stats = admin.history_stats(store, name)
    if as_json:
        _echo_json({"stats": stats.__dict__, "evaluations": rows})
        return
    if not stats.runs:
        raise click.ClickException(f"no history for alert '{name}'")
    p50 = f"{stats.duration_p50_ms:.1f} ms" if stats.duration_p50_ms is not None else "-"
    p95 = f"{stats.duration_p95_ms:.1f} ms" if stats.duration_p95_ms is not None else "-"
    sent = stats.notifications
    click.echo(
        f"{name}: {stats.runs} runs ({stats.alert} ALERT, {stats.ok} OK, {stats.error} ERROR), "
        f"firing {stats.firing_share:.0%}, query p50 {p50}, p95 {p95}; notifications: "
        f"{sent.get('delivered', 0)} sent, {sent.get('suppressed', 0)} suppressed, {sent.get('failed', 0)} failed, "
        f"{sent.get('pending', 0)} pending, {sent.get('expired', 0)} expired"
    )
    for row in rows:
        value = f" value={row['actual_value']}" if row["actual_value"] is not None else ""
        error = f" error={row['error']}" if row["error"] else ""
        click.echo(f"  {_when(row['evaluated_at'])}  {row['status']:<5}{value}{error}  -> {row['reason']}")


@click.command()
@click.option("--older-than", required=True, help="Age, e.g. 30d.")
@database_option
def prune(older_than: str, database_url: str | None) -> None:
    """Delete history, finished notifications and expired silences older than --older-than."""
    try:
        age = dt.timedelta(seconds=parse_duration(older_than))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    removed = admin.prune_history(open_store(database_url), age)
    click.echo(", ".join(f"{count} {what}" for what, count in removed.items()) + " removed")


COMMANDS = [status, silence, unsilence, silences, history, prune]
