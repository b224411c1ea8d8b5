"""Rows of the state tables to Python values and back (JSON columns, timestamps)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .decision import Decision
from .model import STATE_FIELDS, AlertState, Outcome
from .silences import Silence, parse_matcher

__all__ = [
    "Intent",
    "dumps",
    "history_row",
    "intent_from_row",
    "intent_rows",
    "silence_from_row",
    "state_from_json",
    "text_or_none",
]


@dataclass(frozen=True)
class Intent:
    """A notification to deliver (or recorded as suppressed): one event of one alert on one channel."""

    id: int
    key: str
    alert: str
    event: str
    channel: str
    status: str
    payload: dict[str, Any]
    created_at: dt.datetime
    attempts: int = 0
    last_error: str | None = None
    run_id: str | None = None
    """The run that created it or, while ``sending``, the run sending it."""
    lease_until: dt.datetime | None = None


def dumps(value: Any) -> str:
    """JSON text for a column: datetimes as ISO strings, numbers kept, anything else as text."""
    return json.dumps(value, default=_json_default, sort_keys=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, int | float | str):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def text_or_none(value: Any) -> str | None:
    """``str(value)``, or None for None."""
    return None if value is None else str(value)


_DATETIME_FIELDS = {f.name for f in fields(AlertState) if "datetime" in str(f.type)}


def state_from_json(alert: str, data: str) -> AlertState:
    """The state stored as ``data`` (JSON) for ``alert``; keys it does not know (from a newer version) are left."""
    raw = json.loads(data)
    known = STATE_FIELDS
    values: dict[str, Any] = {
        k: (dt.datetime.fromisoformat(v) if k in _DATETIME_FIELDS and v else v) for k, v in raw.items() if k in known
    }
    return AlertState(**{**values, "alert": alert})


def silence_from_row(row: Any) -> Silence:
    return Silence(
        id=row["id"],
        matchers=tuple(parse_matcher(m) for m in json.loads(row["matchers"])),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        author=row["author"],
        reason=row["reason"],
        created_at=row["created_at"],
    )


def intent_from_row(row: Any) -> Intent:
    return Intent(
        id=row["id"],
        key=row["key"],
        alert=row["alert"],
        event=row["event"],
        channel=row["channel"],
        status=row["status"],
        payload=json.loads(row["payload"]),
        created_at=row["created_at"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        run_id=row["run_id"],
        lease_until=row["lease_until"],
    )


def intent_rows(
    name: str,
    decision: Decision,
    channels: Mapping[str, Collection[str]],
    payload: Mapping[str, Any],
    run_id: str | None,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """The ledger rows of ``decision``'s event for ``name``: one per channel taking it, keyed
    ``<name>/<evaluation>/<event>/<channel>`` (so a run repeating an evaluation adds none), pending or, when a
    silence holds the event, suppressed, or when the channel's own time intervals hold it, muted; and the firing
    of the channels whose mute ended (``decision.released``)."""
    if decision.event is None and not decision.released:
        return []
    status = "pending" if decision.notify else "suppressed"
    rows = []

    def row(event: str, channel: str, status: str, reason: str) -> dict[str, Any]:
        key = f"{name}/{decision.state.evaluation_count}/{event}/{channel}"
        message = {**payload, "event": event, "reason": reason, "idempotency_key": key}
        return dict(
            key=key,
            alert=name,
            event=event,
            channel=channel,
            status=status,
            reason=reason,
            payload=dumps(message),
            run_id=run_id,
            created_at=now,
            updated_at=now,
        )

    for channel, events in channels.items():
        if decision.event is not None and decision.event in events:
            why = decision.held.get(channel)
            if why is None:
                rows.append(row(decision.event, channel, status, decision.reason))
            else:
                rows.append(row(decision.event, channel, "muted", f"{decision.event} held for this channel: {why}"))
    for channel in decision.released:
        rows.append(row("firing", channel, "pending", "firing: this channel's mute ended while still firing"))
    return rows


def history_row(
    name: str, decision: Decision, outcome: Outcome, run_id: str | None, now: dt.datetime
) -> dict[str, Any]:
    """The history row of one evaluation of ``name``."""
    return dict(
        alert=name,
        evaluated_at=now,
        status=outcome.status,
        actual_value=text_or_none(outcome.actual_value),
        threshold=text_or_none(outcome.threshold),
        error=outcome.error,
        duration_ms=outcome.duration_ms,
        decision=decision.code,
        reason=decision.reason,
        run_id=run_id,
    )
