"""One HTTP request with a timeout, classified for retries, with secrets kept out of every error."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import requests

from ..redact import redact_text
from .base import DeliveryError

__all__ = ["request"]

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def request(
    channel: str,
    method: str,
    url: str,
    *,
    secrets: tuple[str, ...] = (),
    timeout: float = 10.0,
    **kwargs: Any,
) -> requests.Response:
    """Send the request; raise :class:`DeliveryError` for network errors and non-2xx answers.

    Network errors, timeouts, 408/425/429 and 5xx are retryable (with the server's Retry-After); other 4xx
    are not. Neither the URL nor any of ``secrets`` appears in the error.
    """
    try:
        response = requests.request(method, url, timeout=timeout, **kwargs)
    except requests.RequestException as exc:
        cause = redact_text(f"{type(exc).__name__}: {exc}", (url, *secrets))
        raise DeliveryError(channel, cause, retryable=True) from None
    if response.status_code < 300:
        return response
    detail = redact_text(response.text[:200].strip(), (url, *secrets))
    raise DeliveryError(
        channel,
        f"HTTP {response.status_code} {response.reason}" + (f": {detail}" if detail else ""),
        retryable=response.status_code in RETRYABLE_STATUS,
        retry_after=_retry_after(response.headers),
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else None
