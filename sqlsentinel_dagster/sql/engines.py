"""Database engines whose every wait ends: a connect timeout per driver and a deadline on every checkout.

Server-side limits (``statement_timeout``, ``max_statement_time``, SQLite's progress handler) end a slow query
on a server that answers. A server that accepts the connection and then never answers (a half-dead host, a
stuck proxy) would still block the driver forever, so every checkout of a connection gets a deadline: a
watchdog thread shuts the connection's socket down when it passes (SQLite: interrupts it). The blocked
driver call then fails, SQLAlchemy discards the connection, and :func:`cut_by_deadline` tells the caller why.

Pooled connections are pinged under the same deadline before use (SQLAlchemy's ``pool_pre_ping`` pings
before any event could arm it), so a restarted server is still no error and a silent one is no hang.

A result streamed from MySQL/MariaDB and left half-read is ended by :func:`abandon_unbuffered` (the connection
is dropped), never read to its end.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

__all__ = ["CONNECT_TIMEOUT", "abandon_unbuffered", "bounded_engine", "checkout_deadline", "cut_by_deadline"]

CONNECT_TIMEOUT = 10
"""Seconds to establish a connection (TCP, TLS and authentication), for drivers that take a connect timeout."""

_CONNECT_ARGS = {"postgresql": "connect_timeout", "mysql": "connect_timeout", "mariadb": "connect_timeout"}


@dataclass(order=True)
class _Lease:
    deadline: float
    seq: int
    connection: Any = field(compare=False)
    seconds: float = field(compare=False)
    fired: bool = field(default=False, compare=False)
    done: bool = field(default=False, compare=False)


class _Watchdog:
    """One daemon thread that cuts the connections whose checkout outlived its deadline."""

    def __init__(self) -> None:
        self._heap: list[_Lease] = []
        self._wake = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, connection: Any, seconds: float) -> _Lease:
        lease = _Lease(time.monotonic() + seconds, next(self._seq), connection, seconds)
        with self._wake:
            heapq.heappush(self._heap, lease)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sqlsentinel-deadlines", daemon=True)
                self._thread.start()
            elif self._heap[0] is lease:
                self._wake.notify()
        return lease

    @staticmethod
    def disarm(lease: _Lease) -> None:
        lease.done = True
        lease.connection = None  # the heap entry lingers until its deadline; it must not keep the connection

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait(60)
                    continue
                delay = self._heap[0].deadline - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                lease = heapq.heappop(self._heap)
            if not lease.done and lease.connection is not None:
                lease.fired = True
                _cut(lease.connection)


_WATCHDOG = _Watchdog()
_local = threading.local()


def _cut(connection: Any) -> None:
    """Make a blocked call on ``connection`` fail now: shut its socket down (PostgreSQL, MySQL) or interrupt it."""
    try:
        sock = getattr(connection, "_sock", None)  # PyMySQL
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
        elif callable(getattr(connection, "interrupt", None)):  # sqlite3
            connection.interrupt()
        elif callable(getattr(connection, "fileno", None)):  # psycopg2, mysqlclient
            with socket.socket(fileno=os.dup(connection.fileno())) as dup:
                dup.shutdown(socket.SHUT_RDWR)
    except Exception:  # already closed (each driver says so its own way): nothing is blocked on it
        pass


def abandon_unbuffered(conn: sa.Connection, dbapi_cursor: Any) -> None:
    """End a half-read unbuffered result on ``conn`` (MySQL/MariaDB ``stream_results``) without reading the rest:
    the connection is invalidated (closed, not returned to the pool) and the server, whose next write of a row
    then fails, ends the query.

    The MySQL protocol cannot stop a result midway, so PyMySQL reads every remaining row first, whatever asks
    it to move on: closing the cursor, the connection's next command (even the rollback that returns it to the
    pool), or garbage collection of the cursor. For a query of millions of rows that is the whole result again,
    paid in time instead of memory. Dropping the connection costs one reconnect instead.
    """
    conn.invalidate()
    # Private to PyMySQL, and the only way to tell it not to drain: once its connection is closed a drain would
    # fail at once anyway (no hang), but noisily ("Exception ignored in SSCursor.close") whenever the cursor is
    # collected. The connection is already closed, so nothing can read the stream out of step.
    pending = getattr(dbapi_cursor, "_result", None)
    if pending is not None and getattr(pending, "unbuffered_active", False):
        pending.unbuffered_active = False


@contextmanager
def checkout_deadline(seconds: float) -> Iterator[None]:
    """Connections checked out in this block (by this thread) must be returned within ``seconds``."""
    previous = getattr(_local, "seconds", None)
    _local.seconds = seconds
    _local.lease = None
    try:
        yield
    finally:
        _local.seconds = previous


def cut_by_deadline() -> float | None:
    """If this thread's latest checkout was cut by its deadline, that deadline in seconds; else None."""
    lease: _Lease | None = getattr(_local, "lease", None)
    return lease.seconds if lease is not None and lease.fired else None


def bounded_engine(url: str, *, deadline: float, **kwargs: Any) -> sa.Engine:
    """``sa.create_engine(url, **kwargs)`` with a connect timeout and a ``deadline`` (seconds) on each checkout,
    unless :func:`checkout_deadline` gives another. The URL's own ``connect_timeout`` wins over ours."""
    parsed = make_url(url)
    connect_args = dict(kwargs.pop("connect_args", {}))
    option = _CONNECT_ARGS.get(parsed.get_backend_name())
    if option and option not in parsed.query:
        connect_args.setdefault(option, CONNECT_TIMEOUT)
    engine = sa.create_engine(url, connect_args=connect_args, **kwargs)
    _bound(engine, deadline)
    return engine


def _bound(engine: sa.Engine, default: float) -> None:
    dialect = engine.dialect

    @sa.event.listens_for(engine, "connect")
    def _fresh(_dbapi: Any, record: Any) -> None:
        record.info["sqlsentinel_fresh"] = True

    @sa.event.listens_for(engine, "checkout")
    def _arm(dbapi: Any, record: Any, _proxy: Any) -> None:
        seconds = getattr(_local, "seconds", None) or default
        lease = _WATCHDOG.arm(dbapi, seconds)
        record.info["sqlsentinel_lease"] = lease
        _local.lease = lease
        if record.info.pop("sqlsentinel_fresh", False):
            return
        try:
            dialect.do_ping(dbapi)  # pooled: is it still alive? (under the deadline: a silent server is cut)
        except Exception as exc:
            _WATCHDOG.disarm(lease)
            raise sa.exc.DisconnectionError("connection lost while pooled") from exc

    def _disarm(_dbapi: Any, record: Any, *_: Any) -> None:
        lease = record.info.pop("sqlsentinel_lease", None) if record is not None else None
        if lease is not None:
            _WATCHDOG.disarm(lease)

    for name in ("checkin", "invalidate", "soft_invalidate", "close"):
        sa.event.listen(engine, name, _disarm)
