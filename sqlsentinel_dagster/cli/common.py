"""What the commands on the state database share: the ``--database-url`` option, opening the store, database
errors as click errors, and escaped output.

Used by ``sqlsentinel status | history | prune`` (:mod:`.history`), ``silence | unsilence | silences``
(:mod:`.silences`), ``run`` and ``replay``. Only ``silence`` (and ``run``) create the state tables: the others
refuse a database without them, so pointing one at the wrong database changes nothing there. Stored text
(authors, reasons, alert names, errors) is printed with its control characters escaped (``\\x1b``, ``\\n``), so
it cannot drive the terminal or forge lines.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec

import click
import sqlalchemy as sa

from ..config import LoadedConfig, load_config
from ..errors import ConfigError
from ..redact import redact_text
from ..state.schema import installed_version
from ..state.store import StateStore

__all__ = [
    "NO_TABLES",
    "alert_and_file",
    "database_errors",
    "database_option",
    "echo",
    "echo_json",
    "load_or_exit",
    "open_store",
    "printable",
    "when",
]

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
        ctx.meta["sqlsentinel.state_url"] = url  # for database_errors
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

    from ..definitions.instance_db import instance_state_url

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


def database_errors(command: Callable[_P, None]) -> Callable[_P, None]:
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


def echo(line: str) -> None:
    """Print ``line`` :func:`printable`."""
    click.echo(printable(line))


def alert_and_file(argument: str | None, alert: str | None) -> tuple[str | None, LoadedConfig | None]:
    """SQL Sentinel's form ``<config_file> --alert NAME`` or ours, ``NAME``: the alert and the file, if given."""
    if argument and argument.endswith((".yaml", ".yml")) and Path(argument).is_file():
        return alert, load_or_exit(argument)
    if argument and alert:
        raise click.ClickException(f"give the alert once: '{argument}' or --alert '{alert}'")
    return argument or alert, None


def when(value: dt.datetime | None) -> str:
    """``value`` as an ISO time to the second, or ``-`` for None."""
    return value.isoformat(timespec="seconds") if value else "-"


def echo_json(rows: Any) -> None:
    """Print ``rows`` as indented JSON (datetimes and other values as their ``str``)."""
    click.echo(json.dumps(rows, indent=2, default=str))


def load_or_exit(path: str) -> LoadedConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from None
