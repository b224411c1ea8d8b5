"""What every channel shares: the one-method notifier interface, the delivery error, and message wording."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..errors import SentinelError
from .parts import Part

__all__ = [
    "COLORS",
    "GROUP_COLUMNS",
    "DeliveryError",
    "GroupNotifier",
    "Notifier",
    "group_headline",
    "group_row",
    "headline",
    "message_text",
    "part_headline",
    "row_summary",
    "row_table",
    "shown_name",
    "text_table",
]

COLORS = {"firing": "#E01E5A", "reminder": "#ECB22E", "resolved": "#2EB67D", "error": "#7C3085", "test": "#1D9BD1"}
"""Colour per event, used by the chat channels."""


class DeliveryError(SentinelError):
    """Raised by a notifier when a message was not delivered; ``retryable`` says whether trying again may help.

    The message never contains a secret: channels redact URLs, tokens and passwords before raising.
    """

    def __init__(self, channel: str, cause: str, *, retryable: bool, retry_after: float | None = None) -> None:
        self.channel = channel
        self.cause = cause
        self.retryable = retryable
        self.retry_after = retry_after
        """Seconds the server asked us to wait (HTTP Retry-After), if it said."""
        self.attempts = 1
        """How many tries were made before giving up (set by the retry loop)."""
        super().__init__(f"{channel}: {cause}")


class Notifier(Protocol):
    """A channel: one method that sends one message or raises :class:`DeliveryError`."""

    def send(self, message: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Deliver ``message`` once; ``message['idempotency_key']`` identifies it. May return a receipt
        (e.g. a Slack thread id) that later messages of the same episode get as ``message['receipt']``."""


class GroupNotifier(Notifier, Protocol):
    """A channel that can also send many alerts' notifications as one message (``group: true``), split into
    parts that fit its limits (:func:`.parts.split_parts` with its ``group_limits`` and ``measure_group``)."""

    group_limits: Mapping[str, int]
    """How big one grouped message may be, by name (e.g. ``{"bytes": 26_000}``)."""

    def measure_group(self, part: Part) -> Mapping[str, int]:
        """How big ``part`` is as this channel would send it, by the names of ``group_limits``."""

    def send_group(self, part: Part, key: str) -> None:
        """Deliver ``part`` (one message per alert) as one message whose idempotency key is ``key``."""


GROUP_COLUMNS = ("alert", "event", "severity", "value", "threshold", "reason")
"""The columns of a grouped message's table (email) and of each of its lines (chat)."""


def group_row(message: Mapping[str, Any]) -> tuple[str, ...]:
    """One alert of a grouped message, as :data:`GROUP_COLUMNS`."""
    error = f"error: {message['error']}" if message.get("error") else ""
    return (
        shown_name(message),
        str(message.get("event")),
        str(message.get("severity")),
        "" if message.get("actual_value") is None else str(message.get("actual_value")),
        "" if message.get("threshold") is None else str(message.get("threshold")),
        error or str(message.get("reason") or ""),
    )


def group_headline(messages: Sequence[Mapping[str, Any]]) -> str:
    """``5 alerts: 4 firing, 1 resolved``; for the instances of one alert ``error_rate: 3 firing, 1 resolved``."""
    counts: dict[str, int] = {}
    for message in messages:
        counts[str(message.get("event"))] = counts.get(str(message.get("event")), 0) + 1
    events = ", ".join(f"{n} {event}" for event, n in counts.items())
    alerts = {str(m.get("alert_name")) for m in messages}
    if len(alerts) == 1 and all(m.get("instance") for m in messages):
        return f"{alerts.pop()}: {events}"
    return f"{len(messages)} alert{'s' if len(messages) != 1 else ''}: {events}"


def shown_name(message: Mapping[str, Any]) -> str:
    """What a message is about: the instance (``error_rate{endpoint="/orders"}``) or the alert's name."""
    return str(message.get("instance") or message.get("alert_name"))


def part_headline(part: Part) -> str:
    """``143 alerts: 140 firing, 3 resolved (part 2 of 14)``; without the part when there is one part."""
    return group_headline(part.messages) + (f" ({part.label})" if part.label else "")


def row_summary(message: Mapping[str, Any]) -> str | None:
    """A failed-rows alert's count in words (``12 rows``, ``at least 10,000 rows``), or None for other alerts."""
    count = message.get("row_count")
    if count is None:
        return None
    return f"{'at least ' if message.get('row_count_more') else ''}{count:,} row{'s' if count != 1 else ''}"


def row_table(message: Mapping[str, Any], width: int = 40) -> list[tuple[str, ...]]:
    """A failed-rows alert's header and shown rows as text cells (each cut at ``width``); empty for others."""
    columns = [str(c) for c in message.get("columns") or []]
    if not columns:
        return []
    shown = (message.get("rows") or [])[: int(message.get("rows_shown") or 0)]
    cut = [tuple(_cell(row.get(c), width) for c in columns) for row in shown]
    return [tuple(_cell(c, width) for c in columns), *cut]


def text_table(rows: Sequence[Sequence[str]]) -> str:
    """``rows`` as aligned plain-text columns (the first row is the header)."""
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _cell(value: Any, width: int) -> str:
    text = "" if value is None else str(value).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def headline(message: Mapping[str, Any]) -> str:
    """``[FIRING] orders_late (critical)``."""
    return f"[{str(message.get('event', '')).upper()}] {shown_name(message)} ({message.get('severity')})"


_VALUES = (("actual_value", "value"), ("threshold", "threshold"))


def message_text(message: Mapping[str, Any]) -> str:
    """A plain-text rendering of a notification: headline, values, reason, error, link."""
    parts = [headline(message)]
    rows = row_summary(message)
    if rows is not None:
        parts.append(f"{rows}, more than {message.get('threshold')} allowed")
    elif message.get("expected"):
        parts.append(str(message["expected"]))
    else:
        values = [f"{word} {message[key]}" for key, word in _VALUES if message.get(key) is not None]
        parts += [", ".join(values)] if values else []
    if message.get("error"):
        parts.append(f"error: {message['error']}")
    if message.get("reason"):
        parts.append(str(message["reason"]))
    if message.get("run_url"):
        parts.append(str(message["run_url"]))
    return " | ".join(parts)
