"""Run an alert's query, read-only and with a timeout, and enforce the result contract. No Dagster here.

The contract: the first row has a ``status`` column whose value is ``ALERT`` or ``OK`` (any case); optional
``actual_value`` and ``threshold`` columns; every other column becomes context.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from .config.rows import RowsSpec
from .engines import bounded_engine, checkout_deadline, cut_by_deadline
from .errors import AlertQueryError, ResultContractError
from .redact import redact_text

if TYPE_CHECKING:
    from .baselines import Verdict

__all__ = [
    "MAX_CELL_CHARS",
    "MAX_CONTEXT_COLUMNS",
    "MAX_ROWS_BYTES",
    "AlertResult",
    "create_warehouse_engine",
    "driver_problem",
    "evaluate_query",
    "parse_result",
    "parse_rows",
    "resolve_sqlite_path",
    "safe_value",
]

Status = Literal["ALERT", "OK"]

GRACE = 5.0
"""Seconds past an alert's timeout before its connection is cut, for a server that does not end the query."""
DEFAULT_DEADLINE = 300.0


@dataclass(frozen=True)
class AlertResult:
    """The outcome of one evaluation that satisfied the result contract."""

    status: Status
    actual_value: Any = None
    threshold: Any = None
    context: dict[str, Any] = field(default_factory=dict)
    more_rows: bool = False
    """The query returned more than one row; only the first was used. For a failed-rows alert: more rows than
    its ``limit`` (the count is a lower bound)."""
    duration_ms: float = 0.0
    columns: tuple[str, ...] = ()
    """A failed-rows alert's columns."""
    rows: tuple[dict[str, Any], ...] = ()
    """A failed-rows alert's rows kept for messages: the sample, or every fetched row with ``attach: csv``
    (at most :data:`MAX_ROWS_BYTES` of them)."""
    verdict: Verdict | None = None
    """A baseline alert's verdict on ``actual_value`` (see :mod:`.learned`)."""

    @property
    def firing(self) -> bool:
        """Whether the alert condition holds."""
        return self.status == "ALERT"


def parse_result(
    alert: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, status_required: bool = True
) -> AlertResult:
    """Apply the result contract to a query's columns and rows (the first row is used). Values are made safe
    to store and send (see :func:`safe_value`); context beyond :data:`MAX_CONTEXT_COLUMNS` is summarized.
    Without ``status_required`` (a baseline alert) a missing ``status`` column reads as OK."""
    names = [str(c) for c in columns]
    lowered = [c.lower() for c in names]
    if "status" not in lowered and status_required:
        raise ResultContractError(alert, "the result has no 'status' column", names)
    repeated = sorted({c for c in lowered if c in _RESERVED and lowered.count(c) > 1})
    if repeated:
        raise ResultContractError(alert, f"the result has more than one '{repeated[0]}' column; name it once", names)
    if not rows:
        raise ResultContractError(alert, "the query returned no rows", names)
    row = dict(zip(lowered, rows[0], strict=False))
    raw_status = row.get("status", "OK")
    status = raw_status.strip().upper() if isinstance(raw_status, str) else ""
    if status not in ("ALERT", "OK"):
        shown = safe_value(raw_status)
        raise ResultContractError(alert, f"'status' is {shown!r}, expected 'ALERT' or 'OK'", names)
    others = [(name, value) for name, value in zip(names, rows[0], strict=False) if name.lower() not in _RESERVED]
    shown = others[:MAX_CONTEXT_COLUMNS]  # two columns of the same name: both kept
    context = {key: safe_value(value) for key, (_, value) in zip(_unique([n for n, _ in shown]), shown, strict=True)}
    if len(others) > MAX_CONTEXT_COLUMNS:
        context["..."] = f"{len(others) - MAX_CONTEXT_COLUMNS} more columns not shown"
    return AlertResult(
        status="ALERT" if status == "ALERT" else "OK",
        actual_value=safe_value(row.get("actual_value")),
        threshold=safe_value(row.get("threshold")),
        context=context,
        more_rows=len(rows) > 1,
    )


def parse_rows(alert: str, columns: Sequence[str], fetched: Sequence[Sequence[Any]], spec: RowsSpec) -> AlertResult:
    """A failed-rows alert's result: ALERT when there are more than ``spec.max`` rows. ``fetched`` holds at most
    ``spec.limit + 1`` rows (one more tells that there are more)."""
    names = _unique([str(c) for c in columns])
    count = min(len(fetched), spec.limit)
    kept: list[dict[str, Any]] = []
    size = 0
    for row in fetched[: count if spec.attach == "csv" else min(count, spec.sample)]:
        values = {name: safe_value(value) for name, value in zip(names, row, strict=False)}
        size += len(json.dumps(values, default=str))
        if size > MAX_ROWS_BYTES:
            break
        kept.append(values)
    return AlertResult(
        status="ALERT" if count > spec.max else "OK",
        actual_value=count,
        threshold=spec.max,
        more_rows=len(fetched) > spec.limit,
        columns=tuple(names),
        rows=tuple(kept),
    )


def _unique(names: list[str]) -> list[str]:
    """Column names made unique: a second ``id`` becomes ``id (2)``."""
    seen: list[str] = []
    for name in names:
        key, copy = name[:MAX_CELL_CHARS], 1
        while key in seen:
            copy += 1
            key = f"{name[:MAX_CELL_CHARS]} ({copy})"
        seen.append(key)
    return seen


MAX_ROWS_BYTES = 2_000_000
"""JSON bytes of a failed-rows alert's rows kept for its messages (sample or CSV attachment)."""
_RESERVED = frozenset({"status", "actual_value", "threshold"})
MAX_CELL_CHARS = 1_000
"""Characters of one value kept from a result (context, actual_value, threshold); the rest is cut, saying so."""
MAX_CONTEXT_COLUMNS = 50
"""Context columns kept from a result; the others are counted, not stored or sent."""


def safe_value(value: Any) -> Any:
    """A database value as something every channel and the state store can take: numbers stay numbers (NaN and
    infinities become the text ``NaN``, ``Infinity``, ``-Infinity``, valid in any JSON), binary becomes a short
    hex summary, and any text longer than :data:`MAX_CELL_CHARS` is cut."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float | Decimal):
        number = math.nan if isinstance(value, Decimal) and value.is_snan() else float(value)
        if math.isfinite(number):
            return value
        return "NaN" if math.isnan(number) else "Infinity" if number > 0 else "-Infinity"
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return f"<{len(data):,} bytes: 0x{data[:32].hex()}{'...' if len(data) > 32 else ''}>"
    if isinstance(value, dt.date | dt.time | dt.timedelta):
        return value
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict | list | tuple):  # JSON and array columns: kept as they are if small and valid
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            value = text = json.dumps(value, default=str)
    else:
        value = text = str(value)
    if len(text) > MAX_CELL_CHARS:
        return f"{text[:MAX_CELL_CHARS]}... ({len(text):,} characters, cut)"
    return value


def resolve_sqlite_path(url: str, base_dir: Path) -> str:
    """Make a relative SQLite path relative to ``base_dir`` (the alerts file's folder) instead of the cwd."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return url
    if database.startswith("file:") or Path(database).is_absolute():
        return url
    return parsed.set(database=str((base_dir / database).resolve())).render_as_string(hide_password=False)


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


def evaluate_query(
    engine: Engine,
    *,
    alert: str,
    database: str,
    query: str,
    timeout: float,
    secrets: Sequence[str] = (),
    rows: RowsSpec | None = None,
    status_required: bool = True,
) -> AlertResult:
    """Run ``query`` read-only with ``timeout`` seconds and return its result under the contract (or, with
    ``rows``, as a failed-rows alert: up to ``rows.limit`` rows are fetched, within the same timeout).

    Raises :class:`AlertQueryError` naming the alert and the database error (secrets redacted), or
    :class:`ResultContractError` when the result breaks the contract.
    """
    started = time.perf_counter()
    try:
        with checkout_deadline(timeout + GRACE), engine.connect() as conn, _guarded(conn, timeout):
            cursor = conn.exec_driver_sql(_escape_percent(conn, query))
            columns = list(cursor.keys())
            wanted = 2 if rows is None else rows.limit + 1  # one more than used: to tell "more"
            fetched = [tuple(r) for r in cursor.fetchmany(wanted)] if cursor.returns_rows else []
    except sa.exc.SQLAlchemyError as exc:
        raise AlertQueryError(alert, database, _describe(exc, timeout, secrets)) from None
    if rows is not None:
        result = parse_rows(alert, columns, fetched, rows)
    else:
        result = parse_result(alert, columns, fetched, status_required=status_required)
    return AlertResult(**{**result.__dict__, "duration_ms": (time.perf_counter() - started) * 1000})


def _escape_percent(conn: Connection, query: str) -> str:
    """Drivers with format/pyformat parameters (psycopg2, PyMySQL) read '%' as a placeholder: double it."""
    return query.replace("%", "%%") if conn.dialect.paramstyle in ("format", "pyformat") else query


@contextmanager
def _guarded(conn: Connection, timeout: float) -> Iterator[None]:
    """Make the connection read-only and bounded by ``timeout`` where the database supports it."""
    backend = conn.dialect.name
    if backend == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
        try:
            yield
        finally:
            conn.rollback()
    elif backend in ("mysql", "mariadb"):
        if getattr(conn.dialect, "is_mariadb", False):
            conn.exec_driver_sql(f"SET SESSION max_statement_time = {timeout:.3f}")
        else:
            conn.exec_driver_sql(f"SET SESSION max_execution_time = {max(1, int(timeout * 1000))}")
        conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        try:
            yield
        finally:
            conn.rollback()
    elif backend == "sqlite":
        with _sqlite_guard(conn, timeout):
            yield
    else:
        try:
            yield
        finally:
            conn.rollback()


@contextmanager
def _sqlite_guard(conn: Connection, timeout: float) -> Iterator[None]:
    raw: Any = conn.connection.driver_connection
    deadline = time.monotonic() + timeout
    conn.exec_driver_sql("PRAGMA query_only = ON")
    raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
    try:
        yield
    finally:
        raw.set_progress_handler(None, 0)
        conn.rollback()
        conn.exec_driver_sql("PRAGMA query_only = OFF")


_TIMEOUT_MARKERS = (
    "canceling statement due to statement timeout",  # PostgreSQL
    "max_statement_time exceeded",  # MariaDB
    "maximum statement execution time exceeded",  # MySQL
    "interrupted",  # SQLite progress handler
)


def _describe(exc: sa.exc.SQLAlchemyError, timeout: float, secrets: Sequence[str]) -> str:
    original = getattr(exc, "orig", None)
    message = str(original if original is not None else exc).strip()
    first_line = message.splitlines()[0] if message else type(exc).__name__
    cut = cut_by_deadline()
    if cut is not None:
        return f"no answer from the database within {cut:g}s (timeout {timeout:g}s + {GRACE:g}s); connection cut"
    if "timeout expired" in message.lower():  # libpq's connect_timeout
        first_line = f"could not connect in time ({first_line})"
    elif any(marker in message.lower() for marker in _TIMEOUT_MARKERS):
        first_line = f"timed out after {timeout:g}s ({first_line})"
    return redact_text(first_line, secrets)
