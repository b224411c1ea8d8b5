"""Notification channels, one module each, and delivery of the state store's pending notifications."""

from .base import DeliveryError, Notifier, message_text
from .deliver import DeliveryReport, channel_id, deliver_grouped, deliver_pending, notifiers_for
from .email import EmailNotifier, SmtpSettings
from .log import LogNotifier
from .msteams import MSTeamsNotifier
from .pagerduty import PagerDutyNotifier
from .registry import ChannelSettings, build_notifier, smtp_from_env
from .retry import RetryPolicy, send_with_retries
from .slack import SlackNotifier
from .webhook import WebhookNotifier

__all__ = [
    "ChannelSettings",
    "DeliveryError",
    "DeliveryReport",
    "EmailNotifier",
    "LogNotifier",
    "MSTeamsNotifier",
    "Notifier",
    "PagerDutyNotifier",
    "RetryPolicy",
    "SlackNotifier",
    "SmtpSettings",
    "WebhookNotifier",
    "build_notifier",
    "channel_id",
    "deliver_grouped",
    "deliver_pending",
    "message_text",
    "notifiers_for",
    "send_with_retries",
    "smtp_from_env",
]
