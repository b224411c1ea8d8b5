"""The ``slack`` channel: Block Kit messages coloured by event, via an incoming webhook or a bot token.

With a bot token, reminders and the resolved notice reply in the thread of the firing message.

Slack refuses a message over its limits (``invalid_blocks``, ``msg_too_long``), so every message is built within
them, a grouped one split into parts (:mod:`.parts`):

- :data:`MAX_BLOCKS`: 50 blocks in a message (Slack's limit).
- :data:`MAX_SECTION_CHARS`: 3,000 characters in a section's text (Slack's limit); a longer line is cut, ending
  in ``…cut``.
- :data:`MAX_FIELD_CHARS`: 2,000 characters in a field or context element (Slack's limit).
- :data:`MAX_TEXT_CHARS`: 20,000 characters of text in all, half of the 40,000 Slack truncates the top-level
  text at: a message that long is already more than anyone reads.

Sizes are counted in UTF-16 code units, as many as or more than Slack's characters. Values from queries are
escaped (:func:`.escaping.mrkdwn`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import TemplateRenderError
from ..templates import render
from .base import (
    COLORS,
    DeliveryError,
    group_row,
    headline,
    message_text,
    part_headline,
    row_summary,
    row_table,
    text_table,
)
from .escaping import escape_values, mrkdwn
from .http import request
from .parts import Part, cut_text, fit

__all__ = [
    "LIMITS",
    "MAX_BLOCKS",
    "MAX_FIELD_CHARS",
    "MAX_SECTION_CHARS",
    "MAX_TEXT_CHARS",
    "MAX_URL_CHARS",
    "SlackNotifier",
    "slack_payload",
    "slack_sizes",
]

MAX_BLOCKS = 50
"""Blocks in one message, Slack's limit."""
MAX_SECTION_CHARS = 3_000
"""Characters in one section's text, Slack's limit."""
MAX_FIELD_CHARS = 2_000
"""Characters in one section field or context element, Slack's limit."""
MAX_URL_CHARS = 3_000
"""Characters in a button's link, Slack's limit: a longer run link is left out of the message rather than have
Slack refuse it."""
MAX_TEXT_CHARS = 20_000
"""Characters of text in one message, all blocks and the top-level text together: well under the 40,000 at
which Slack cuts the top-level text."""
LIMITS = {
    "blocks": MAX_BLOCKS,
    "section_chars": MAX_SECTION_CHARS,
    "field_chars": MAX_FIELD_CHARS,
    "text_chars": MAX_TEXT_CHARS,
}
"""Every limit of a Slack message, by the names :func:`slack_sizes` measures."""


def slack_payload(
    message: Mapping[str, Any], text_template: str | None = None, variables: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The Slack message: a fallback text and a coloured attachment with fields, context and a run button.
    ``variables``: the values of the ``${VAR}``s in ``text_template``. Every value from the message is escaped
    (:func:`.escaping.mrkdwn`); the template's own text is not."""
    try:
        text = (
            render(text_template, message, variables, escape=mrkdwn) if text_template else mrkdwn(message_text(message))
        )
    except TemplateRenderError as exc:
        raise DeliveryError("slack", f"could not build or send the message: {exc}", retryable=False) from None
    safe = escape_values(message, mrkdwn)
    fields = [
        {"type": "mrkdwn", "text": f"*Status*\n{safe.get('status')}"},
        {"type": "mrkdwn", "text": f"*Severity*\n{safe.get('severity')}"},
    ]
    if message.get("actual_value") is not None:
        fields.append({"type": "mrkdwn", "text": f"*Value*\n{safe.get('actual_value')}"})
    if message.get("threshold") is not None:
        fields.append({"type": "mrkdwn", "text": f"*Threshold*\n{safe.get('threshold')}"})
    for field in fields:
        field["text"] = cut_text(field["text"], MAX_FIELD_CHARS)
    described = cut_text(str(safe["description"]), MAX_FIELD_CHARS) + "\n" if message.get("description") else ""
    top = f"*{mrkdwn(headline(message))}*\n{described}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": top + cut_text(text, MAX_SECTION_CHARS - len(top))}},
        {"type": "section", "fields": fields},
    ]
    table = row_table(message, 30)
    if table:
        shown = f"{len(table) - 1} of {row_summary(message)}"
        code = cut_text(mrkdwn(text_table(table)), MAX_SECTION_CHARS - 6)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{code}```"}})
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": shown}]})
    details = [f"{k}: {v}" for k, v in (safe.get("context") or {}).items()]
    if message.get("error"):
        details.insert(0, f"error: {safe['error']}")
    if message.get("reason"):
        details.append(str(safe["reason"]))
    if details:
        elements = [{"type": "mrkdwn", "text": cut_text(d, MAX_FIELD_CHARS)} for d in details[:10]]
        blocks.append({"type": "context", "elements": elements})
    if message.get("run_url") and len(str(message["run_url"])) <= MAX_URL_CHARS:  # Slack refuses longer links
        button = {
            "type": "button",
            "text": {"type": "plain_text", "text": "Open run in Dagster"},
            "url": message["run_url"],
        }
        blocks.append({"type": "actions", "elements": [button]})
    color = COLORS.get(str(message.get("event")), "#888888")
    return {"text": cut_text(text, MAX_TEXT_CHARS // 4), "attachments": [{"color": color, "blocks": blocks}]}


def slack_sizes(payload: Mapping[str, Any]) -> dict[str, int]:
    """How big a Slack message is, by the names of :data:`LIMITS` (characters as UTF-16 code units)."""
    blocks = [*payload.get("blocks", []), *(b for a in payload.get("attachments", []) for b in a.get("blocks", []))]
    sections = [str(b["text"]["text"]) for b in blocks if isinstance(b.get("text"), dict)]
    parts = [p for b in blocks for p in [*b.get("fields", []), *b.get("elements", [])]]
    fields = [str(p["text"]) for p in parts if isinstance(p.get("text"), str)]  # a button's text is a dict
    texts = [str(payload.get("text", "")), *sections, *fields]
    return {
        "blocks": len(blocks),
        "section_chars": max((_units(t) for t in sections), default=0),
        "field_chars": max((_units(t) for t in fields), default=0),
        "text_chars": sum(_units(t) for t in texts),
    }


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class SlackNotifier:
    """Post to an incoming webhook, or with ``bot_token`` to ``slack_channel`` through chat.postMessage."""

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        bot_token: str | None = None,
        slack_channel: str | None = None,
        username: str | None = None,
        text_template: str | None = None,
        variables: Mapping[str, str] | None = None,
        api_url: str = "https://slack.com/api",
        timeout: float = 10.0,
    ) -> None:
        if not webhook_url and not bot_token:
            raise DeliveryError("slack", "no webhook_url (or SLACK_WEBHOOK_URL) and no bot_token", retryable=False)
        self.webhook_url = webhook_url
        self.bot_token = bot_token
        self.slack_channel = slack_channel
        self.username = username
        self.text_template = text_template
        self.variables = dict(variables or {})
        """The values of the ``${VAR}``s in ``text_template`` (secrets: never shown in an error)."""
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self._lines: dict[Any, str] = {}
        """Lines of grouped messages already rendered, by idempotency key."""

    group_limits = LIMITS
    """The limits of a grouped message (see the module's docstring)."""

    def send(self, message: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Post the message (shortened if it is over Slack's limits); with a bot token return the thread id so
        follow-ups reply in the thread."""
        thread = (message.get("receipt") or {}).get("thread_ts")
        in_thread = thread if message.get("event") in ("reminder", "resolved") else None
        shown = fit(message, self._measure_one, LIMITS)
        ts = self._post(slack_payload(shown, self.text_template, self.variables), in_thread)
        return {"thread_ts": thread or ts} if self.bot_token else None

    def measure_group(self, part: Part) -> Mapping[str, int]:
        """How big ``part`` is as one Slack message (see :data:`LIMITS`)."""
        return slack_sizes(self._group_payload(part))

    def send_group(self, part: Part, key: str) -> None:
        """Post one message listing every alert of ``part``, one line each (``text`` renders each line when set),
        in sections of at most :data:`MAX_SECTION_CHARS` characters."""
        self._post(self._group_payload(part), None)

    def _measure_one(self, part: Part) -> Mapping[str, int]:
        return slack_sizes(slack_payload(part.messages[0], self.text_template, self.variables))

    def _group_payload(self, part: Part) -> dict[str, Any]:
        title = mrkdwn(part_headline(part))
        sections = [f"*{title}*"]
        for message in part.messages:  # sections of at most 3,000 characters, Slack's limit per text
            line = cut_text(self._line(message), MAX_SECTION_CHARS)
            if len(sections) == 1 or _units(sections[-1]) + 1 + _units(line) > MAX_SECTION_CHARS:
                sections.append(line)
            else:
                sections[-1] += "\n" + line
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}} for text in sections]
        return {"text": title, "blocks": blocks}

    def _line(self, message: Mapping[str, Any]) -> str:
        """One alert's line of a grouped message, rendered once per message (a part is measured several times);
        a message shortened to fit is rendered as it is now, and one the ``text:`` template fails on gets the
        default line, saying so."""
        key = message.get("idempotency_key") if "cut" not in message else None
        if key is not None and key in self._lines:
            return self._lines[key]
        try:
            template = self.text_template
            line = render(template, message, self.variables, escape=mrkdwn) if template else _line(message)
        except TemplateRenderError as exc:  # one alert's line must not hold back the others: the default line
            line = f"{_line(message)} (the text template failed: {mrkdwn(cut_text(str(exc), 300))})"
        if key is not None:
            self._lines[key] = line
        return line

    def _post(self, payload: dict[str, Any], thread: str | None) -> str | None:
        """Post ``payload`` (in ``thread`` with a bot token); return the message's ts with a bot token."""
        secrets = tuple(v for v in self.variables.values() if v)
        if self.username:
            payload["username"] = self.username
        if not self.bot_token:
            assert self.webhook_url is not None
            request("slack", "POST", self.webhook_url, json=payload, secrets=secrets, timeout=self.timeout)
            return None
        payload["channel"] = self.slack_channel
        if thread:
            payload["thread_ts"] = thread
        headers = {"Authorization": f"Bearer {self.bot_token}"}
        response = request(
            "slack",
            "POST",
            f"{self.api_url}/chat.postMessage",
            json=payload,
            headers=headers,
            secrets=(self.bot_token, *secrets),
            timeout=self.timeout,
        )
        answer = response.json()
        if not answer.get("ok"):
            error = str(answer.get("error", "unknown error"))
            raise DeliveryError(
                "slack", f"Slack API error: {error}", retryable=error in ("ratelimited", "service_unavailable")
            )
        return str(answer.get("ts")) if answer.get("ts") else None


def _line(message: Mapping[str, Any]) -> str:
    """``*[FIRING]* orders_late (critical): value 7, threshold 5 — reason <run|run>``, values escaped."""
    alert, event, severity, value, threshold, detail = (mrkdwn(cell) for cell in group_row(message))
    values = f": value {value}, threshold {threshold}" if value or threshold else ""
    link = f" <{mrkdwn(str(message['run_url']))}|run>" if message.get("run_url") else ""
    return f"*[{event.upper()}]* {alert} ({severity}){values}" + (f" — {detail}" if detail else "") + link
