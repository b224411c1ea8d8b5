"""Send a test message through an alert's channels, so a setup can be checked before a real incident."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..config import AlertConfig
from ..config.targets import NotifyTarget
from ..errors import SentinelError
from .deliver import notifiers_for
from .registry import ChannelSettings
from .retry import send_with_retries

__all__ = ["ProbeResult", "broadcast", "send_test_message"]


@dataclass(frozen=True)
class ProbeResult:
    """How the test message fared on one channel."""

    channel: str
    delivered: bool
    attempts: int
    error: str | None = None


def send_test_message(
    alert: AlertConfig,
    targets: Sequence[NotifyTarget],
    settings: ChannelSettings,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    run_id: str | None = None,
) -> list[ProbeResult]:
    """Send one ``test`` event through each target of ``alert``; nothing is recorded in the alert's state."""
    now = dt.datetime.now(dt.UTC)
    message: dict[str, Any] = {
        "alert_name": alert.name,
        "status": "OK",
        "event": "test",
        "reason": "test message: checking this channel works",
        "actual_value": None,
        "threshold": None,
        "context": {},
        "error": None,
        "description": alert.description,
        "severity": alert.severity,
        "owners": list(alert.owners),
        "tags": dict(alert.tags),
        "timestamp": now.isoformat(timespec="seconds"),
        "run_id": run_id,
        "run_url": settings.run_url(run_id) if run_id else None,
    }
    return broadcast(alert.name, targets, message, f"{alert.name}/test/{now.timestamp():.0f}", settings, logger)


def broadcast(
    name: str,
    targets: Sequence[NotifyTarget],
    message: dict[str, Any],
    key: str,
    settings: ChannelSettings,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    prefix: str = "",
) -> list[ProbeResult]:
    """Send ``message`` straight to every target (with retries, outside the notification ledger) and report
    each outcome; the idempotency key is ``<key>/<channel>``. Used for test messages and fallback notices."""
    results = []
    for channel, notifier in notifiers_for(name, targets, settings, logger, prefix).items():
        try:
            if isinstance(notifier, SentinelError):
                raise notifier
            _, attempts = send_with_retries(
                notifier, {**message, "idempotency_key": f"{key}/{channel}"}, settings.retry
            )
            results.append(ProbeResult(channel, True, attempts))
        except SentinelError as exc:
            results.append(ProbeResult(channel, False, getattr(exc, "attempts", 1), str(exc)))
    return results
