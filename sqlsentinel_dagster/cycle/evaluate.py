"""Run an alert's query, read-only and with a timeout, and apply the result contract (:mod:`.results`) to what it
returns. No Dagster here.

Only the rows needed are read, and they are read as the database sends them (:func:`_streamed`): two for an
alert (enough to tell "several rows"), ``limit + 1`` for a failed-rows alert, in batches sized to about
:data:`_BATCH_BYTES`. Memory follows those rows, not the size of the query's result.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..config.instances import InstancesSpec
from ..config.rows import RowsSpec
from ..errors import AlertQueryError
from ..redact import redact_text
from ..sql.engines import abandon_unbuffered, checkout_deadline, cut_by_deadline
from .instances import InstanceParser
from .results import AlertResult, NoData, RowsTally, parse_result

__all__ = ["evaluate_query"]

GRACE = 5.0
"""Seconds past an alert's timeout before its connection is cut, for a server that does not end the query."""
_BATCH_BYTES = 1_000_000
"""Rows are fetched in batches of about this many bytes (judged by the largest row of the previous batch)."""
_MAX_BATCH_ROWS = 1_000
"""The most rows in one batch, however small they are (for PostgreSQL: one ``FETCH``)."""


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
    instances: InstancesSpec | None = None,
    no_data: NoData = "error",
) -> AlertResult:
    """Run ``query`` read-only with ``timeout`` seconds and return its result under the contract (or, with
    ``rows``, as a failed-rows alert: up to ``rows.limit`` rows are fetched, within the same timeout; with
    ``instances``, each of up to ``instances.max`` rows as an instance). Rows are read as they come, and no more
    than needed: see :func:`_streamed`. ``no_data`` says what a result without rows is (see :func:`.parse_result`).

    Raises :class:`AlertQueryError` naming the alert and the database error (secrets redacted), or
    :class:`ResultContractError` when the result breaks the contract.
    """
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    try:
        with (
            checkout_deadline(timeout + GRACE),
            engine.connect() as conn,
            _guarded(conn, timeout),
            _streamed(conn, query) as stream,
        ):
            tally: RowsTally | InstanceParser | None = None
            if instances is not None:
                tally = InstanceParser(alert, stream.columns, instances, status_required=status_required)
            elif rows is not None:
                tally = RowsTally(stream.columns, rows)
            if tally is None:
                fetched = stream.take(2)  # one more than used: to tell "several rows"
            while tally is not None and tally.wanted and not stream.exhausted:  # one more than kept: "more", "cut"
                if time.monotonic() > deadline:  # PostgreSQL bounds each FETCH, not all of them together
                    raise AlertQueryError(alert, database, f"timed out after {timeout:g}s reading the rows")
                for row in stream.batch(tally.wanted):
                    tally.add(row)
    except sa.exc.SQLAlchemyError as exc:
        raise AlertQueryError(alert, database, _describe(exc, timeout, secrets)) from None
    if isinstance(tally, InstanceParser):
        result = tally.result().summary()
    elif tally is not None:
        result = tally.result()
    else:
        result = parse_result(alert, stream.columns, fetched, status_required=status_required, no_data=no_data)
    return AlertResult(**{**result.__dict__, "duration_ms": (time.perf_counter() - started) * 1000})


class _RowStream:
    """A query's rows, fetched on demand in batches of about :data:`_BATCH_BYTES`."""

    def __init__(self, result: sa.CursorResult[Any]) -> None:
        self._result = result
        self.columns = list(result.keys())
        self.exhausted = not result.returns_rows
        """The last fetch found the end of the result (the driver has read all of it)."""
        self._batch = 1  # the first row tells how big rows are

    def batch(self, most: int) -> list[tuple[Any, ...]]:
        """The next batch: up to ``most`` rows, fewer at the end of the result or to keep the batch's size."""
        if self.exhausted:
            return []
        size = min(most, self._batch)
        batch = [tuple(row) for row in self._result.fetchmany(size)]
        self.exhausted = len(batch) < size
        largest = max((_row_bytes(row) for row in batch), default=1)
        self._batch = max(1, min(_MAX_BATCH_ROWS, _BATCH_BYTES // max(1, largest)))
        return batch

    def take(self, count: int) -> list[tuple[Any, ...]]:
        """The next ``count`` rows, or all that are left if fewer."""
        taken: list[tuple[Any, ...]] = []
        while len(taken) < count and not self.exhausted:
            taken += self.batch(count - len(taken))
        return taken


@contextmanager
def _streamed(conn: Connection, query: str) -> Iterator[_RowStream]:
    """Run ``query`` on ``conn`` and read its rows as the database sends them, where the driver can do so without
    loading the whole result: a server-side cursor on PostgreSQL (``DECLARE``, then ``FETCH`` per batch), an
    unbuffered cursor with PyMySQL, and SQLite's own stepping. Other drivers load the result as they always do.

    Leaving early costs nothing on PostgreSQL (the cursor is closed) and SQLite; a MySQL/MariaDB result left
    half-read drops the connection (:func:`.engines.abandon_unbuffered`) rather than read the rest.
    """
    streaming = _can_stream(conn, query)
    result = conn.exec_driver_sql(_escape_percent(conn, query), execution_options={"stream_results": streaming})
    stream = _RowStream(result)
    try:
        yield stream
    finally:
        if streaming and not stream.exhausted and conn.dialect.name in ("mysql", "mariadb"):
            abandon_unbuffered(conn, result.cursor)
        else:
            result.close()


_DECLARABLE = re.compile(r"(?:SELECT|WITH|VALUES|TABLE)\b", re.IGNORECASE)
"""The statements a PostgreSQL cursor can be declared for: anything else, such as ``SHOW``, runs as it is and
its answer is read whole."""


def _statement_start(query: str) -> int:
    """Where ``query``'s statement starts, past whitespace, comments, ``(`` and ``;``: one pass, so no query
    (however many spaces it starts with) makes it slow, as a backtracking pattern would."""
    at, end = 0, len(query)
    while at < end:
        if query[at].isspace() or query[at] in "(;":
            at += 1
        elif query.startswith("--", at):
            newline = query.find("\n", at)
            at = end if newline < 0 else newline + 1
        elif query.startswith("/*", at):
            close = query.find("*/", at + 2)
            at = end if close < 0 else close + 2
        else:
            break
    return at


def _can_stream(conn: Connection, query: str) -> bool:
    """Whether ``query`` can stream on ``conn``'s driver and be left half-read without reading the rest."""
    dialect = conn.dialect
    if not dialect.supports_server_side_cursors:
        return False  # SQLite steps rows on demand anyway; other drivers buffer
    if dialect.name == "postgresql":
        return _DECLARABLE.match(query, _statement_start(query)) is not None
    return dialect.name in ("mysql", "mariadb") and dialect.driver == "pymysql"  # see abandon_unbuffered


def _row_bytes(row: tuple[Any, ...]) -> int:
    """About how much memory a fetched row takes (values; JSON and arrays shallowly)."""
    return sum(value.nbytes if isinstance(value, memoryview) else sys.getsizeof(value) for value in row)


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
