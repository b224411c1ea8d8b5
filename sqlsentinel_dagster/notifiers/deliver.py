"""Deliver an alert's pending notifications: claim each with a lease, send with retries, record the result.

A notification that still fails after this run's retries stays pending and is retried by the alert's next
evaluation, until delivered, refused for good (a non-retryable error) or older than the expiry (expired).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config.targets import NotifyTarget
from ..errors import SentinelError
from ..state.store import Intent, StateStore
from .base import DeliveryError, Notifier
from .registry import ChannelSettings, build_notifier
from .retry import RetryPolicy, send_with_retries

__all__ = ["DeliveryReport", "channel_id", "deliver_pending", "notifiers_for"]

DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class DeliveryReport:
    """What happened to one notification in this run."""

    channel: str
    event: str
    outcome: str
    """delivered, retry (stays pending), failed (refused for good) or expired."""
    attempts: int = 0
    error: str | None = None

    @property
    def given_up(self) -> bool:
        """The notification will never be delivered."""
        return self.outcome in ("failed", "expired")


def channel_id(index: int, target: NotifyTarget, prefix: str = "") -> str:
    """How a notify entry is named in the ledger: ``<position>:<channel>`` (``fallback:0:email`` for fallback)."""
    return f"{prefix}{index}:{target.channel}"


def notifiers_for(
    name: str,
    targets: Sequence[NotifyTarget],
    settings: ChannelSettings,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    prefix: str = "",
) -> dict[str, Notifier | SentinelError]:
    """A notifier per target, secrets resolved now (in the run); an error in place of one that cannot be
    built (e.g. an unset variable), so the other channels still deliver."""
    built: dict[str, Notifier | SentinelError] = {}
    for index, target in enumerate(targets):
        where = f"alert '{name}': {prefix or 'notify'}[{index}] ({target.channel})"
        try:
            built[channel_id(index, target, prefix)] = build_notifier(target, settings, logger, where)
        except SentinelError as exc:
            built[channel_id(index, target, prefix)] = exc
    return built


def deliver_pending(
    store: StateStore,
    alert: str,
    notifiers: Mapping[str, Notifier | SentinelError],
    *,
    run_id: str | None,
    retry: RetryPolicy = DEFAULT_RETRY,
    lease: dt.timedelta = dt.timedelta(minutes=5),
    expire_after: dt.timedelta = dt.timedelta(hours=24),
) -> list[DeliveryReport]:
    """Send every pending notification of ``alert`` that this run can claim; report each outcome."""
    intents = store.pending(alert)  # one query in the common case: nothing pending, nothing stale
    reports: list[DeliveryReport] = []
    cutoff = store.clock() - expire_after
    if any(i.status == "pending" and i.created_at < cutoff for i in intents):
        reports = [
            DeliveryReport(i.channel, i.event, "expired", i.attempts, i.last_error)
            for i in store.expire(alert, expire_after)
        ]
        intents = store.pending(alert)
    for intent in intents:
        if store.claim(intent.id, run_id, lease):  # False: another run is delivering it right now
            reports.append(_deliver(store, intent, notifiers.get(intent.channel), retry))
    return reports


def _deliver(
    store: StateStore, intent: Intent, notifier: Notifier | SentinelError | None, retry: RetryPolicy
) -> DeliveryReport:
    message = dict(intent.payload)
    if intent.event in ("reminder", "resolved"):
        message["receipt"] = store.last_receipt(intent.alert, intent.channel)
    try:
        if notifier is None:
            raise DeliveryError(
                intent.channel, "this notify entry no longer exists in the alerts file", retryable=False
            )
        if isinstance(notifier, SentinelError):
            raise notifier
        receipt, attempts = send_with_retries(notifier, message, retry)
    except SentinelError as exc:
        retryable = exc.retryable if isinstance(exc, DeliveryError) else True  # e.g. an unset ${VAR}: may be fixed
        attempts = exc.attempts if isinstance(exc, DeliveryError) else 1
        store.finish(intent.id, delivered=False, error=str(exc), permanent=not retryable)
        return DeliveryReport(intent.channel, intent.event, "retry" if retryable else "failed", attempts, str(exc))
    store.finish(intent.id, delivered=True, receipt=receipt)
    return DeliveryReport(intent.channel, intent.event, "delivered", attempts)
