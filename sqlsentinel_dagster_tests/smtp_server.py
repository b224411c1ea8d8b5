"""A real SMTP server on loopback (aiosmtpd): plain, STARTTLS with login, or implicit TLS."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Mailbox:
    """What the server accepted, and how to reach it."""

    host: str
    port: int
    ca_file: str | None = None
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)


class _Handler:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.startswith("refused@"):
            return "550 5.1.1 no such user"
        if address.startswith("later@"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        self.mailbox.messages.append(parsed)  # type: ignore[arg-type]
        self.mailbox.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def smtp_server(tmp_path: Path, mode: str = "plain", password: str = "s3cret-pass") -> Iterator[Mailbox]:
    """Serve SMTP on 127.0.0.1: ``plain``, ``starttls`` (TLS required, login ``alerts``/``password``) or ``ssl``."""
    mailbox = Mailbox(host="127.0.0.1", port=_free_port())
    kwargs: dict[str, Any] = {}
    if mode != "plain":
        ca = trustme.CA()
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
        ca_path = tmp_path / f"ca-{mode}.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        mailbox.ca_file = str(ca_path)
        if mode == "starttls":

            def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
                ok = isinstance(data, LoginPassword) and data.login == b"alerts" and data.password == password.encode()
                if ok:
                    mailbox.logins.append(data.login.decode())
                return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

            kwargs = {
                "tls_context": server_context,
                "require_starttls": True,
                "authenticator": authenticate,
                "auth_require_tls": True,
            }
        else:
            kwargs = {"ssl_context": server_context}
    controller = Controller(_Handler(mailbox), hostname="127.0.0.1", port=mailbox.port, **kwargs)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()
