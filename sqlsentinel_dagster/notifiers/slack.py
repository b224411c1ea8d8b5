"""The ``slack`` channel: Block Kit messages coloured by event, via an incoming webhook or a bot token.

With a bot token, reminders and the resolved notice reply in the thread of the firing message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import TemplateRenderError
from ..templates import render
from .base import (
    COLORS,
    DeliveryError,
    group_headline,
    group_row,
    headline,
    message_text,
    row_summary,
    row_table,
    text_table,
)
from .http import request

__all__ = ["SlackNotifier", "slack_payload"]


def slack_payload(
    message: Mapping[str, Any], text_template: str | None = None, variables: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The Slack message: a fallback text and a coloured attachment with fields, context and a run button.
    ``variables``: the values of the ``${VAR}``s in ``text_template``."""
    try:
        text = render(text_template, message, variables) if text_template else message_text(message)
    except TemplateRenderError as exc:
        raise DeliveryError("slack", f"could not build or send the message: {exc}", retryable=False) from None
    fields = [
        {"type": "mrkdwn", "text": f"*Status*\n{message.get('status')}"},
        {"type": "mrkdwn", "text": f"*Severity*\n{message.get('severity')}"},
    ]
    if message.get("actual_value") is not None:
        fields.append({"type": "mrkdwn", "text": f"*Value*\n{message.get('actual_value')}"})
    if message.get("threshold") is not None:
        fields.append({"type": "mrkdwn", "text": f"*Threshold*\n{message.get('threshold')}"})
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline(message)}*\n{text}"}},
        {"type": "section", "fields": fields},
    ]
    table = row_table(message, 30)
    if table:
        shown = f"{len(table) - 1} of {row_summary(message)}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{text_table(table)[:2800]}```"}})
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": shown}]})
    details = [f"{k}: {v}" for k, v in (message.get("context") or {}).items()]
    if message.get("error"):
        details.insert(0, f"error: {message['error']}")
    if message.get("reason"):
        details.append(str(message["reason"]))
    if details:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": d[:2000]} for d in details[:10]]})
    if message.get("run_url"):
        button = {
            "type": "button",
            "text": {"type": "plain_text", "text": "Open run in Dagster"},
            "url": message["run_url"],
        }
        blocks.append({"type": "actions", "elements": [button]})
    color = COLORS.get(str(message.get("event")), "#888888")
    return {"text": text, "attachments": [{"color": color, "blocks": blocks}]}


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

    def send(self, message: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Post the message; with a bot token return the thread id so follow-ups reply in the thread."""
        thread = (message.get("receipt") or {}).get("thread_ts")
        in_thread = thread if message.get("event") in ("reminder", "resolved") else None
        ts = self._post(slack_payload(message, self.text_template, self.variables), in_thread)
        return {"thread_ts": thread or ts} if self.bot_token else None

    def send_group(self, messages: Sequence[Mapping[str, Any]], key: str) -> None:
        """Post one message listing every alert, one line each (``text`` renders each line when set)."""
        try:
            lines = [
                render(self.text_template, m, self.variables) if self.text_template else _line(m) for m in messages
            ]
        except TemplateRenderError as exc:
            raise DeliveryError("slack", f"could not build or send the message: {exc}", retryable=False) from None
        title = group_headline(messages)
        sections = [f"*{title}*"]
        for line in lines:  # sections of at most ~3,000 characters, Slack's limit per text
            if len(sections) == 1 or len(sections[-1]) + len(line) > 2900:
                sections.append(line[:2900])
            else:
                sections[-1] += "\n" + line
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}} for text in sections]
        self._post({"text": title, "blocks": blocks[:50]}, None)

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
    alert, event, severity, value, threshold, detail = group_row(message)
    values = f": value {value}, threshold {threshold}" if value or threshold else ""
    link = f" <{message['run_url']}|run>" if message.get("run_url") else ""
    return f"*[{event.upper()}]* {alert} ({severity}){values}" + (f" — {detail}" if detail else "") + link
