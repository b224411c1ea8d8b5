"""The ``webhook`` channel: an HTTP request with the message as JSON (or a template) and an Idempotency-Key."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import TemplateRenderError
from ..templates import render
from .base import DeliveryError
from .http import request

__all__ = ["WebhookNotifier"]


class WebhookNotifier:
    """Send each notification to ``url``; 5xx, 429 and network errors are retryable, other 4xx are not."""

    def __init__(
        self,
        url: str,
        *,
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        verify_tls: bool = True,
        basic_auth: tuple[str, str] | None = None,
        bearer_token: str | None = None,
        body_template: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self.method = method
        self.headers = dict(headers or {})
        if bearer_token:
            self.headers["Authorization"] = f"Bearer {bearer_token}"
        self.timeout = timeout
        self.verify_tls = verify_tls
        self.basic_auth = basic_auth
        self.body_template = body_template
        self.variables = dict(variables or {})
        """The values of the ``${VAR}``s in ``body_template`` (secrets: never shown in an error)."""
        self.secrets = tuple(
            v for v in (*self.headers.values(), bearer_token, *(basic_auth or ()), *self.variables.values()) if v
        )

    def send(self, message: Mapping[str, Any]) -> None:
        """Send ``message``; raise DeliveryError (never showing the URL, headers or credentials) on failure."""
        headers = {"Idempotency-Key": str(message.get("idempotency_key", "")), **self.headers}
        if self.body_template is None:
            headers.setdefault("Content-Type", "application/json")
            data = json.dumps({k: v for k, v in message.items() if k != "receipt"}, default=str)
        else:
            try:
                data = render(self.body_template, message, self.variables)
            except TemplateRenderError as exc:
                raise DeliveryError("webhook", f"could not build or send the message: {exc}", retryable=False) from None
            headers.setdefault("Content-Type", "application/json" if _is_json(data) else "text/plain; charset=utf-8")
        self._post(data, headers)

    def send_group(self, messages: Sequence[Mapping[str, Any]], key: str) -> None:
        """Send ``messages`` as one JSON array (``group: true``), with ``key`` as the Idempotency-Key."""
        data = json.dumps([{k: v for k, v in m.items() if k != "receipt"} for m in messages], default=str)
        self._post(data, {"Idempotency-Key": key, "Content-Type": "application/json", **self.headers})

    def _post(self, data: str, headers: Mapping[str, str]) -> None:
        request(
            "webhook",
            self.method,
            self.url,
            secrets=self.secrets,
            timeout=self.timeout,
            data=data.encode("utf-8"),
            headers=dict(headers),
            verify=self.verify_tls,
            auth=self.basic_auth,
        )


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
