"""Notification targets in alerts.yaml: one model per channel, written inline or as a named receiver."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from ..envsubst import find_syntax_error
from ..templates import template_problem

__all__ = [
    "CHANNELS",
    "EMAIL_PATTERN",
    "RECEIVER_TAG",
    "EmailTarget",
    "InlineTarget",
    "LogTarget",
    "MSTeamsTarget",
    "NotifyEntry",
    "NotifyTarget",
    "PagerDutyTarget",
    "Secret",
    "SlackTarget",
    "WebhookTarget",
    "recipients_of",
]


def _env_syntax(value: str) -> str:
    problem = find_syntax_error(value)
    if problem:
        raise ValueError(problem)
    return value


def _message_template(value: str) -> str:
    problem = template_problem(value)
    if problem:
        raise ValueError(problem)
    return value


EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email(value: str) -> str:
    if "${" in value:
        return _env_syntax(value)  # resolved (and checked) when the email is sent
    if not EMAIL_PATTERN.match(value):
        raise ValueError(f"invalid email address '{value}'; write name@example.com or ${{VAR}}")
    return value


Secret = Annotated[str, AfterValidator(_env_syntax)]
"""A value that may hold a secret: ``${VAR}`` is resolved only when the notification is sent."""
MessageTemplate = Annotated[str, AfterValidator(_env_syntax), AfterValidator(_message_template)]
"""A Jinja2 template over the documented variables, checked when the file loads."""
EmailAddress = Annotated[str, AfterValidator(_email)]

MAX_COLUMN_NAME = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SEPARATORS = re.compile(r"[,;]")


def _column_name(value: str) -> str:
    if not value.strip():
        raise ValueError("recipients_from is empty; name the column of each row that holds its recipients")
    if _CONTROL.search(value):
        raise ValueError(f"recipients_from {value!r} has control characters; name a column of the query's result")
    if len(value) > MAX_COLUMN_NAME:
        raise ValueError(
            f"recipients_from is {len(value)} characters long; a column name has at most {MAX_COLUMN_NAME}"
        )
    if "${" in value:
        raise ValueError(f"recipients_from {value!r}: ${{VAR}} is not substituted here; name the column itself")
    return value


def recipients_of(value: Any) -> tuple[list[str], list[str]]:
    """The recipients in one row's ``recipients_from`` column: the valid addresses (in order, without repeats) and
    the parts that are not addresses. ``value`` holds one address or several separated by ',' or ';' (a list of
    such values is read item by item); empty parts are skipped, and None gives no recipient."""
    items = value if isinstance(value, list | tuple) else [value]
    valid: list[str] = []
    invalid: list[str] = []
    for item in items:
        if item is None:
            continue
        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
        for part in (p.strip() for p in _SEPARATORS.split(text)):
            if not part:
                continue
            if EMAIL_PATTERN.match(part) and not _CONTROL.search(part):
                valid.extend([part] if part not in valid else [])
            else:
                invalid.append(part)
    return valid, invalid


def _flattened(data: Any) -> Any:
    """A target in SQL Sentinel's nested form (``channel: webhook`` + ``config: {webhook_url: ...}``) as the flat
    one; ``config:`` left empty means no settings. A key given both ways, or a ``config:`` that is no mapping,
    is refused."""
    if not isinstance(data, dict) or "config" not in data:
        return data
    nested = {} if data["config"] is None else data["config"]
    if not isinstance(nested, dict):
        raise ValueError(
            f"'config:' must be a mapping of the channel's settings (or write them flat), got {type(nested).__name__}"
        )
    clash = sorted(set(nested) & (set(data) - {"config"}))
    if clash:
        raise ValueError(f"{', '.join(map(str, clash))} given both flat and under 'config:'; keep one")
    return {**{k: v for k, v in data.items() if k != "config"}, **nested}


class _Target(BaseModel):
    """Common behaviour of notification targets: SQL Sentinel's nested ``config:`` form is accepted as well as
    flat keys, for every setting (:func:`_flattened`), and so are its names for settings named otherwise here
    (a field's ``AliasChoices``, e.g. ``webhook_url`` for a webhook's ``url``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    send_resolved: bool = Field(default=True, description="Also notify this channel when the alert resolves")
    group: bool = Field(
        default=False,
        description="One message per run listing every alert notifying this target, instead of one per alert",
    )
    mute_time_intervals: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Names under time_intervals: while one holds, this target's notifications are held (and owed)",
    )
    active_time_intervals: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Names under time_intervals: outside all of them, this target's notifications are held",
    )

    @model_validator(mode="after")
    def _group_without_per_alert_templates(self) -> Any:
        fields = [name for name in ("subject", "body") if getattr(self, name, None) is not None]
        if self.group and fields:
            raise ValueError(
                f"group: true sends one message listing many alerts, so {' and '.join(fields)} (a template for one "
                "alert's message) cannot apply; remove one of them"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _sql_sentinel_form(cls, data: Any) -> Any:
        """Flatten ``config:`` (one validator for every channel: a subclass's own ones run before this one), and
        refuse a setting given under two of its names."""
        data = _flattened(data)
        if isinstance(data, dict):
            for info in cls.model_fields.values():
                names = info.validation_alias.choices if isinstance(info.validation_alias, AliasChoices) else []
                given = [name for name in names if isinstance(name, str) and name in data]
                if len(given) > 1:
                    raise ValueError(f"give '{given[0]}' or '{given[1]}' (its SQL Sentinel name), not both")
        return data


class EmailTarget(_Target):
    """Send an email to ``recipients`` through the SMTP server of the notifications resource (or SMTP_*); with
    ``recipients_from``, also to the addresses in that column of each instance's row (see :func:`recipients_of`)."""

    channel: Literal["email"]
    recipients: list[EmailAddress] = Field(
        default_factory=list, min_length=1, description="Addresses; optional with recipients_from"
    )
    recipients_from: Annotated[str, AfterValidator(_column_name)] | None = Field(
        default=None,
        description="A column of each instance's row whose value gives that row's recipients (one address, or "
        "several separated by ',' or ';'); alerts with instances: only",
    )
    subject: MessageTemplate | None = Field(default=None, description="Subject template")
    body: MessageTemplate | None = Field(default=None, description="Plain-text body template")

    @model_validator(mode="after")
    def _someone(self) -> EmailTarget:
        if not self.recipients and self.recipients_from is None:
            raise ValueError(
                "required key 'recipients' is missing; give recipients (email addresses), recipients_from (the "
                "column of each instance's row that holds its recipients), or both"
            )
        if self.recipients_from is not None and self.group:
            raise ValueError(
                "group: true sends one message listing many alerts, so recipients_from (the recipients of one "
                "instance's row) cannot apply; remove one of them"
            )
        return self


class SlackTarget(_Target):
    """Post to a Slack incoming webhook (``SLACK_WEBHOOK_URL`` by default), or with a bot token to a channel."""

    channel: Literal["slack"]
    webhook_url: Secret | None = None
    username: str | None = None
    text: MessageTemplate | None = Field(default=None, description="Message text template")
    bot_token: Secret | None = Field(default=None, description="Bot token (xoxb-...): post via chat.postMessage")
    slack_channel: str | None = Field(default=None, description="Channel for bot-token posting, e.g. #alerts")

    @model_validator(mode="after")
    def _bot_needs_channel(self) -> SlackTarget:
        if self.bot_token and not self.slack_channel:
            raise ValueError("bot_token needs slack_channel (the channel to post to, e.g. '#alerts')")
        return self


class WebhookTarget(_Target):
    """Call an HTTP endpoint with a JSON body and an ``Idempotency-Key`` header.

    Without ``url`` (SQL Sentinel's ``webhook_url`` is accepted too), WEBHOOK_URL is used, with the
    Authorization header from WEBHOOK_AUTH_HEADER when that is set.
    """

    channel: Literal["webhook"]
    url: Secret | None = Field(
        default=None,
        validation_alias=AliasChoices("url", "webhook_url"),
        description="Endpoint; default WEBHOOK_URL ('webhook_url', SQL Sentinel's name, is accepted too)",
    )
    method: Annotated[Literal["GET", "POST", "PUT", "PATCH"], BeforeValidator(lambda v: str(v).upper())] = "POST"
    headers: dict[str, Secret] = Field(default_factory=dict)
    timeout: Annotated[float, Field(gt=0, le=300)] = Field(default=10.0, description="Seconds per request")
    verify_tls: bool = Field(default=True, description="Check the server's TLS certificate")
    username: str | None = Field(default=None, description="Basic auth user")
    password: Secret | None = Field(default=None, description="Basic auth password")
    bearer_token: Secret | None = Field(default=None, description="Sent as 'Authorization: Bearer <token>'")
    body: MessageTemplate | None = Field(default=None, description="Body template (default: the JSON message)")


class PagerDutyTarget(_Target):
    """Trigger and resolve a PagerDuty incident (Events API v2); ``PAGERDUTY_ROUTING_KEY`` by default."""

    channel: Literal["pagerduty"]
    routing_key: Secret | None = None

    @model_validator(mode="after")
    def _no_group(self) -> PagerDutyTarget:
        if self.group:
            raise ValueError("group is not available for pagerduty: PagerDuty keeps one incident per alert")
        return self


class MSTeamsTarget(_Target):
    """Post a card to a Microsoft Teams workflow or incoming webhook."""

    channel: Literal["msteams"]
    webhook_url: Secret


class LogTarget(_Target):
    """Write the message to the Dagster run log (no network)."""

    channel: Literal["log"]


NotifyTarget = EmailTarget | SlackTarget | WebhookTarget | PagerDutyTarget | MSTeamsTarget | LogTarget
InlineTarget = Annotated[NotifyTarget, Field(discriminator="channel")]
"""A target written out in full (receivers are made of these)."""
CHANNELS = ("email", "slack", "webhook", "pagerduty", "msteams", "log")
RECEIVER_TAG = "receiver"


def _kind(value: Any) -> str | None:
    if isinstance(value, str):
        return RECEIVER_TAG
    if isinstance(value, dict):
        channel = value.get("channel")
        return str(channel) if channel is not None else None
    return getattr(value, "channel", None)


NotifyEntry = Annotated[
    Annotated[EmailTarget, Tag("email")]
    | Annotated[SlackTarget, Tag("slack")]
    | Annotated[WebhookTarget, Tag("webhook")]
    | Annotated[PagerDutyTarget, Tag("pagerduty")]
    | Annotated[MSTeamsTarget, Tag("msteams")]
    | Annotated[LogTarget, Tag("log")]
    | Annotated[str, Tag(RECEIVER_TAG)],
    Discriminator(_kind),
]
"""An item of a ``notify:`` list: a target written inline, or the name of a receiver declared once."""
