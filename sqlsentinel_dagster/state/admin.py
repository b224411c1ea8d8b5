"""What people do to alert state by hand: silence, unsilence, look at status and history, prune old history."""

from __future__ import annotations

import datetime as dt
import json
import statistics
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .rows import silence_from_row, state_from_json
from .schema import UTCDateTime, alert_state, history, notifications, silences
from .silences import AlertLabels, Matcher, Silence
from .store import StateStore

__all__ = [
    "AlertStatus",
    "HistoryStats",
    "add_silence",
    "alert_history",
    "alert_statuses",
    "end_silences",
    "history_stats",
    "known_alerts",
    "list_silences",
    "prune_history",
]


def add_silence(
    store: StateStore,
    matchers: Sequence[Matcher],
    *,
    ends_at: dt.datetime,
    author: str,
    reason: str,
    starts_at: dt.datetime | None = None,
) -> Silence:
    """Store a silence; it must have matchers, an author, a reason and an end after its start."""
    now = store.clock()
    start = starts_at or now
    problems = [
        "at least one matcher is required" if not matchers else "",
        "an author is required" if not author.strip() else "",
        "a reason is required" if not reason.strip() else "",
        f"the end ({ends_at.isoformat()}) must be after the start ({start.isoformat()})" if ends_at <= start else "",
    ]
    if any(problems):
        raise ValueError("cannot silence: " + "; ".join(p for p in problems if p))
    silence = Silence(uuid.uuid4().hex[:12], tuple(matchers), start, ends_at, author.strip(), reason.strip(), now)
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(silences).values(
                id=silence.id,
                matchers=json.dumps([str(m) for m in silence.matchers]),
                starts_at=silence.starts_at,
                ends_at=silence.ends_at,
                author=silence.author,
                reason=silence.reason,
                created_at=silence.created_at,
            )
        )
    return silence


def end_silences(store: StateStore, target: str) -> list[Silence]:
    """End now the silence whose id is ``target``, or the silences made for exactly the alert named ``target``.

    Broader silences (by tag, severity, owner or pattern) that also cover the alert are left alone: end them by id.
    """
    now = store.clock()
    only_this_alert = (Matcher("alert", "=", target),)
    ended = [s for s in list_silences(store) if s.id == target or s.matchers == only_this_alert]
    with store.engine.begin() as conn:
        for silence in ended:
            conn.execute(sa.update(silences).where(silences.c.id == silence.id).values(ends_at=now))
    return ended


def list_silences(store: StateStore, include_expired: bool = False) -> list[Silence]:
    """Silences that are pending or active (and expired ones if asked), soonest end first."""
    query = sa.select(silences).order_by(silences.c.ends_at)
    if not include_expired:
        query = query.where(silences.c.ends_at > store.clock())
    with store.engine.connect() as conn:
        return [silence_from_row(row) for row in conn.execute(query).mappings()]


@dataclass(frozen=True)
class AlertStatus:
    """One line of ``sqlsentinel status``."""

    alert: str
    condition: str
    last_status: str | None
    since: dt.datetime | None
    last_value: Any
    last_evaluated_at: dt.datetime | None
    last_notified_at: dt.datetime | None
    """The last notification actually delivered (pending ones do not count)."""
    last_error: str | None
    silenced_by: Silence | None
    notification_count: int
    """Notifications sent (firing, reminder, resolved, error), counted once per event."""
    delivered_per_channel: dict[str, dt.datetime]
    """The last successful delivery on each channel."""
    failed_notifications: int
    """Notifications given up: refused for good or expired."""


def alert_statuses(store: StateStore) -> list[AlertStatus]:
    """Every alert that has been evaluated, with its state and whether a silence covers it now."""
    now = store.clock()
    active = [s for s in list_silences(store) if s.state(now) == "active"]
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(alert_state).order_by(alert_state.c.alert)).mappings().all()
        ledger = conn.execute(
            sa.select(
                notifications.c.alert,
                notifications.c.channel,
                notifications.c.status,
                sa.func.count(),
                sa.func.max(notifications.c.delivered_at),
            ).group_by(notifications.c.alert, notifications.c.channel, notifications.c.status)
        ).all()
    delivered: dict[str, dict[str, dt.datetime]] = {}
    failed: dict[str, int] = {}
    for alert, channel, status, count, last in ledger:
        if status == "delivered" and last is not None:
            delivered.setdefault(alert, {})[channel] = _utc(last)
        elif status in ("failed", "expired"):
            failed[alert] = failed.get(alert, 0) + int(count)
    statuses = []
    for row in rows:
        if row["data"] == "{}":
            continue
        state = state_from_json(row["alert"], row["data"])
        labels = _labels_from_json(row["alert"], row["labels"])
        statuses.append(
            AlertStatus(
                alert=state.alert,
                condition=state.condition,
                last_status=state.last_status,
                since=state.since,
                last_value=state.last_value,
                last_evaluated_at=state.last_evaluated_at,
                last_notified_at=max(delivered.get(state.alert, {}).values(), default=None),
                last_error=state.last_error,
                silenced_by=next((s for s in active if s.matches(labels)), None),
                notification_count=state.notification_count,
                delivered_per_channel=delivered.get(state.alert, {}),
                failed_notifications=failed.get(state.alert, 0),
            )
        )
    return statuses


def alert_history(store: StateStore, alert: str | None, limit: int = 20, offset: int = 0) -> list[dict[str, Any]]:
    """The latest ``limit`` evaluations of ``alert`` (of every alert when None), newest first, after ``offset``."""
    query = sa.select(history).order_by(history.c.evaluated_at.desc(), history.c.id.desc())
    if alert is not None:
        query = query.where(history.c.alert == alert)
    with store.engine.connect() as conn:
        return [dict(row) for row in conn.execute(query.limit(limit).offset(offset)).mappings()]


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
    """Count per ledger status: delivered, suppressed, failed, pending, expired."""


def history_stats(store: StateStore, alert: str) -> HistoryStats:
    """Runs, firing share, query duration p50/p95 and notifications sent/suppressed/failed for ``alert``."""
    with store.engine.connect() as conn:
        statuses = conn.execute(
            sa.select(history.c.status, sa.func.count()).where(history.c.alert == alert).group_by(history.c.status)
        ).all()
        durations = sorted(
            d
            for (d,) in conn.execute(
                sa.select(history.c.duration_ms).where(history.c.alert == alert, history.c.status != "ERROR")
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
        runs=sum(counts.values()),
        alert=counts.get("ALERT", 0),
        ok=counts.get("OK", 0),
        error=counts.get("ERROR", 0),
        firing_share=counts.get("ALERT", 0) / judged if judged else 0.0,
        duration_p50_ms=statistics.median(durations) if durations else None,
        duration_p95_ms=_percentile(durations, 0.95),
        notifications={status: int(n) for status, n in sent},
    )


def prune_history(store: StateStore, older_than: dt.timedelta) -> dict[str, int]:
    """Delete evaluations, finished notifications and expired silences older than ``older_than``."""
    cutoff = store.clock() - older_than
    finished = ("delivered", "suppressed", "failed", "expired")
    with store.engine.begin() as conn:
        removed_history = conn.execute(sa.delete(history).where(history.c.evaluated_at < cutoff)).rowcount
        removed_notifications = conn.execute(
            sa.delete(notifications).where(notifications.c.created_at < cutoff, notifications.c.status.in_(finished))
        ).rowcount
        removed_silences = conn.execute(sa.delete(silences).where(silences.c.ends_at < cutoff)).rowcount
    return {"history": removed_history, "notifications": removed_notifications, "silences": removed_silences}


def _utc(value: object) -> dt.datetime:
    """A MAX() over a datetime column comes back untyped on SQLite: read it as our UTC column type would."""
    result = UTCDateTime().process_result_value(value, None)  # type: ignore[arg-type]
    assert result is not None
    return result


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, max(0, round(fraction * (len(values) - 1))))]


def _labels_from_json(alert: str, raw: str) -> AlertLabels:
    data = json.loads(raw) if raw else {}
    return AlertLabels(
        name=alert, severity=data.get("severity", ""), owners=tuple(data.get("owners", ())), tags=data.get("tags")
    )
