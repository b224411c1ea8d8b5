"""Rows of the state tables to Python values and back (JSON columns, timestamps)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, fields
from typing import Any

from .model import AlertState
from .silences import Silence, parse_matcher

__all__ = ["Intent", "dumps", "intent_from_row", "silence_from_row", "state_from_json", "text_or_none"]


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
    raw = json.loads(data)
    known = {f.name for f in fields(AlertState)}
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
