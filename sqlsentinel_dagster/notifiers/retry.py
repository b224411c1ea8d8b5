"""Retry a send with exponential backoff and full jitter, a bounded number of times."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .base import DeliveryError, Notifier

__all__ = ["RetryPolicy", "send_with_retries", "tries"]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one run tries a channel before leaving the notification pending for the next evaluation."""

    attempts: int = 3
    """Tries in this run, the first included."""
    base_delay: float = 1.0
    """Seconds before the second try; doubled each time, with full jitter."""
    max_delay: float = 30.0
    """Longest single wait, also the cap on a server's Retry-After."""


def send_with_retries(
    notifier: Notifier,
    message: Mapping[str, Any],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> tuple[Mapping[str, Any] | None, int]:
    """Send ``message``; retry retryable failures. Return the receipt and the number of tries; re-raise the
    last :class:`DeliveryError` when every try failed or a failure is not retryable."""
    attempt = 1
    while True:
        try:
            try:
                return notifier.send(message), attempt
            except DeliveryError:
                raise
            except Exception as exc:  # a template that fails on this data, a bug in a channel: that channel only
                cause = f"could not build or send the message: {type(exc).__name__}: {exc}"
                raise DeliveryError(
                    type(notifier).__name__.removesuffix("Notifier").lower(), cause, retryable=False
                ) from None
        except DeliveryError as exc:
            exc.attempts = attempt
            if not exc.retryable or attempt >= policy.attempts:
                raise
            backoff = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1)) * jitter()
            sleep(min(policy.max_delay, exc.retry_after) if exc.retry_after is not None else backoff)
            attempt += 1


def tries(count: int) -> str:
    """``1 try``, ``3 tries``."""
    return f"{count} tr{'y' if count == 1 else 'ies'}"
