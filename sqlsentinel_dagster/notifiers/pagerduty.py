"""The ``pagerduty`` channel: Events API v2, one incident per alert (``dedup_key``), triggered and resolved."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import DeliveryError, headline, row_summary, shown_name
from .http import request

__all__ = ["PagerDutyNotifier", "pagerduty_event"]

_DETAILS = ("status", "actual_value", "threshold", "context", "labels", "error", "reason", "owners", "row_count")
"""What the incident's custom details show of a message (``labels`` only for an instance)."""
_SEVERITY = {"info": "info", "warning": "warning", "error": "error", "critical": "critical"}


def pagerduty_event(message: Mapping[str, Any], routing_key: str) -> dict[str, Any]:
    """The Events API v2 body: trigger for firing/reminder/error/test, resolve for resolved, acknowledge for
    acknowledged."""
    event = str(message.get("event"))
    suffix = "/error" if event == "error" else "/test" if event == "test" else ""
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": {"resolved": "resolve", "acknowledged": "acknowledge"}.get(event, "trigger"),
        "dedup_key": f"sqlsentinel/{shown_name(message)}{suffix}",
    }
    if event not in ("resolved", "acknowledged"):
        body["payload"] = {
            "summary": _summary(message),
            "source": "sqlsentinel-dagster",
            "severity": _SEVERITY.get(str(message.get("severity")), "warning"),
            "timestamp": message.get("timestamp"),
            "custom_details": {
                k: message.get(k)
                for k in (
                    "status",
                    "actual_value",
                    "threshold",
                    "context",
                    "labels",
                    "error",
                    "reason",
                    "owners",
                    "row_count",
                )
                if message.get(k) is not None
            },
        }
        if message.get("run_url"):
            body["links"] = [{"href": message["run_url"], "text": "Dagster run"}]
    return body


def _summary(message: Mapping[str, Any]) -> str:
    """``[FIRING] orders_late (critical): <description or reason>``, and a failed-rows alert's count."""
    rows = row_summary(message)
    detail = message.get("description") or message.get("reason") or ""
    return f"{headline(message)}: {detail}{f' ({rows})' if rows else ''}"[:1024]


class PagerDutyNotifier:
    """Send events to PagerDuty with ``routing_key`` (``PAGERDUTY_ROUTING_KEY`` by default)."""

    def __init__(
        self,
        routing_key: str | None,
        *,
        events_url: str = "https://events.pagerduty.com/v2/enqueue",
        timeout: float = 10.0,
    ) -> None:
        if not routing_key:
            raise DeliveryError("pagerduty", "no routing_key (or PAGERDUTY_ROUTING_KEY)", retryable=False)
        self.routing_key = routing_key
        self.events_url = events_url
        self.timeout = timeout

    def send(self, message: Mapping[str, Any]) -> None:
        """Enqueue the event; 429 and 5xx are retryable, 400 (bad event or key) is not."""
        request(
            "pagerduty",
            "POST",
            self.events_url,
            json=pagerduty_event(message, self.routing_key),
            secrets=(self.routing_key,),
            timeout=self.timeout,
        )
