"""Build a channel's notifier from its notify entry, resolving ``${VAR}`` and SMTP_* defaults at send time."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import envsubst
from ..config.targets import (
    EMAIL_PATTERN,
    EmailTarget,
    MSTeamsTarget,
    NotifyTarget,
    PagerDutyTarget,
    SlackTarget,
    WebhookTarget,
)
from ..errors import SecretResolutionError
from ..templates import template_variables
from .base import DeliveryError, Notifier
from .email import EmailNotifier, SmtpSettings
from .log import LogNotifier
from .msteams import MSTeamsNotifier
from .pagerduty import PagerDutyNotifier
from .retry import RetryPolicy
from .slack import SlackNotifier
from .webhook import WebhookNotifier

__all__ = ["ChannelSettings", "build_notifier", "smtp_from_env"]


@dataclass(frozen=True)
class ChannelSettings:
    """Settings shared by every alert's channels (from the notifications resource and the environment)."""

    smtp: SmtpSettings | None = None
    webserver_base_url: str | None = None
    slack_api_url: str = "https://slack.com/api"
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def run_url(self, run_id: str) -> str | None:
        """The run's page in the Dagster UI, when ``webserver_base_url`` is set."""
        return f"{self.webserver_base_url.rstrip('/')}/runs/{run_id}" if self.webserver_base_url else None


def smtp_from_env(environ: Mapping[str, str], **overrides: Any) -> SmtpSettings | None:
    """SMTP settings from ``overrides`` (non-None values) over SMTP_HOST, SMTP_PORT, SMTP_USERNAME,
    SMTP_PASSWORD, SMTP_USE_TLS (true: STARTTLS), SMTP_SECURITY (starttls/ssl/none) and SMTP_FROM_ADDRESS."""
    values = {k: v for k, v in overrides.items() if v is not None}
    host = values.pop("host", None) or environ.get("SMTP_HOST")
    if not host:
        return None
    security = (
        values.pop("security", None)
        or environ.get("SMTP_SECURITY")
        or ("none" if environ.get("SMTP_USE_TLS", "true").strip().lower() in ("false", "0", "no") else "starttls")
    )
    default_port = {"ssl": 465, "none": 25}.get(security, 587)
    return SmtpSettings(
        host=host,
        port=int(values.pop("port", None) or environ.get("SMTP_PORT") or default_port),
        security=security,  # type: ignore[arg-type]
        username=values.pop("username", None) or environ.get("SMTP_USERNAME") or None,
        password=values.pop("password", None) or environ.get("SMTP_PASSWORD") or None,
        from_address=values.pop("from_address", None) or environ.get("SMTP_FROM_ADDRESS") or "sqlsentinel@localhost",
        **values,
    )


def build_notifier(
    target: NotifyTarget, settings: ChannelSettings, logger: logging.Logger | logging.LoggerAdapter[Any], where: str
) -> Notifier:
    """The notifier for ``target``; ``where`` names it in errors (e.g. ``alert 'x': notify[1] (slack)``)."""
    env = settings.environ

    def secret(value: str | None, what: str, default_env: str | None = None) -> str | None:
        if value is None:
            return env.get(default_env) if default_env else None
        return envsubst.resolve(value, f"{where} {what}", env)

    def required(value: str | None, what: str, default_env: str | None = None) -> str:
        """A value that must not be empty: an empty one names the variable it came from."""
        resolved = secret(value, what, default_env)
        if resolved:
            return resolved
        if value is None and default_env:
            given = f"{where} {what} (no '{what}' given)"
            raise SecretResolutionError(given, default_env, empty=default_env in env)
        written = envsubst.references(value or "")
        if not written:
            raise DeliveryError(target.channel, f"{where} {what} is empty", retryable=False)
        raise SecretResolutionError(f"{where} {what}", written[0], empty=True)

    if isinstance(target, WebhookTarget):
        user, password = target.username, secret(target.password, "password")
        headers = {k: str(secret(v, f"header {k}")) for k, v in target.headers.items()}
        if target.url is None and env.get("WEBHOOK_AUTH_HEADER") and "Authorization" not in headers:
            headers["Authorization"] = env["WEBHOOK_AUTH_HEADER"]  # SQL Sentinel's default endpoint and auth
        return WebhookNotifier(
            required(target.url, "url", "WEBHOOK_URL"),
            method=target.method,
            headers=headers,
            timeout=target.timeout,
            verify_tls=target.verify_tls,
            basic_auth=(user, password or "") if user else None,
            bearer_token=secret(target.bearer_token, "bearer_token"),
            body_template=target.body,
            variables=template_variables(target.body, f"{where} body", env),
        )
    if isinstance(target, SlackTarget):
        return SlackNotifier(
            webhook_url=secret(target.webhook_url, "webhook_url", "SLACK_WEBHOOK_URL"),
            bot_token=secret(target.bot_token, "bot_token"),
            slack_channel=target.slack_channel,
            username=target.username,
            text_template=target.text,
            variables=template_variables(target.text, f"{where} text", env),
            api_url=settings.slack_api_url,
            timeout=settings.timeout,
        )
    if isinstance(target, EmailTarget):
        if settings.smtp is None:
            raise DeliveryError(
                "email", "no SMTP server configured (set SMTP_HOST or the resource's smtp_host)", retryable=False
            )
        recipients = _recipients([str(secret(r, "recipient")) for r in target.recipients])
        variables = {
            **template_variables(target.subject, f"{where} subject", env),
            **template_variables(target.body, f"{where} body", env),
        }  # resolved as data: a value is never read as template code
        return EmailNotifier(
            settings.smtp, recipients, subject_template=target.subject, body_template=target.body, variables=variables
        )
    if isinstance(target, PagerDutyTarget):
        routing_key = required(target.routing_key, "routing_key", "PAGERDUTY_ROUTING_KEY")
        return PagerDutyNotifier(routing_key, events_url=settings.pagerduty_events_url, timeout=settings.timeout)
    if isinstance(target, MSTeamsTarget):
        return MSTeamsNotifier(required(target.webhook_url, "webhook_url"), timeout=settings.timeout)
    return LogNotifier(logger)


def _recipients(resolved: list[str]) -> list[str]:
    """Recipients after ``${VAR}`` resolution: a variable may hold several addresses, comma-separated."""
    addresses = [part.strip() for value in resolved for part in value.split(",") if part.strip()]
    invalid = [a for a in addresses if not EMAIL_PATTERN.match(a)]
    if invalid or not addresses:
        shown = ", ".join(repr(a) for a in invalid) or "none"
        raise DeliveryError("email", f"invalid recipient address(es): {shown}", retryable=False)
    return addresses
