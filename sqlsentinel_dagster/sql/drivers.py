"""What a warehouse URL needs before a query can run: a driver that is installed, SQLite paths read from the
alerts file's folder (and named when SQLite cannot open them), and the pooled engine."""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from .engines import bounded_engine

__all__ = [
    "DEFAULT_DEADLINE",
    "create_warehouse_engine",
    "driver_problem",
    "missing_sqlite_file",
    "resolve_sqlite_path",
    "sqlite_file",
]


DEFAULT_DEADLINE = 300.0
"""Seconds a warehouse connection may stay checked out when no evaluation set a shorter deadline."""


def resolve_sqlite_path(url: str, base_dir: Path) -> str:
    """Make a relative SQLite path relative to ``base_dir`` (the alerts file's folder) instead of the cwd."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return url
    if database.startswith("file:") or Path(database).is_absolute():
        return url
    return parsed.set(database=str((base_dir / database).resolve())).render_as_string(hide_password=False)


def missing_sqlite_file(url: str, base_dir: Path) -> str | None:
    """Why the SQLite file ``url`` names is not there, or None (it is, or ``url`` names no file).

    ``<url>: no such file <absolute path tried>; relative SQLite paths are read from the alerts file's folder
    <base_dir>`` (the last part for a relative path only), or ``... is a folder, not a database file``. None for
    other databases, in-memory ones, SQLite URIs (``file:...?uri=true``, read from the working directory), and
    URLs that do not parse (:func:`driver_problem` says why). The URL is shown with its password hidden.
    """
    try:
        parsed = make_url(url)
        path = sqlite_file(url, base_dir)
    except (sa.exc.ArgumentError, ValueError):
        return None
    if path is None or path.is_file():
        return None
    shown = parsed.render_as_string(hide_password=True)
    if path.is_dir():
        return f"{shown}: {path} is a folder, not a database file"
    hint = f"; relative SQLite paths are read from the alerts file's folder {base_dir}"
    return f"{shown}: no such file {path}{'' if Path(str(parsed.database)).is_absolute() else hint}"


def sqlite_file(url: str, base_dir: Path) -> Path | None:
    """The absolute path of the file a SQLite ``url`` opens (a relative one read from ``base_dir``), or None for
    other databases, in-memory ones and SQLite URIs (``file:...``). Raises what ``make_url`` raises."""
    parsed = make_url(resolve_sqlite_path(url, base_dir))
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def driver_problem(url: str) -> str | None:
    """Why SQLAlchemy cannot use ``url`` at all (malformed, unknown dialect, driver not installed), or None.

    ``${VAR}`` parts are checked when the run resolves them; a URL whose scheme is a variable is not checked.
    The message never contains the URL (it may hold a password).
    """
    if "${" in url.split("://", 1)[0]:
        return None
    try:
        parsed = make_url(re.sub(r"\$\{[^}]*\}", "x", url))
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        return "not a valid SQLAlchemy URL; write dialect+driver://user:password@host:port/database"
    try:
        parsed.get_dialect().import_dbapi()
    except sa.exc.NoSuchModuleError:
        return f"unknown database dialect '{parsed.drivername}'; installed: sqlite, postgresql, mysql+pymysql"
    except ImportError as exc:
        return f"the driver for '{parsed.drivername}' is not installed (no module '{exc.name}'); pip install it"
    return None


def create_warehouse_engine(url: str, pool_size: int = 5) -> Engine:
    """An engine for alert queries, at most ``pool_size`` connections. Connections are checked before use so a
    restarted warehouse is no error; connecting and each evaluation have deadlines (see :mod:`.engines`)."""
    if make_url(url).get_backend_name() == "sqlite":
        return bounded_engine(url, deadline=DEFAULT_DEADLINE)  # SQLite pools by file, with its own defaults
    return bounded_engine(url, deadline=DEFAULT_DEADLINE, pool_size=pool_size, max_overflow=0, pool_timeout=60)
