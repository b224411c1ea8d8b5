"""Deliver an alert's pending notifications: claim each with a lease, send, record the result.

A failed delivery stays pending and is retried by the alert's next evaluation, until delivered, refused for
good (a non-retryable error) or older than the expiry, after which it is marked expired.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import envsubst
from ..config.models import NotifyTarget, WebhookTarget
from ..errors import SentinelError
from ..state.store import StateStore
from .base import DeliveryError, Notifier
from .log import LogNotifier
from .webhook import WebhookNotifier

__all__ = ["DeliveryReport", "channel_id", "deliver_pending", "notifiers_for"]


@dataclass(frozen=True)
class DeliveryReport:
    """What happened to one notification in this run."""

    channel: str
    event: str
    outcome: str
    """delivered, retry (stays pending), failed (given up: permanent error) or expired."""
    error: str | None = None


def channel_id(index: int, target: NotifyTarget) -> str:
    """How a notify entry is named in the ledger: ``<position>:<channel>``, e.g. ``0:webhook``."""
    return f"{index}:{target.channel}"


def notifiers_for(
    alert_name: str, targets: Sequence[NotifyTarget], logger: logging.Logger | logging.LoggerAdapter[Any]
) -> dict[str, Notifier | SentinelError]:
    """A notifier per notify entry, with ``${VAR}`` resolved now (in the run); an error in place of one that
    cannot be built, so the other channels still deliver."""
    built: dict[str, Notifier | SentinelError] = {}
    for index, target in enumerate(targets):
        where = f"alert '{alert_name}': notify[{index}] ({target.channel})"
        try:
            built[channel_id(index, target)] = _build(target, where, logger)
        except SentinelError as exc:
            built[channel_id(index, target)] = exc
    return built


def _build(target: NotifyTarget, where: str, logger: logging.Logger | logging.LoggerAdapter[Any]) -> Notifier:
    if isinstance(target, WebhookTarget):
        headers = {k: envsubst.resolve(v, f"{where} header {k}") for k, v in target.headers.items()}
        return WebhookNotifier(envsubst.resolve(target.url, f"{where} url"), method=target.method, headers=headers)
    if target.channel == "log":
        return LogNotifier(logger)
    raise DeliveryError(
        target.channel,
        f"the {target.channel} channel is not available in this version yet; use webhook or log",
        retryable=False,
    )


def deliver_pending(
    store: StateStore,
    alert: str,
    notifiers: Mapping[str, Notifier | SentinelError],
    *,
    run_id: str | None,
    lease: dt.timedelta = dt.timedelta(minutes=5),
    expire_after: dt.timedelta = dt.timedelta(hours=24),
) -> list[DeliveryReport]:
    """Send every pending notification of ``alert`` that this run can claim; report each outcome."""
    reports = [DeliveryReport("*", "*", "expired")] * store.expire(alert, expire_after)
    for intent in store.pending(alert):
        if not store.claim(intent.id, run_id, lease):
            continue  # another run is delivering it right now
        notifier = notifiers.get(intent.channel)
        try:
            if notifier is None:
                raise DeliveryError(
                    intent.channel, "this notify entry no longer exists in the alerts file", retryable=False
                )
            if isinstance(notifier, SentinelError):
                raise notifier
            notifier.send(intent.payload)
        except SentinelError as exc:
            retryable = exc.retryable if isinstance(exc, DeliveryError) else True
            store.finish(intent.id, delivered=False, error=str(exc), permanent=not retryable)
            reports.append(DeliveryReport(intent.channel, intent.event, "retry" if retryable else "failed", str(exc)))
        else:
            store.finish(intent.id, delivered=True)
            reports.append(DeliveryReport(intent.channel, intent.event, "delivered"))
    return reports
