"""The state store: one short transaction per evaluation, serialized per alert in the database.

``record`` locks the alert's row (``SELECT ... FOR UPDATE`` on Postgres/MySQL, ``BEGIN IMMEDIATE`` on SQLite),
decides, and writes the new state, the notification intents (one per channel, unique key) and a history row
in the same transaction. Delivery then claims each intent with a lease, so concurrent runs never send twice.
Delivery's bookkeeping is :mod:`.ledger`'s. Watched asset checks (``watch:``) are recorded the same way, by the
methods :mod:`.watched` adds; instance alerts' instances by :mod:`.instances`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from ..sql.engines import bounded_engine
from .channel_holds import with_channel_times
from .decision import Decision, already_evaluated, decide
from .inhibition import firing_labels, inhibited
from .instances import InstanceRecords
from .ledger import Ledger, chunks
from .model import AlertState, Outcome, StateSettings, kept
from .rows import Intent, dumps, history_row, intent_rows, silence_from_row, state_from_json
from .schema import alert_state, history, migrate, notifications, silences
from .silences import AlertLabels, Silence
from .watched import WatchedChecks

__all__ = ["Clock", "Intent", "StateStore", "utcnow"]

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    """The system clock, in UTC."""
    return dt.datetime.now(dt.UTC)


STATE_DEADLINE = 60.0
"""Seconds a state transaction may hold its connection before it is cut (the server stopped answering)."""


def create_state_engine(url: str, deadline: float = STATE_DEADLINE) -> sa.Engine:
    """An engine for the state tables, every wait bounded (see :mod:`..engines`); SQLite gets a busy timeout
    and write-locking transactions."""
    if url.startswith("sqlite"):
        engine = bounded_engine(url, deadline=deadline, connect_args={"timeout": deadline / 2})

        @sa.event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN itself

        @sa.event.listens_for(engine, "begin")
        def _begin_immediate(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front: serializes evaluations

        return engine
    return bounded_engine(url, deadline=deadline)


class StateStore(Ledger, WatchedChecks, InstanceRecords):
    """Alert state, silences, notification ledger and history in one database."""

    def __init__(self, engine: sa.Engine, clock: Clock = utcnow, *, create_tables: bool = True) -> None:
        """Create or migrate the tables, unless ``create_tables`` is False: then the database is left as it is,
        for read-only tools (:func:`.schema.installed_version` tells whether it has tables to read)."""
        self.engine = engine
        self.clock = clock
        if create_tables:
            migrate(engine)

    @classmethod
    def from_url(cls, url: str, clock: Clock = utcnow, *, create_tables: bool = True) -> StateStore:
        """A store on ``url`` (tables created or migrated on first use, unless ``create_tables`` is False)."""
        return cls(create_state_engine(url), clock, create_tables=create_tables)

    # -- evaluation -------------------------------------------------------------------------------------------

    def record(
        self,
        labels: AlertLabels,
        outcome: Outcome,
        settings: StateSettings,
        channels: Mapping[str, Collection[str]],
        payload: dict[str, Any],
        run_id: str | None,
        dry_run: bool = False,
        tick: str | None = None,
    ) -> Decision:
        """Decide and, unless ``dry_run``, store the decision with its intents and a history row atomically.

        ``channels`` maps each notify entry's id to the events it takes (e.g. no ``resolved`` when
        ``send_resolved`` is off; only ``error`` for fallback receivers). ``tick``: the schedule tick the run
        evaluates; when the alert was already recorded for it (a retried or repeated run), nothing is written and
        the decision is ``already_evaluated``.
        """
        now = self.clock()
        with self.engine.begin() as conn:
            previous = self._lock_state(conn, labels.name, create=not dry_run)
            if tick is not None and previous is not None and previous.last_tick == tick:
                conn.rollback()
                return already_evaluated(previous, tick)
            if outcome.keep:  # no rows, no_data: keep: the status is the state's (messages say it too)
                outcome = kept(outcome, previous)
                payload = {**payload, "status": outcome.status}
            held = (
                inhibited(settings.inhibit, labels, firing_labels(conn), settings.upstream)
                if settings.inhibit
                else None
            )
            decision = decide(
                previous,
                outcome,
                labels=labels,
                silences=self._silences(conn),
                settings=settings,
                now=now,
                inhibited=held,
            )
            decision = with_channel_times(decision, labels, channels, settings, now)
            if tick is not None:
                decision = replace(decision, state=decision.state.evolve(last_tick=tick))
            if dry_run:
                conn.rollback()
                return decision
            self._write_decision(conn, decision, labels, outcome, channels, payload, run_id, now)
        return decision

    def ticked(self, names: Collection[str], tick: str) -> set[str]:
        """Which of ``names`` were already evaluated for the schedule tick ``tick`` (one query per 500)."""
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in chunks(sorted(set(names))):
                query = sa.select(alert_state.c.alert, alert_state.c.data).where(alert_state.c.alert.in_(chunk))
                for name, data in conn.execute(query):
                    if data and data != "{}" and state_from_json(name, data).last_tick == tick:
                        found.add(name)
        return found

    def _write_decision(
        self,
        conn: sa.Connection,
        decision: Decision,
        labels: AlertLabels,
        outcome: Outcome,
        channels: Mapping[str, Collection[str]],
        payload: dict[str, Any],
        run_id: str | None,
        now: dt.datetime,
    ) -> None:
        """Write the decision's state, its notification intents and a history row (in ``conn``'s transaction)."""
        self._write_state(conn, decision.state, labels, now)
        rows = intent_rows(labels.name, decision, channels, payload, run_id, now)
        if rows:
            conn.execute(sa.insert(notifications), rows)
        conn.execute(sa.insert(history).values(**history_row(labels.name, decision, outcome, run_id, now)))

    def _lock_state(self, conn: sa.Connection, alert: str, create: bool) -> AlertState | None:
        query = sa.select(alert_state.c.data).where(alert_state.c.alert == alert)
        if conn.dialect.name != "sqlite":
            query = query.with_for_update()
        data = conn.execute(query).scalar()
        if data is None and create:  # first evaluation: create the row to lock (a concurrent run may too)
            conn.execute(_insert_ignore(conn, alert_state).values(alert=alert, data="{}", labels="{}"))
            data = conn.execute(query).scalar()
        return state_from_json(alert, data) if data and data != "{}" else None

    def _write_state(self, conn: sa.Connection, state: AlertState, labels: AlertLabels, now: dt.datetime) -> None:
        conn.execute(
            sa.update(alert_state)
            .where(alert_state.c.alert == state.alert)
            .values(
                condition=state.condition,
                last_status=state.last_status,
                data=dumps(asdict(state)),
                labels=dumps(asdict(labels)),
                updated_at=now,
            )
        )

    def _silences(self, conn: sa.Connection) -> list[Silence]:
        rows = conn.execute(sa.select(silences).where(silences.c.ends_at > self.clock())).mappings()
        return [silence_from_row(row) for row in rows]


def _insert_ignore(conn: sa.Connection, table: sa.Table) -> Any:
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    if name in ("mysql", "mariadb"):
        return mysql.insert(table).prefix_with("IGNORE")
    raise RuntimeError(f"the state store does not support {name} databases; use SQLite, PostgreSQL or MySQL")
