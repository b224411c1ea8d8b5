"""``sqlsentinel status | silence | unsilence | silences | history | prune``: alert state in the Dagster instance.

Only ``silence`` (and ``run``) create the state tables: the others refuse a database without them, so pointing
one at the wrong database changes nothing there. Stored text (authors, reasons, alert names, errors) is printed
with its control characters escaped (``\\x1b``, ``\\n``), so it cannot drive the terminal or forge lines.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import getpass
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec

import click
import sqlalchemy as sa

from .config import LoadedConfig
from .config.models import parse_duration
from .redact import redact_text
from .state import admin
from .state.schema import installed_version
from .state.silences import Silence, parse_matcher
from .state.store import StateStore
from .watch import rule_of

__all__ = ["COMMANDS", "NO_TABLES", "database_option", "open_store", "printable"]

_P = ParamSpec("_P")

NO_TABLES = "no sqlsentinel state tables in this database (nothing recorded yet, or the wrong --database-url)"
"""What the commands that create no table say on a database without the sqlsentinel tables."""

database_option = click.option(
    "--database-url",
    "--state-db",  # SQL Sentinel's name
    "database_url",
    envvar=["SQLSENTINEL_STATE_URL", "STATE_DB_URL"],
    help="SQLAlchemy URL of the state tables (or SQLSENTINEL_STATE_URL, STATE_DB_URL); default: the Dagster "
    "instance in DAGSTER_HOME.",
)

# Shown escaped: C0/C1 control characters (ESC starts terminal escape codes), Unicode line and paragraph
# separators, and the bidirectional controls that reorder what a terminal shows.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def open_store(database_url: str | None, *, create_tables: bool = True) -> StateStore:
    """The state store on ``database_url`` (default: the Dagster instance's database).

    A URL that does not parse, a database SQLAlchemy has no driver for or a server that cannot be reached ends
    in a click error naming the problem, with the password hidden. Without ``create_tables`` nothing is created
    and a database without the sqlsentinel tables is such an error (:data:`NO_TABLES`).
    """
    url = database_url or _instance_url()
    shown = _shown(url)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta["sqlsentinel.state_url"] = url  # for _database_errors
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise click.ClickException(
            f"{shown} is not a database URL; write e.g. postgresql://user:password@host:5432/dbname "
            "or sqlite:///path/to/state.db"
        ) from None
    except ValueError as exc:  # the only ValueError make_url raises: int(port)
        raise click.ClickException(f"invalid database URL {shown}: the port is not a number ({exc})") from None
    if not create_tables and _missing_sqlite_file(parsed):  # connecting would create it
        raise click.ClickException(f"{NO_TABLES}: {shown} does not exist")
    try:
        store = StateStore.from_url(url, create_tables=create_tables)
        if not create_tables and installed_version(store.engine) is None:
            raise click.ClickException(f"{NO_TABLES}: {shown}")
    except sa.exc.NoSuchModuleError:
        raise click.ClickException(
            f"cannot open {shown}: SQLAlchemy knows no database '{parsed.drivername}'; use e.g. postgresql://, "
            "mysql+pymysql:// or sqlite:///"
        ) from None
    except ImportError as exc:
        raise click.ClickException(f"cannot open {shown}: its driver is not installed ({exc})") from None
    except (sa.exc.SQLAlchemyError, RuntimeError) as exc:  # RuntimeError: tables from a newer version
        raise click.ClickException(_database_problem(exc, url)) from None
    return store


def _instance_url() -> str:
    import dagster as dg

    from ._instance_db import instance_state_url

    try:
        return instance_state_url(dg.DagsterInstance.get())
    except Exception as exc:  # Dagster raises its own error types for a missing or bad DAGSTER_HOME
        message = redact_text(str(exc))
        hint = "set DAGSTER_HOME or --database-url"
        raise click.ClickException(f"cannot open the Dagster instance: {message} ({hint})") from None


def _missing_sqlite_file(url: sa.URL) -> bool:
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return False
    return not Path(database).is_file()


def _password(url: str) -> str:
    try:
        return sa.make_url(url).password or ""
    except (sa.exc.ArgumentError, ValueError):
        return ""


def _shown(url: str) -> str:
    """``url`` fit for a message: password hidden, control characters escaped, at most 200 characters."""
    text = printable(redact_text(url, [_password(url)]))
    return text if len(text) <= 200 else text[:200] + "..."


def _database_problem(exc: Exception, url: str) -> str:
    """``cannot use the state database URL: <the driver's own words>``: password hidden, one line, bounded."""
    detail = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    lines = [" ".join(line.split()) for line in str(detail).splitlines()]
    words = "; ".join(line for line in lines if line)[:500] or type(detail).__name__
    return f"cannot use the state database {_shown(url)}: {printable(redact_text(words, [_password(url)]))}"


def _database_errors(command: Callable[_P, None]) -> Callable[_P, None]:
    """Database errors after the store is open (a lost connection, a missing privilege) as click errors."""

    @functools.wraps(command)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except sa.exc.SQLAlchemyError as exc:
            ctx = click.get_current_context(silent=True)
            url = (ctx.meta.get("sqlsentinel.state_url") if ctx else None) or str(kwargs.get("database_url") or "")
            raise click.ClickException(_database_problem(exc, url or "(unknown URL)")) from None

    return wrapper


def printable(text: str) -> str:
    """``text`` with control characters, line separators and bidi controls escaped as ``\\x1b``, ``\\n``,
    ``\\u202e``: stored text is shown, never obeyed by the terminal, and cannot forge output lines."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _echo(line: str) -> None:
    click.echo(printable(line))


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
    if config is not None and rule_of(config.watch_rules, name) is not None:
        return  # an asset check one of the file's watch rules watches, notified yet or not
    known = admin.known_alerts(store)
    claimed = False  # the name starts with one of the file's watch rules, as the checks it watches do
    if config is not None:  # the file's alerts, and the checks its watch rules have recorded
        known = [*config.alert_names, *(n for n in known if rule_of(config.watch_rules, n) is not None)]
        claimed = name.partition(":")[0] in {rule.name for rule in config.watch_rules}
    if (known or claimed) and name not in known:
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
        "undelivered_notifications": 0,
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
        "problems": silence.problems(),
    }


def _echo_unusable(silences_: list[Silence]) -> None:
    """Say which silences cannot be evaluated, and so silence nothing."""
    for silence_ in silences_:
        if problems := silence_.problems():
            _echo(f"note: silence {silence_.id} silences nothing, its matchers cannot be evaluated: {problems[0]}")


@click.command()
@click.argument("config_file", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
@_database_errors
def status(config_file: str | None, database_url: str | None, as_json: bool) -> None:
    """Every evaluated alert (with CONFIG_FILE: every alert in it, evaluated or not): state, since when,
    silenced or not, last value, last delivered notification."""
    from .cli import load_or_exit

    store = open_store(database_url, create_tables=False)
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
            "undelivered_notifications": s.undelivered_notifications,
        }
        for s in admin.alert_statuses(store)
    ]
    if config_file is not None:
        evaluated = {row["alert"]: row for row in rows}
        config = load_or_exit(config_file)
        watched = [row for row in rows if rule_of(config.watch_rules, row["alert"]) is not None]
        rows = [*(evaluated.get(name) or _never(name) for name in config.alert_names), *watched]
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no alert has been evaluated yet")
    for row in rows:
        if row["state"] == "never evaluated":
            _echo(f"{row['alert']}: never evaluated")
            continue
        silenced = f"  [{row['silenced']}]" if row["silenced"] else ""
        _echo(
            f"{row['alert']}: {row['state']} ({row['last_status']} since {row['since']}), "
            f"last value {row['last_value']!r}, last notified {row['last_notified_at']}{silenced}"
        )
        if row["last_error"]:
            _echo(f"  last error: {row['last_error']}")
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
@click.option("--alert", "alert_option", help="The alert, in SQL Sentinel's form: silence alerts.yaml --alert NAME.")
@click.option("--force", is_flag=True, help="Silence NAME even though no known alert has that name.")
@click.option("--match", "matches", multiple=True, help="key=value, key=~regex (RE2) or key~glob; repeatable.")
@click.option("--duration", help="How long, e.g. 30m, 2h, 1d; at most SQLSENTINEL_MAX_SILENCE (default 30d).")
@click.option("--until", help="When it ends, an ISO time.")
@click.option("--reason", required=True, help="Why; shown on every suppressed run.")
@click.option("--author", help="Who; default: your user name.")
@database_option
@_database_errors
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

    A NAME no known alert has (in the file given, or in the state database) is refused unless --force.
    A silence lasts at most 30 days, or what the environment variable SQLSENTINEL_MAX_SILENCE says (e.g. 90d)."""
    name, config = _alert_and_file(name, alert_option)
    try:
        matchers = [parse_matcher(f"alert={name}")] if name else []
        matchers += [parse_matcher(m) for m in matches]
        if (duration is None) == (until is None):
            raise ValueError("give exactly one of --duration (e.g. 2h) or --until (e.g. 2026-12-01T09:00+01:00)")
        length = dt.timedelta(seconds=parse_duration(duration)) if duration is not None else None
        end = _until(until) if until is not None else None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    store = open_store(database_url)
    if name and not force:
        _refuse_unknown(name, store, config)
    try:
        ends_at = end if end is not None else store.clock() + (length or dt.timedelta())
        created = admin.add_silence(store, matchers, ends_at=ends_at, author=author or getpass.getuser(), reason=reason)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    _echo(f"silence {created.id}: {', '.join(map(str, created.matchers))} {created.describe()}")


def _until(text: str) -> dt.datetime:
    """``--until``: an ISO time; without a timezone, the local one."""
    try:
        ends_at = dt.datetime.fromisoformat(text)
        return ends_at if ends_at.tzinfo else ends_at.astimezone()
    except (ValueError, OverflowError):
        shown = repr(text) if len(text) <= 40 else repr(text[:40]) + "..."
        raise ValueError(f"--until {shown} is not an ISO time such as 2026-12-01T09:00+01:00") from None


@click.command()
@click.argument("target", required=False)
@click.option("--alert", "alert_option", help="The alert, in SQL Sentinel's form: unsilence alerts.yaml --alert NAME.")
@database_option
@_database_errors
def unsilence(target: str | None, alert_option: str | None, database_url: str | None) -> None:
    """End the silence with id TARGET, or the silences made for the alert named TARGET."""
    target, _ = _alert_and_file(target, alert_option)
    if not target:
        raise click.ClickException("give a silence id or an alert name")
    store = open_store(database_url, create_tables=False)
    ended = admin.end_silences(store, target)
    if not ended:
        raise click.ClickException(f"no active or pending silence with id or alert name '{printable(target)}'")
    for silence_ in ended:
        _echo(f"ended silence {silence_.id} ({', '.join(map(str, silence_.matchers))})")
    still = [s for s in admin.alert_statuses(store) if s.alert == target and s.silenced_by]
    for status_ in still:
        assert status_.silenced_by is not None
        _echo(f"note: '{target}' is still {status_.silenced_by.describe()} (silence {status_.silenced_by.id})")


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
@_database_errors
def silences(show_all: bool, as_json: bool, database_url: str | None) -> None:
    """Pending and active silences (--all: expired ones too)."""
    store = open_store(database_url, create_tables=False)
    now = store.clock()
    rows = [_silence_row(s, now) for s in admin.list_silences(store, include_expired=show_all)]
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no silences")
    for row in rows:
        _echo(
            f"{row['id']}  {row['state']:<8} {', '.join(row['matchers'])}  {row['starts_at']} -> {row['ends_at']}  "
            f"by {row['author']}: {row['reason']}"
        )
        if row["problems"]:
            _echo(f"  silences nothing, its matchers cannot be evaluated: {'; '.join(row['problems'])}")


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
@_database_errors
def history(
    name: str | None, alert_option: str | None, limit: int, offset: int, as_json: bool, database_url: str | None
) -> None:
    """The latest evaluations of NAME and statistics over everything recorded; without NAME, the latest
    evaluations of every alert."""
    name, _ = _alert_and_file(name, alert_option)
    store = open_store(database_url, create_tables=False)
    rows = admin.alert_history(store, name, limit, offset)
    if name is None:
        if as_json:
            _echo_json({"evaluations": rows})
            return
        for row in rows:
            _echo(f"{_when(row['evaluated_at'])}  {row['alert']}  {row['status']:<5} -> {row['reason']}")
        if not rows:
            click.echo("no evaluations recorded")
        return
    stats = admin.history_stats(store, name)
    if as_json:
        _echo_json({"stats": stats.__dict__, "evaluations": rows})
        return
    if not stats.runs:
        raise click.ClickException(f"no history for alert '{printable(name)}'")
    p50 = f"{stats.duration_p50_ms:.1f} ms" if stats.duration_p50_ms is not None else "-"
    p95 = f"{stats.duration_p95_ms:.1f} ms" if stats.duration_p95_ms is not None else "-"
    sent = stats.notifications
    _echo(
        f"{name}: {stats.runs} runs ({stats.alert} ALERT, {stats.ok} OK, {stats.error} ERROR), "
        f"firing {stats.firing_share:.0%}, query p50 {p50}, p95 {p95}; notifications: "
        f"{sent.get('delivered', 0)} sent, {sent.get('suppressed', 0)} suppressed, {sent.get('failed', 0)} failed, "
        f"{sent.get('pending', 0)} pending, {sent.get('sending', 0)} being sent, {sent.get('expired', 0)} expired"
    )
    for row in rows:
        value = f" value={row['actual_value']}" if row["actual_value"] is not None else ""
        error = f" error={row['error']}" if row["error"] else ""
        _echo(f"  {_when(row['evaluated_at'])}  {row['status']:<5}{value}{error}  -> {row['reason']}")


@click.command()
@click.option("--older-than", required=True, help="Age, e.g. 30d (at most 3650d).")
@database_option
@_database_errors
def prune(older_than: str, database_url: str | None) -> None:
    """Delete history, finished notifications and expired silences older than --older-than."""
    try:
        age = dt.timedelta(seconds=parse_duration(older_than))
        removed = admin.prune_history(open_store(database_url, create_tables=False), age)
    except ValueError as exc:
        raise click.ClickException(f"cannot prune: {exc}") from None
    click.echo(", ".join(f"{count} {what}" for what, count in removed.items()) + " removed")


COMMANDS = [status, silence, unsilence, silences, history, prune]
