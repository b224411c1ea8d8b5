"""Notification channels, one module each, and delivery of the state store's pending notifications."""

from .base import DeliveryError, Notifier, message_text
from .deliver import DeliveryReport, channel_id, deliver_pending, notifiers_for
from .log import LogNotifier
from .webhook import WebhookNotifier

__all__ = [
    "DeliveryError",
    "DeliveryReport",
    "LogNotifier",
    "Notifier",
    "WebhookNotifier",
    "channel_id",
    "deliver_pending",
    "message_text",
    "notifiers_for",
]
