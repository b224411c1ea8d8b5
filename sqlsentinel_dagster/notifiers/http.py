"""One HTTP request with a deadline on the whole exchange, classified for retries, with secrets kept out of every
error."""

from __future__ import annotations

import contextlib
import email.utils
import logging
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..redact import redact_text
from .base import DeliveryError

if TYPE_CHECKING:
    import requests

__all__ = ["request"]

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_ERROR_BODY_SCAN = 8192  # characters of an error answer searched for secrets
_ERROR_BODY_SHOWN = 200  # characters of it shown
MAX_ANSWER_BYTES = 1_000_000
"""Bytes of an answer read; the rest is ignored (channels only need a status and a small JSON)."""
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")]+")
_TIMEOUT = re.compile(r"(Read|Connect) timed out")


def request(
    channel: str,
    method: str,
    url: str,
    *,
    secrets: tuple[str, ...] = (),
    timeout: float = 10.0,
    **kwargs: Any,
) -> requests.Response:
    """Send the request; raise :class:`DeliveryError` for network errors and non-2xx answers.

    ``timeout`` bounds the whole exchange (connect, send, headers and body), not only each read: a server
    that answers one byte at a time is cut off too. Network errors, timeouts, 408/425/429 and 5xx are
    retryable (with the server's Retry-After); other 4xx are not. Neither the URL nor any of ``secrets``
    appears in the error.
    """
    import requests  # imported on first send: loading definitions does not need it

    parts = urlsplit(url)
    hidden = (url, parts.path if len(parts.path) > 1 else "", parts.query, parts.password or "", *secrets)
    try:
        with _REDACTOR.hiding(hidden):
            # Never follow redirects: they would re-send headers, credentials and the body to another origin.
            response = _exchange(method, url, timeout, allow_redirects=False, **kwargs)
    except _Overdue:
        where = f"{parts.hostname}:{parts.port or ''}".rstrip(":")
        raise DeliveryError(channel, f"no complete answer from {where} within {timeout:g}s", retryable=True) from None
    except requests.RequestException as exc:
        reason = _ERRNO.search(str(exc)) or _TIMEOUT.search(str(exc))
        detail = reason.group(0) if reason else redact_text(str(exc), hidden)
        cause = f"{type(exc).__name__} to {parts.hostname}:{parts.port or ''}: {detail}".replace(":: ", ": ")
        raise DeliveryError(channel, redact_text(cause, hidden), retryable=True) from None
    if response.status_code < 300:
        return response
    if response.is_redirect:
        where = urlsplit(response.headers.get("Location", "")).hostname or "elsewhere"
        raise DeliveryError(
            channel,
            f"HTTP {response.status_code} {response.reason}: redirected to {where}; redirects are not followed "
            "(they would re-send credentials), set the final URL",
            retryable=False,
        )
    # Redact first, then cut: a secret echoed across the cut must not keep its first characters.
    detail = redact_text(response.text[:_ERROR_BODY_SCAN].strip(), hidden)[:_ERROR_BODY_SHOWN]
    raise DeliveryError(
        channel,
        f"HTTP {response.status_code} {response.reason}" + (f": {detail}" if detail else ""),
        retryable=response.status_code in RETRYABLE_STATUS,
        retry_after=_retry_after(response.headers),
    )


class _Overdue(Exception):
    """The exchange outlived its deadline."""


def _exchange(method: str, url: str, timeout: float, **kwargs: Any) -> requests.Response:
    """``requests.request`` in a worker thread, given up after ``timeout`` seconds in all; at most
    :data:`MAX_ANSWER_BYTES` of the answer are read. A worker late in the body has its socket shut down; one
    still reading headers ends at its next read timeout or the header limits (it is a daemon thread)."""
    import requests

    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            response = requests.request(method, url, timeout=timeout, stream=True, **kwargs)
            outcome["response"] = response
            body = bytearray()
            for chunk in response.iter_content(65536):
                body += chunk
                if len(body) >= MAX_ANSWER_BYTES:
                    break
            response._content = bytes(body[:MAX_ANSWER_BYTES])  # as requests itself does once it has read it
            response.close()
            outcome["done"] = True
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="sqlsentinel-http", daemon=True)
    worker.start()
    worker.join(timeout)
    if "error" in outcome:
        raise outcome["error"]
    if "done" not in outcome:
        late = outcome.get("response")
        if late is not None:
            _shutdown(late)
        raise _Overdue
    response: requests.Response = outcome["response"]
    return response


def _shutdown(response: requests.Response) -> None:
    """Shut the socket of a response being read by another thread (closing it would wait for that thread)."""
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _RedactingFilter(logging.Filter):
    """Redacts the secrets of requests in flight from urllib3's debug log (it logs each request's path)."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def hiding(self, secrets: tuple[str, ...]) -> Iterator[None]:
        values = [s for s in secrets if s]
        with self._lock:
            self._secrets.update(values)
        try:
            yield
        finally:
            with self._lock:
                self._secrets.subtract(values)
                self._secrets += Counter()  # drop the zero counts

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = list(self._secrets)
        if secrets:
            record.msg = redact_text(record.getMessage(), secrets)
            record.args = None
        return True


_REDACTOR = _RedactingFilter()
logging.getLogger("urllib3.connectionpool").addFilter(_REDACTOR)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else None
