"""Writing one evaluation of an instance alert (see :mod:`.instances`): every instance's state in one upsert, the
instance rows that changed, and the ledger and history rows, each kind in one batch."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from .instance_model import InstanceDecision, InstanceLabels, InstanceRow
from .model import AlertState, Outcome
from .rows import dumps, history_row, intent_rows
from .schema import alert_state, history, instances, notifications
from .silences import AlertLabels

__all__ = ["Known", "write_instances"]


@dataclass
class Known:
    """An instance as recorded before this evaluation: its labels, whether current, how long missing, its state."""

    labels: dict[str, str]
    current: bool
    missing: int
    state: AlertState | None


def write_instances(
    conn: sa.Connection,
    parent: AlertLabels,
    decided: Sequence[InstanceDecision],
    known: Mapping[str, Known],
    channels: Callable[[InstanceLabels], Mapping[str, Collection[str]]],
    parent_payload: Mapping[str, Any],
    rows: Mapping[str, InstanceRow],
    run_id: str | None,
    now: dt.datetime,
) -> None:
    """Write each decided instance's state (one upsert for all), its instance row where it changed, its intents and
    its history row, each kind in one batch."""
    states, new_rows, changed, intents, evaluations = [], [], [], [], []
    for item in decided:
        row = rows.get(item.name)
        labels = row.labels if row else InstanceLabels.of(parent, item.name, item.labels)
        states.append(
            {
                "alert": item.name,
                "condition": item.decision.state.condition,
                "last_status": item.decision.state.last_status,
                "data": dumps(_shallow(item.decision.state)),
                "labels": dumps(_shallow(labels)),
                "updated_at": now,
            }
        )
        gone = item.decision.code.startswith("gone")
        before = known.get(item.name)
        if before is None or (before.current, before.missing, before.labels) != (not gone, item.missing, item.labels):
            listed = {"labels": dumps(dict(item.labels)), "current": not gone, "missing": item.missing}
            if before is None:
                new_rows.append({"instance": item.name, "alert": parent.name, **listed, "first_seen": now})
            else:
                changed.append({"b_name": item.name, **listed})
        payload = row.payload if row else _gone_payload(parent_payload, item)
        if item.decision.event is not None or item.decision.released:
            intents += intent_rows(item.name, item.decision, channels(labels), payload, run_id, now)
        if row or gone:
            outcome = row.outcome if row else Outcome("OK", error=None)
            evaluations.append(history_row(item.name, item.decision, outcome, run_id, now))
    if states:
        _upsert_states(conn, states)
    if new_rows:
        conn.execute(sa.insert(instances), new_rows)
    if changed:
        conn.execute(sa.update(instances).where(instances.c.instance == sa.bindparam("b_name")), changed)
    if intents:
        conn.execute(sa.insert(notifications), intents)
    if evaluations:
        conn.execute(sa.insert(history), evaluations)


_STATE_COLUMNS = ("condition", "last_status", "data", "labels", "updated_at")


def _upsert_states(conn: sa.Connection, states: list[dict[str, Any]]) -> None:
    """Insert or update the state rows ``states`` in one batched statement: on PostgreSQL with ``RETURNING``, so
    SQLAlchemy sends them as a few multi-row statements rather than one round trip per row."""
    name = conn.dialect.name
    if name == "postgresql":
        insert = postgresql.insert(alert_state)
        upsert: Any = insert.on_conflict_do_update(
            index_elements=[alert_state.c.alert], set_={c: insert.excluded[c] for c in _STATE_COLUMNS}
        ).returning(alert_state.c.alert)
        conn.execute(upsert, states).all()
    elif name == "sqlite":
        on_sqlite = sqlite.insert(alert_state)
        upsert = on_sqlite.on_conflict_do_update(
            index_elements=[alert_state.c.alert], set_={c: on_sqlite.excluded[c] for c in _STATE_COLUMNS}
        )
        conn.execute(upsert, states)
    elif name in ("mysql", "mariadb"):
        on_mysql = mysql.insert(alert_state)
        conn.execute(on_mysql.on_duplicate_key_update({c: on_mysql.inserted[c] for c in _STATE_COLUMNS}), states)
    else:
        raise RuntimeError(f"the state store does not support {name} databases; use SQLite, PostgreSQL or MySQL")


def _shallow(value: Any) -> dict[str, Any]:
    """A dataclass's fields as a mapping, without :func:`dataclasses.asdict`'s deep copy (JSON is made of it next)."""
    return dict(vars(value))


def _gone_payload(parent: Mapping[str, Any], item: InstanceDecision) -> dict[str, Any]:
    """The message of an instance resolved because its row is missing: the alert's, naming the instance."""
    return {
        **parent,
        "instance": item.name,
        "labels": dict(item.labels),
        "status": "OK",
        "error": None,
        "actual_value": None,
        "threshold": None,
        "context": {},
    }
