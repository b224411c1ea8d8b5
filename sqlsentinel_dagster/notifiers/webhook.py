"""The ``webhook`` channel: an HTTP request with the message as JSON (or a template) and an Idempotency-Key.

A grouped post (a JSON array, ``group: true``) holds at most :data:`MAX_BODY_BYTES`: more alerts are split into
several posts (:mod:`.parts`), each with its own Idempotency-Key, and one alert over it on its own is shortened
(its ``cut`` key lists what was cut). A ``body:`` template that is JSON gets values from queries escaped for a
JSON string (:func:`.escaping.json_string`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import TemplateRenderError
from ..templates import SAMPLE, render
from .base import DeliveryError
from .escaping import json_string
from .http import request
from .parts import Part

__all__ = ["LIMITS", "MAX_BODY_BYTES", "WebhookNotifier"]

MAX_BODY_BYTES = 1_000_000
"""Bytes of one grouped post: what common receivers accept by default (nginx's ``client_max_body_size`` is 1 MB).
A post of one alert is bounded by the rows it carries (``MAX_ROWS_BYTES``), as before."""
LIMITS = {"bytes": MAX_BODY_BYTES}
"""Every limit of a grouped post, by the names :meth:`WebhookNotifier.measure_group` measures."""


class WebhookNotifier:
    """Send each notification to ``url``; 5xx, 429 and network errors are retryable, other 4xx are not."""

    group_limits = LIMITS
    """The limits of a grouped post (see the module's docstring)."""

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
        self._is_json_template: bool | None = None

    def send(self, message: Mapping[str, Any]) -> None:
        """Send ``message``; raise DeliveryError (never showing the URL, headers or credentials) on failure."""
        headers = {"Idempotency-Key": str(message.get("idempotency_key", "")), **self.headers}
        if self.body_template is None:
            headers.setdefault("Content-Type", "application/json")
            data = json.dumps({k: v for k, v in message.items() if k != "receipt"}, default=str)
        else:
            try:
                escape = json_string if self._json_template() else None
                data = render(self.body_template, message, self.variables, escape=escape)
            except TemplateRenderError as exc:
                raise DeliveryError("webhook", f"could not build or send the message: {exc}", retryable=False) from None
            headers.setdefault("Content-Type", "application/json" if _is_json(data) else "text/plain; charset=utf-8")
        self._post(data, headers)

    def measure_group(self, part: Part) -> Mapping[str, int]:
        """How big ``part`` is as one post (see :data:`LIMITS`)."""
        return {"bytes": len(_group_json(part).encode("utf-8"))}

    def send_group(self, part: Part, key: str) -> None:
        """Send the messages of ``part`` as one JSON array (``group: true``), with ``key`` as the Idempotency-Key."""
        self._post(_group_json(part), {"Idempotency-Key": key, "Content-Type": "application/json", **self.headers})

    def _json_template(self) -> bool:
        """Whether ``body_template`` makes JSON: it does with the sample values, escaped as JSON strings as a real
        message would be (data never decides, so a value cannot turn the escaping off; a sample value with quotes,
        such as an instance's name, does not either). Missing context columns render as 0, valid in and out of
        quotes."""
        if self._is_json_template is None:
            assert self.body_template is not None
            sample = {**SAMPLE, "context": _Zeros(SAMPLE["context"])}
            try:
                rendered = render(self.body_template, sample, self.variables, escape=json_string)
                self._is_json_template = _is_json(rendered)
            except TemplateRenderError:
                self._is_json_template = False
        return self._is_json_template

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


def _group_json(part: Part) -> str:
    return json.dumps([{k: v for k, v in m.items() if k != "receipt"} for m in part.messages], default=str)


class _Zeros(dict[str, Any]):
    """Sample context in which every column exists, as 0."""

    def __missing__(self, key: str) -> int:
        return 0
