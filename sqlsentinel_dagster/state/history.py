"""What the state database has recorded, read only: evaluations, their statistics, the alerts it knows.

For ``sqlsentinel history`` and the replay of recorded evaluations (:mod:`..replay`); nothing here writes.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .schema import alert_state, history, notifications
from .store import StateStore

__all__ = [
    "MAX_EVALUATIONS_READ",
    "HistoryStats",
    "alert_history",
    "evaluations_between",
    "first_evaluated_at",
    "history_stats",
    "known_alerts",
    "values_of_many",
]


def alert_history(store: StateStore, alert: str | None, limit: int = 20, offset: int = 0) -> list[dict[str, Any]]:
    """The latest ``limit`` evaluations of ``alert`` (of every alert when None), newest first, after ``offset``."""
    query = sa.select(history).order_by(history.c.evaluated_at.desc(), history.c.id.desc())
    if alert is not None:
        query = query.where(history.c.alert == alert)
    with store.engine.connect() as conn:
        return [dict(row) for row in conn.execute(query.limit(limit).offset(offset)).mappings()]


MAX_EVALUATIONS_READ = 200_000
"""The most evaluations :func:`evaluations_between` returns: 138 days of an alert evaluated every minute."""


def evaluations_between(
    store: StateStore, alert: str, start: dt.datetime, end: dt.datetime, limit: int = MAX_EVALUATIONS_READ
) -> tuple[list[dict[str, Any]], bool]:
    """The evaluations of ``alert`` recorded from ``start`` to ``end`` (both included), oldest first, with
    ``evaluated_at``, ``status``, ``actual_value`` and ``error`` (both cut at 200 characters); and whether older
    ones in that period were left out because there are more than ``limit`` (the newest ``limit`` are returned)."""
    query = (
        sa.select(
            history.c.evaluated_at,
            history.c.status,
            sa.func.substr(history.c.actual_value, 1, 200).label("actual_value"),
            sa.func.substr(history.c.error, 1, 200).label("error"),
        )
        .where(history.c.alert == alert, history.c.evaluated_at >= start, history.c.evaluated_at <= end)
        .order_by(history.c.evaluated_at.desc(), history.c.id.desc())
        .limit(limit + 1)
    )
    with store.engine.connect() as conn:
        rows = [dict(row) for row in conn.execute(query).mappings()]
    cut = len(rows) > limit
    return rows[:limit][::-1], cut


def values_of_many(
    store: StateStore, alerts: Sequence[str], start: dt.datetime, end: dt.datetime, most: int
) -> dict[str, list[tuple[dt.datetime, str | None, str]]]:
    """The evaluations of each of ``alerts`` (an instance alert's instances) recorded from ``start`` to ``end``,
    as ``(evaluated_at, actual_value cut at 200 characters, status)``: one query per 500 names, read as they come.

    Raises ValueError when there are more than ``most`` in all (they are not all held in memory)."""
    found: dict[str, list[tuple[dt.datetime, str | None, str]]] = {}
    count = 0
    names = sorted(set(alerts))
    with store.engine.connect() as conn:
        for start_at in range(0, len(names), 500):
            query = sa.select(
                history.c.alert,
                history.c.evaluated_at,
                sa.func.substr(history.c.actual_value, 1, 200),
                history.c.status,
            ).where(
                history.c.alert.in_(names[start_at : start_at + 500]),
                history.c.evaluated_at >= start,
                history.c.evaluated_at <= end,
            )
            for alert, at, value, status in conn.execution_options(yield_per=5_000).execute(query):
                count += 1
                if count > most:
                    raise ValueError(f"more than {most:,} evaluations of {len(names):,} instances to learn from")
                found.setdefault(alert, []).append((at, value, status))
    return found


def first_evaluated_at(store: StateStore, alert: str) -> dt.datetime | None:
    """When the oldest evaluation of ``alert`` still recorded was made (older ones were pruned), or None."""
    query = (
        sa.select(history.c.evaluated_at)
        .where(history.c.alert == alert)
        .order_by(history.c.evaluated_at, history.c.id)
        .limit(1)
    )
    with store.engine.connect() as conn:
        first: dt.datetime | None = conn.execute(query).scalar()
    return first


def known_alerts(store: StateStore) -> list[str]:
    """The names of every alert the state database has recorded."""
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(alert_state.c.alert).order_by(alert_state.c.alert)).scalars())


@dataclass(frozen=True)
class HistoryStats:
    """Statistics over all recorded evaluations and notifications of one alert."""

    runs: int
    alert: int
    ok: int
    error: int
    firing_share: float
    """ALERT results among ALERT and OK results (errors excluded)."""
    duration_p50_ms: float | None
    duration_p95_ms: float | None
    notifications: dict[str, int]
    """Count per ledger status: delivered, suppressed, failed, pending, sending, expired."""


def history_stats(store: StateStore, alert: str) -> HistoryStats:
    """Runs, firing share, query duration p50/p95 and notifications sent/suppressed/failed for ``alert``."""
    with store.engine.connect() as conn:
        statuses = conn.execute(
            sa.select(history.c.status, sa.func.count()).where(history.c.alert == alert).group_by(history.c.status)
        ).all()
        durations = sorted(
            d
            for (d,) in conn.execute(
                sa.select(history.c.duration_ms).where(history.c.alert == alert, history.c.status.in_(("ALERT", "OK")))
            )
            if d is not None
        )
        sent = conn.execute(
            sa.select(notifications.c.status, sa.func.count())
            .where(notifications.c.alert == alert)
            .group_by(notifications.c.status)
        ).all()
    counts = {status: int(n) for status, n in statuses}
    judged = counts.get("ALERT", 0) + counts.get("OK", 0)
    return HistoryStats(
        runs=sum(n for status, n in counts.items() if status in ("ALERT", "OK", "ERROR")),  # not acknowledgements
        alert=counts.get("ALERT", 0),
        ok=counts.get("OK", 0),
        error=counts.get("ERROR", 0),
        firing_share=counts.get("ALERT", 0) / judged if judged else 0.0,
        duration_p50_ms=statistics.median(durations) if durations else None,
        duration_p95_ms=_percentile(durations, 0.95),
        notifications={status: int(n) for status, n in sent},
    )


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, max(0, round(fraction * (len(values) - 1))))]
