"""The ``msteams`` channel: an Adaptive Card posted to a Teams workflow or incoming webhook.

Teams refuses a message over about 28 KB (HTTP 413), so every card is built within :data:`MAX_PAYLOAD_BYTES`
(the JSON posted, as sent), a grouped one split into parts (:mod:`.parts`), one alone shortened if it has to be.
Values from queries are escaped (:func:`.escaping.teams_markdown`): they cannot make a link.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .base import group_row, headline, part_headline, row_summary
from .escaping import escape_values, teams_markdown
from .http import request
from .parts import Part, fit

__all__ = ["LIMITS", "MAX_PAYLOAD_BYTES", "MSTeamsNotifier", "card_bytes", "teams_card"]

MAX_PAYLOAD_BYTES = 26_000
"""Bytes of JSON in one post: under Teams' limit of about 28 KB, with room for what Teams adds around it."""
LIMITS = {"bytes": MAX_PAYLOAD_BYTES}
"""Every limit of a Teams message, by the names :func:`card_bytes` measures."""

_STYLE = {"firing": "attention", "reminder": "warning", "resolved": "good", "error": "attention", "test": "accent"}


def teams_card(message: Mapping[str, Any]) -> dict[str, Any]:
    """A message with one Adaptive Card: headline coloured by event, facts, and a button to the run. Every value
    from the message is escaped (:func:`.escaping.teams_markdown`)."""
    safe = escape_values(message, teams_markdown)
    facts = [
        {"title": "Status", "value": str(safe.get("status"))},
        {"title": "Severity", "value": str(safe.get("severity"))},
        {"title": "Value", "value": str(safe.get("actual_value"))},
        {"title": "Threshold", "value": str(safe.get("threshold"))},
    ]
    facts += [{"title": str(k), "value": str(v)} for k, v in (safe.get("context") or {}).items()]
    if row_summary(message):
        facts.append({"title": "Rows", "value": str(row_summary(message))})
    if message.get("error"):
        facts.append({"title": "Error", "value": str(safe["error"])})
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": headline(safe),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
            "color": _STYLE.get(str(message.get("event")), "default"),
        },
        {"type": "TextBlock", "text": str(safe.get("description") or safe.get("reason") or ""), "wrap": True},
        {"type": "FactSet", "facts": facts},
    ]
    return _card(body, message.get("run_url"))


def card_bytes(payload: Mapping[str, Any]) -> dict[str, int]:
    """How big a Teams message is, by the names of :data:`LIMITS`: its JSON as posted."""
    return {"bytes": len(json.dumps(payload).encode("utf-8"))}


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


def _group_card(part: Part) -> dict[str, Any]:
    """One card listing every alert of ``part``: a headline and one fact per alert, values escaped."""
    facts = []
    for message in part.messages:
        safe = escape_values(message, teams_markdown)
        facts.append({"title": headline(safe), "value": " | ".join(c for c in group_row(safe)[3:] if c) or "-"})
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": part_headline(part), "weight": "Bolder", "size": "Medium", "wrap": True},
        {"type": "FactSet", "facts": facts},
    ]
    return _card(body)


class MSTeamsNotifier:
    """Post the card to ``webhook_url``."""

    group_limits = LIMITS
    """The limits of a grouped message (see the module's docstring)."""

    def __init__(self, webhook_url: str, *, timeout: float = 10.0) -> None:
        self.webhook_url = webhook_url
        self.timeout = timeout

    def send(self, message: Mapping[str, Any]) -> None:
        """Post (the message shortened if its card is over :data:`MAX_PAYLOAD_BYTES`); 429 and 5xx are retryable."""
        shown = fit(message, lambda part: card_bytes(teams_card(part.messages[0])), LIMITS)
        request("msteams", "POST", self.webhook_url, json=teams_card(shown), timeout=self.timeout)

    def measure_group(self, part: Part) -> Mapping[str, int]:
        """How big ``part`` is as one card (see :data:`LIMITS`)."""
        return card_bytes(_group_card(part))

    def send_group(self, part: Part, key: str) -> None:
        """Post one card listing every alert of ``part`` (``group: true``): a headline and one fact per alert."""
        request("msteams", "POST", self.webhook_url, json=_group_card(part), timeout=self.timeout)
