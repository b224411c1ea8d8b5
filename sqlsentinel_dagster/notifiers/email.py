"""The ``email`` channel: SMTP with STARTTLS or implicit TLS, optional login, plain-text and HTML bodies.

A grouped email stays readable: at most :data:`MAX_GROUP_ROWS` alerts, and at most :data:`MAX_BODY_BYTES` in its
HTML or its plain text (Gmail clips a message past 102 KB); more alerts are split into several emails
(``part 2 of 5`` in the subject, :mod:`.parts`). Values from queries are escaped in the HTML part; cells of a
CSV attachment are neutralised against formulas (:func:`.escaping.csv_cell`).
"""

from __future__ import annotations

import csv
import html
import io
import re
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal

from ..errors import TemplateRenderError
from ..redact import redact_text
from ..templates import render
from .base import (
    GROUP_COLUMNS,
    DeliveryError,
    group_row,
    headline,
    message_text,
    part_headline,
    row_summary,
    row_table,
    text_table,
)
from .escaping import csv_cell
from .parts import Part

__all__ = ["LIMITS", "MAX_BODY_BYTES", "MAX_GROUP_ROWS", "EmailNotifier", "SmtpSettings"]

DEFAULT_SUBJECT = "[{{ event | upper }}] {{ alert_name }} ({{ severity }})"
MAX_GROUP_ROWS = 200
"""Alerts listed in one grouped email: a table anyone can still read through."""
MAX_BODY_BYTES = 100_000
"""Bytes of one grouped email's HTML, and of its plain text: under the 102 KB past which Gmail clips a message."""
LIMITS = {"rows": MAX_GROUP_ROWS, "bytes": MAX_BODY_BYTES}
"""Every limit of a grouped email, by the names :meth:`EmailNotifier.measure_group` measures."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the SMTP server (from the notifications resource, else the SMTP_* variables)."""

    host: str
    port: int = 587
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    from_address: str = "sqlsentinel@localhost"
    timeout: float = 10.0
    verify_tls: bool = True
    ca_file: str | None = None

    def tls_context(self) -> ssl.SSLContext:
        """The TLS context: system CAs (or ``ca_file``), verification unless switched off."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


class EmailNotifier:
    """Send each notification as one email to ``recipients``."""

    group_limits = LIMITS
    """The limits of a grouped email (see the module's docstring)."""

    def __init__(
        self,
        settings: SmtpSettings,
        recipients: Sequence[str],
        *,
        subject_template: str | None = None,
        body_template: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.recipients = list(recipients)
        self.subject_template = subject_template or DEFAULT_SUBJECT
        self.body_template = body_template
        self.variables = dict(variables or {})
        """The values of the ``${VAR}``s in the templates (secrets: never shown in an error)."""

    def build(self, message: Mapping[str, Any]) -> EmailMessage:
        """The email: rendered subject, plain-text body and an HTML alternative."""
        try:
            subject = render(self.subject_template, message, self.variables)
            text = render(self.body_template, message, self.variables) if self.body_template else None
        except TemplateRenderError as exc:
            raise DeliveryError("email", f"could not build or send the message: {exc}", retryable=False) from None
        email = EmailMessage()
        email["Subject"] = _CONTROL.sub(" ", subject).strip()  # one line: data cannot add a header
        email["From"] = self.settings.from_address
        email["To"] = ", ".join(self.recipients)
        email["X-SQLSentinel-Idempotency-Key"] = str(message.get("idempotency_key", ""))
        email.set_content(text if text is not None else _default_body(message))
        shown = text if text is not None else _default_body(message, with_rows=False)  # the HTML has a real table
        email.add_alternative(_html(message, shown), subtype="html")
        if message.get("rows_attach") == "csv" and message.get("columns"):
            name = f"{message.get('alert_name')}.csv".replace("/", "_")
            email.add_attachment(_csv(message).encode("utf-8"), maintype="text", subtype="csv", filename=name)
        return email

    def build_group(self, part: Part, key: str) -> EmailMessage:
        """One email listing every alert of ``part``: a text table and an HTML table."""
        subject, text, html_body = _group_bodies(part)
        email = EmailMessage()
        email["Subject"] = subject
        email["From"] = self.settings.from_address
        email["To"] = ", ".join(self.recipients)
        email["X-SQLSentinel-Idempotency-Key"] = key
        email.set_content(text)
        email.add_alternative(html_body, subtype="html")
        return email

    def measure_group(self, part: Part) -> Mapping[str, int]:
        """How big ``part`` is as one email (see :data:`LIMITS`): its rows, and the larger of its two bodies."""
        _, text, html_body = _group_bodies(part)
        return {"rows": len(part.messages), "bytes": max(len(text.encode()), len(html_body.encode()))}

    def send(self, message: Mapping[str, Any]) -> None:
        """Send; SMTP 4xx and connection problems are retryable, 5xx (e.g. a refused address) are not."""
        self._deliver(self.build(message))

    def send_group(self, part: Part, key: str) -> None:
        """Send one email with a table of the alerts of ``part`` (``group: true``)."""
        self._deliver(self.build_group(part, key))

    def _deliver(self, email: EmailMessage) -> None:
        settings = self.settings
        secrets = tuple(s for s in (settings.password, *self.variables.values()) if s)
        try:
            if settings.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    settings.host, settings.port, timeout=settings.timeout, context=settings.tls_context()
                )
            else:
                smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
            with smtp:
                if settings.security == "starttls":
                    smtp.starttls(context=settings.tls_context())
                if settings.username:
                    smtp.login(settings.username, settings.password or "")
                refused = smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                "email",
                f"recipients refused: {', '.join(exc.recipients)}",
                retryable=all(400 <= c < 500 for c in codes),
            ) from None
        except smtplib.SMTPResponseException as exc:
            reply = (
                exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            )
            cause = redact_text(f"SMTP {exc.smtp_code} {reply}", secrets)
            raise DeliveryError("email", cause, retryable=400 <= exc.smtp_code < 500) from None
        except ssl.SSLCertVerificationError as exc:
            cause = f"the server's TLS certificate was refused: {exc.verify_message}"
            raise DeliveryError("email", f"{settings.host}:{settings.port}: {cause}", retryable=False) from None
        except (OSError, smtplib.SMTPException) as exc:
            cause = redact_text(f"{type(exc).__name__}: {exc}", secrets)
            raise DeliveryError(
                "email", f"cannot reach {settings.host}:{settings.port}: {cause}", retryable=True
            ) from None
        if refused:
            raise DeliveryError("email", f"recipients refused: {', '.join(refused)}", retryable=False)


def _default_body(message: Mapping[str, Any], with_rows: bool = True) -> str:
    """The plain-text body: headline, description, values, context and (``with_rows``) a failed-rows table."""
    lines = [headline(message), ""]
    if message.get("description"):
        lines.append(str(message["description"]))
    lines.append(message_text(message))
    for key, value in (message.get("context") or {}).items():
        lines.append(f"  {key}: {value}")
    table = row_table(message) if with_rows else []
    if table:
        lines += ["", f"{len(table) - 1} of {row_summary(message)}:", text_table(table)]
    return "\n".join(lines) + "\n"


def _group_bodies(part: Part) -> tuple[str, str, str]:
    """A grouped email's subject, plain text and HTML."""
    title = part_headline(part)
    rows = [GROUP_COLUMNS, *(group_row(m) for m in part.messages)]
    text = text_table([tuple(cell[:40] for cell in row) for row in rows])
    html_body = f"<html><body><h3>{html.escape(title)}</h3>{_html_table(rows)}</body></html>"
    return f"[sqlsentinel] {title}", f"{title}\n\n{text}\n", html_body


def _csv(message: Mapping[str, Any]) -> str:
    """Every row the message holds, as CSV with a header (cells as the result gave them, made safe to open in a
    spreadsheet: :func:`.escaping.csv_cell`)."""
    out = io.StringIO()
    columns = [str(c) for c in message.get("columns") or []]
    writer = csv.writer(out)
    writer.writerow([csv_cell(c) for c in columns])
    for row in message.get("rows") or []:
        writer.writerow([csv_cell("" if row.get(c) is None else row.get(c)) for c in columns])
    return out.getvalue()


def _html_table(rows: Sequence[Sequence[str]]) -> str:
    cells = "".join(
        "<tr>" + "".join(f"<{tag}>{html.escape(cell)}</{tag}>" for cell in row) + "</tr>"
        for tag, row in (("th" if i == 0 else "td", row) for i, row in enumerate(rows))
    )
    return f'<table border="1" cellpadding="4" cellspacing="0">{cells}</table>'


def _html(message: Mapping[str, Any], text: str) -> str:
    link = message.get("run_url")
    button = f'<p><a href="{html.escape(str(link))}">Open run in Dagster</a></p>' if link else ""
    table = row_table(message)
    if table:
        button = _html_table(table) + button
    return f"<html><body><h3>{html.escape(headline(message))}</h3><pre>{html.escape(text)}</pre>{button}</body></html>"
