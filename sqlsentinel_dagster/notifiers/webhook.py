"""The ``webhook`` channel: an HTTP request with a JSON body and an ``Idempotency-Key`` header."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from ..redact import redact_text
from .base import DeliveryError

__all__ = ["WebhookNotifier"]


class WebhookNotifier:
    """Send each notification as JSON to ``url``; 5xx, 429 and network errors are retryable, other 4xx not."""

    def __init__(
        self,
        url: str,
        *,
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.url = url
        self.method = method
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.secrets = (url, *secrets, *self.headers.values())

    def send(self, message: Mapping[str, Any]) -> None:
        """Send ``message``; raise :class:`DeliveryError` (never showing the URL or header values) on failure."""
        headers = {"Content-Type": "application/json", **self.headers}
        headers["Idempotency-Key"] = str(message.get("idempotency_key", ""))
        try:
            response = requests.request(
                self.method, self.url, json=dict(message), headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise DeliveryError("webhook", self._redact(f"{type(exc).__name__}: {exc}"), retryable=True) from None
        if response.status_code < 300:
            return
        retryable = response.status_code >= 500 or response.status_code in (408, 429)
        raise DeliveryError("webhook", f"HTTP {response.status_code} {response.reason}", retryable=retryable)

    def _redact(self, text: str) -> str:
        return redact_text(text, self.secrets)
