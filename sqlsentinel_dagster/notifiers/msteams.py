"""The ``msteams`` channel: an Adaptive Card posted to a Teams workflow or incoming webhook."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .base import group_headline, group_row, headline, row_summary
from .http import request

__all__ = ["MSTeamsNotifier", "teams_card"]

_STYLE = {"firing": "attention", "reminder": "warning", "resolved": "good", "error": "attention", "test": "accent"}


def teams_card(message: Mapping[str, Any]) -> dict[str, Any]:
    """A message with one Adaptive Card: headline coloured by event, facts, and a button to the run."""
    facts = [
        {"title": "Status", "value": str(message.get("status"))},
        {"title": "Severity", "value": str(message.get("severity"))},
        {"title": "Value", "value": str(message.get("actual_value"))},
        {"title": "Threshold", "value": str(message.get("threshold"))},
    ]
    facts += [{"title": str(k), "value": str(v)} for k, v in (message.get("context") or {}).items()]
    if row_summary(message):
        facts.append({"title": "Rows", "value": str(row_summary(message))})
    if message.get("error"):
        facts.append({"title": "Error", "value": str(message["error"])})
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": headline(message),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
            "color": _STYLE.get(str(message.get("event")), "default"),
        },
        {"type": "TextBlock", "text": str(message.get("description") or message.get("reason") or ""), "wrap": True},
        {"type": "FactSet", "facts": facts},
    ]
    return _card(body, message.get("run_url"))


def _card(body: list[dict[str, Any]], run_url: Any = None) -> dict[str, Any]:
    """A Teams message with one Adaptive Card holding ``body``, and a button to the run when there is one."""
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if run_url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open run in Dagster", "url": run_url}]
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    }


class MSTeamsNotifier:
    """Post the card to ``webhook_url``."""

    def __init__(self, webhook_url: str, *, timeout: float = 10.0) -> None:
        self.webhook_url = webhook_url
        self.timeout = timeout

    def send(self, message: Mapping[str, Any]) -> None:
        """Post; 429 and 5xx are retryable."""
        request("msteams", "POST", self.webhook_url, json=teams_card(message), timeout=self.timeout)

    def send_group(self, messages: Sequence[Mapping[str, Any]], key: str) -> None:
        """Post one card listing every alert (``group: true``): a headline and one fact per alert."""
        facts = [
            {"title": headline(m), "value": " | ".join(cell for cell in group_row(m)[3:] if cell) or "-"}
            for m in messages
        ]
        body: list[dict[str, Any]] = [
            {"type": "TextBlock", "text": group_headline(messages), "weight": "Bolder", "size": "Medium", "wrap": True},
            {"type": "FactSet", "facts": facts},
        ]
        request("msteams", "POST", self.webhook_url, json=_card(body), timeout=self.timeout)
