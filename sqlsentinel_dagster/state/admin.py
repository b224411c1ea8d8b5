"""What people do to alert state by hand: silence, unsilence, look at status, prune old history.

Reading the recorded history (evaluations and their statistics) is :mod:`.history`.

Every silence is created by :func:`add_silence`, which enforces the limits on it: its length (at most
:func:`max_silence`, 30 days unless ``SQLSENTINEL_MAX_SILENCE`` says otherwise), its matchers (see
:func:`.silences.matcher_problems`), its author and its reason.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..durations import format_duration, parse_duration
from .instances import prune_gone
from .labels import labels_from_json
from .rows import silence_from_row, state_from_json
from .schema import UTCDateTime, alert_state, history, instances, notifications, silences
from .silences import Matcher, Silence, matcher_problems
from .store import StateStore

__all__ = [
    "DEFAULT_MAX_SILENCE",
    "MAX_AUTHOR_LENGTH",
    "MAX_REASON_LENGTH",
    "MAX_SILENCE_ENV",
    "NO_REASON",
    "AlertStatus",
    "add_silence",
    "alert_statuses",
    "end_silences",
    "list_silences",
    "max_silence",
    "parse_silence_duration",
    "prune_history",
    "text_problem",
]

MAX_SILENCE_ENV = "SQLSENTINEL_MAX_SILENCE"
"""The environment variable that sets the longest silence allowed, as a duration such as ``90d``."""
DEFAULT_MAX_SILENCE = dt.timedelta(days=30)
"""The longest silence allowed when ``SQLSENTINEL_MAX_SILENCE`` is not set: a forgotten silence hides an alert
for a month at most (as long as the default history retention); anything longer is a deliberate setting."""
MAX_REASON_LENGTH = 1_000
"""The longest reason a silence may have, in characters (it is shown on every suppressed run)."""
MAX_AUTHOR_LENGTH = 255
"""The longest author a silence may have, in characters (the size of its column)."""


NO_REASON = "(none given)"
"""The reason recorded for a silence made without ``--reason`` (SQL Sentinel's ``silence`` takes none)."""

_BARE_NUMBER = re.compile(r"^\s*\d+(\.\d+)?\s*$")


def parse_silence_duration(text: str) -> dt.timedelta:
    """How long a silence lasts: a bare number is hours (``2`` is 2h, SQL Sentinel's ``--duration HOURS``), else
    a duration with its unit (``30m``, ``2h``, ``1d``). Only silences read a bare number so: in alerts.yaml
    (``repeat_interval``, ``timeout``...) it stays seconds. Raises ValueError saying what is allowed."""
    written = f"{text.strip()}h" if _BARE_NUMBER.match(text) else text
    return dt.timedelta(seconds=parse_duration(written))


def max_silence(environ: Mapping[str, str] | None = None) -> dt.timedelta:
    """The longest silence allowed: ``SQLSENTINEL_MAX_SILENCE`` (a duration such as ``90d``, at most 3650d) from
    ``environ`` (default: the process environment), else :data:`DEFAULT_MAX_SILENCE`."""
    raw = (os.environ if environ is None else environ).get(MAX_SILENCE_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_SILENCE
    try:
        return dt.timedelta(seconds=parse_duration(raw))
    except ValueError as exc:
        raise ValueError(f"{MAX_SILENCE_ENV} must be a duration such as 90d: {exc}") from None


def add_silence(
    store: StateStore,
    matchers: Sequence[Matcher],
    *,
    ends_at: dt.datetime,
    author: str,
    reason: str,
    starts_at: dt.datetime | None = None,
    longest: dt.timedelta | None = None,
) -> Silence:
    """Store a silence; raise ValueError naming every problem unless it has 1 to ``MAX_MATCHERS`` matchers that
    can be evaluated, an author and a reason within their lengths, and an end after its start but no further than
    ``longest`` (default: :func:`max_silence`). The author and reason are stored as given, control characters
    included: whoever prints them escapes them."""
    now = store.clock()
    start = starts_at or now
    limit = max_silence() if longest is None else longest
    problems = [
        "at least one matcher is required" if not matchers else "",
        *matcher_problems(matchers),
        text_problem("author", author, MAX_AUTHOR_LENGTH),
        text_problem("reason", reason, MAX_REASON_LENGTH),
        f"the end ({ends_at.isoformat()}) must be after the start ({start.isoformat()})" if ends_at <= start else "",
        (
            f"{format_duration(ends_at - start)} is longer than the longest silence allowed, {format_duration(limit)} "
            f"(set {MAX_SILENCE_ENV}, e.g. {MAX_SILENCE_ENV}=90d, to change it)"
        )
        if ends_at - start > limit
        else "",
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


def text_problem(what: str, text: str, longest: int) -> str:
    """Why ``text`` cannot be a silence's (or an acknowledgement's) ``what`` (empty if it can): blank, too long,
    or not storable."""
    text = text.strip()
    if not text:
        return f"{'an' if what[0] in 'aeiou' else 'a'} {what} is required"
    if len(text) > longest:
        return f"the {what} is {len(text)} characters long; at most {longest} are allowed"
    if "\x00" in text:
        return f"the {what} contains a NUL character (\\x00), which databases cannot store"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"the {what} is not valid UTF-8 text (it came from bytes that are not UTF-8)"
    return ""


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
    undelivered_notifications: int = 0
    """Notifications still to deliver: pending (retried at the next evaluation) or being sent by a run."""
    instance_of: str | None = None
    """The alert this is an instance of (``instances:``), or None for an alert."""
    acknowledged: str | None = None
    """``ana: fixing the load`` while the firing episode is acknowledged."""
    owed_channels: tuple[str, ...] = ()
    """Channels whose time intervals held this episode's firing: told once their mute ends, if it still fires."""
    current: bool = True
    """False for an instance no longer in its alert's results (resolved as missing; its history stays)."""


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
        listed = {}
        if sa.inspect(conn).has_table(instances.name):  # not in a database last written before schema 4
            listed = {name: (alert, bool(current)) for name, alert, current in conn.execute(_instance_list())}
    delivered: dict[str, dict[str, dt.datetime]] = {}
    failed: dict[str, int] = {}
    undelivered: dict[str, int] = {}
    for alert, channel, status, count, last in ledger:
        if status == "delivered" and last is not None:
            delivered.setdefault(alert, {})[channel] = _utc(last)
        elif status in ("failed", "expired"):
            failed[alert] = failed.get(alert, 0) + int(count)
        elif status in ("pending", "sending"):
            undelivered[alert] = undelivered.get(alert, 0) + int(count)
    statuses = []
    for row in rows:
        if row["data"] == "{}":
            continue
        state = state_from_json(row["alert"], row["data"])
        labels = labels_from_json(row["alert"], row["labels"])
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
                undelivered_notifications=undelivered.get(state.alert, 0),
                instance_of=listed[state.alert][0] if state.alert in listed else None,
                acknowledged=f"{state.acknowledged_by}: {state.acknowledged_reason}" if state.acknowledged_by else None,
                owed_channels=tuple(state.owed_channels),
                current=listed.get(state.alert, (None, True))[1],
            )
        )
    return statuses


def _instance_list() -> sa.Select[tuple[str, str, bool]]:
    """Each instance of an instance alert, with its alert and whether it is current."""
    return sa.select(instances.c.instance, instances.c.alert, instances.c.current)


def prune_history(store: StateStore, older_than: dt.timedelta) -> dict[str, int]:
    """Delete evaluations, finished notifications, expired silences and instances no longer current (see
    :mod:`.instances`) older than ``older_than``; raise ValueError if that reaches before year 1."""
    now = store.clock()
    try:
        cutoff = now - older_than
    except OverflowError:
        raise ValueError(f"{older_than} before {now.isoformat(timespec='seconds')} is before year 1") from None
    finished = ("delivered", "suppressed", "muted", "failed", "expired")
    with store.engine.begin() as conn:
        removed_history = conn.execute(sa.delete(history).where(history.c.evaluated_at < cutoff)).rowcount
        removed_notifications = conn.execute(
            sa.delete(notifications).where(notifications.c.created_at < cutoff, notifications.c.status.in_(finished))
        ).rowcount
        removed_silences = conn.execute(sa.delete(silences).where(silences.c.ends_at < cutoff)).rowcount
        removed_instances = prune_gone(conn, cutoff)
    return {
        "history": removed_history,
        "notifications": removed_notifications,
        "silences": removed_silences,
        "instances": removed_instances,
    }


def _utc(value: object) -> dt.datetime:
    """A MAX() over a datetime column comes back untyped on SQLite: read it as our UTC column type would."""
    result = UTCDateTime().process_result_value(value, None)  # type: ignore[arg-type]
    assert result is not None
    return result
