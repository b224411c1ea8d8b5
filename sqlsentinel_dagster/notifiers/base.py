"""What every channel shares: the message, the one-method notifier interface, and the delivery error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..errors import SentinelError

__all__ = ["DeliveryError", "Notifier", "message_text"]


class DeliveryError(SentinelError):
    """Raised by a notifier when a message was not delivered; ``retryable`` says whether trying again may help."""

    def __init__(self, channel: str, cause: str, *, retryable: bool) -> None:
        self.channel = channel
        self.cause = cause
        self.retryable = retryable
        super().__init__(f"{channel}: {cause}")


class Notifier(Protocol):
    """A channel: one method that sends one message or raises :class:`DeliveryError`."""

    def send(self, message: Mapping[str, Any]) -> None:
        """Deliver ``message`` (the notification payload) once; ``message['idempotency_key']`` identifies it."""


def message_text(message: Mapping[str, Any]) -> str:
    """A one-line plain-text rendering of a notification, e.g. for logs."""
    event = str(message.get("event", "")).upper()
    value = message.get("actual_value")
    threshold = message.get("threshold")
    values = f" (value {value}, threshold {threshold})" if value is not None or threshold is not None else ""
    error = f": {message['error']}" if message.get("error") else ""
    return f"[{event}] alert '{message.get('alert_name')}' [{message.get('severity')}]{values}{error}"
