"""Acknowledgements: someone is on it. An acknowledged alert (or instance) sends no reminders until it resolves;
its resolved notice still goes out, naming who acknowledged it, and the next firing after that notifies as usual.
A PagerDuty incident gets the ``acknowledge`` event (from the alert's next evaluation, through the ledger).

The acknowledgement is written into the alert's state under the same row lock evaluations take, so it is never
lost to a concurrent run; the decision reads it (:mod:`.decision`).
"""

from __future__ import annotations

import sqlalchemy as sa

from .admin import MAX_AUTHOR_LENGTH, MAX_REASON_LENGTH, text_problem
from .rows import dumps
from .schema import alert_state, history, instances
from .store import StateStore

__all__ = ["ack_reason", "acknowledge", "read_ack_reason"]

_PREFIX = "acknowledged by "


def acknowledge(store: StateStore, name: str, *, author: str, reason: str) -> list[str]:
    """Acknowledge the firing alert ``name``, or the firing instance ``name``, or, for an instance alert's name,
    every firing instance of it; return the names acknowledged.

    Raises ValueError naming every problem with ``author`` and ``reason``, or when nothing of that name is firing."""
    problems = [text_problem("author", author, MAX_AUTHOR_LENGTH), text_problem("reason", reason, MAX_REASON_LENGTH)]
    if ": " in author:
        problems.append("author: ': ' is not allowed in a name (the history records 'acknowledged by AUTHOR: REASON')")
    if any(problems):
        raise ValueError("cannot acknowledge: " + "; ".join(p for p in problems if p))
    now = store.clock()
    acknowledged = []
    with store.engine.begin() as conn:
        instance_alert, firing = _firing_instances(conn, name)
        names = firing if instance_alert else [name]  # an instance alert itself only ever notifies errors
        for each in names:
            state = store._lock_state(conn, each, create=False)
            if state is None or state.condition != "firing":
                continue
            acked = state.evolve(
                acknowledged_by=author.strip(), acknowledged_reason=reason.strip(), acknowledged_at=now, ack_told=False
            )
            conn.execute(sa.update(alert_state).where(alert_state.c.alert == each).values(data=dumps(vars(acked))))
            conn.execute(
                sa.insert(history).values(
                    alert=each,
                    evaluated_at=now,
                    status="ACK",  # not an evaluation: replay and baselines read only ALERT, OK and ERROR
                    decision="acknowledged",
                    reason=ack_reason(author.strip(), reason.strip()),
                )
            )
            acknowledged.append(each)
    if not acknowledged:
        raise ValueError(f"'{name}' is not firing: there is nothing to acknowledge (see sqlsentinel status)")
    return acknowledged


def _firing_instances(conn: sa.Connection, alert: str) -> tuple[bool, list[str]]:
    """Whether ``alert`` is an instance alert (it has instances recorded), and its current instances that fire."""
    if not sa.inspect(conn).has_table(instances.name):
        return False, []
    known = conn.execute(sa.select(instances.c.instance).where(instances.c.alert == alert).limit(1)).first()
    query = (
        sa.select(instances.c.instance)
        .join(alert_state, alert_state.c.alert == instances.c.instance)
        .where(instances.c.alert == alert, instances.c.current.is_(True), alert_state.c.condition == "firing")
        .order_by(instances.c.instance)
    )
    return known is not None, list(conn.execute(query).scalars())


def ack_reason(author: str, reason: str) -> str:
    """The reason an acknowledgement's history row records: ``acknowledged by ana: reloading the feed``."""
    return f"{_PREFIX}{author}: {reason}"


def read_ack_reason(text: str | None) -> tuple[str, str]:
    """The author and reason of an acknowledgement's history row, as :func:`ack_reason` wrote them (an author has
    no ``: ``)."""
    author, _, reason = (text or "").removeprefix(_PREFIX).partition(": ")
    return author or "someone", reason
