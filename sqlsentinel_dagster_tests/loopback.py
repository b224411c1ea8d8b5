"""A real HTTP server on loopback that records what channels send, and can fail on purpose, or refuse what the
real service refuses (:func:`slack_limits`, :func:`teams_limits`)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One request as the server saw it, with the status it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    answered: int


@dataclass
class Receiver:
    """What the server received; set ``fail_with`` (e.g. 500) to make it refuse requests."""

    url: str
    requests: list[Received] = field(default_factory=list)
    fail_with: int | None = None
    fail_times: int = 0
    """Answer ``fail_with`` only to the first ``fail_times`` requests (0: to every request)."""
    reply: Any = None
    """JSON to answer with on success (default: the text 'ok')."""
    reply_headers: dict[str, str] = field(default_factory=dict)
    fail_body: bytes = b"fail"
    """What a refused request gets as its body."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    fail_when: Callable[[Any], bool] | None = None
    """Answer ``fail_with`` to every request whose parsed body this says yes to (``fail_times`` is then ignored)."""
    limits: Callable[[bytes, Any], tuple[int, bytes] | None] | None = None
    """The real service's limits: given the raw and parsed body, the status and body it refuses with, or None
    (see :func:`slack_limits` and :func:`teams_limits`)."""

    def delivered(self) -> list[Received]:
        """Requests answered with a 2xx status."""
        with self.lock:
            return [r for r in self.requests if r.answered < 300]


@contextmanager
def loopback_receiver() -> Iterator[Receiver]:
    """Serve on 127.0.0.1 on a free port until the block ends."""
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            with receiver.lock:
                refused = receiver.limits(raw, body) if receiver.limits is not None else None
                if receiver.fail_when is not None:
                    failing = receiver.fail_with is not None and receiver.fail_when(body)
                else:
                    failing = receiver.fail_with is not None and (
                        receiver.fail_times == 0 or len(receiver.requests) < receiver.fail_times
                    )
                status = receiver.fail_with if failing and receiver.fail_with else 200
                status = refused[0] if refused else status
                receiver.requests.append(Received(self.command, self.path, dict(self.headers), body, status))
            self.send_response(status)
            for key, value in receiver.reply_headers.items():
                self.send_header(key, value)
            self.end_headers()
            if refused:
                self.wfile.write(refused[1])
            elif status >= 300:
                self.wfile.write(receiver.fail_body)
            else:
                self.wfile.write(json.dumps(receiver.reply).encode() if receiver.reply is not None else b"ok")

        do_POST = do_PUT = do_PATCH = _handle

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


SLACK_MAX_BLOCKS = 50
SLACK_MAX_SECTION_CHARS = 3_000
SLACK_MAX_FIELD_CHARS = 2_000
SLACK_MAX_TEXT_CHARS = 40_000
TEAMS_MAX_BYTES = 28_000


def slack_limits(raw: bytes, body: Any) -> tuple[int, bytes] | None:
    """Slack's answer to a message over its limits, as an incoming webhook gives it: 400 ``invalid_blocks`` for
    more than 50 blocks, a section text over 3,000 characters or a field or context text over 2,000; 400
    ``msg_too_long`` for a top-level text over 40,000 characters."""
    if not isinstance(body, dict):
        return None
    blocks = [*body.get("blocks", []), *(b for a in body.get("attachments", []) for b in a.get("blocks", []))]
    sections = [b["text"]["text"] for b in blocks if isinstance(b.get("text"), dict)]
    small = [e["text"] for b in blocks for e in [*b.get("fields", []), *b.get("elements", [])]]
    small = [t for t in small if isinstance(t, str)]
    if (
        len(blocks) > SLACK_MAX_BLOCKS
        or any(len(t) > SLACK_MAX_SECTION_CHARS for t in sections)
        or any(len(t) > SLACK_MAX_FIELD_CHARS for t in small)
    ):
        return 400, b"invalid_blocks"
    if len(str(body.get("text", ""))) > SLACK_MAX_TEXT_CHARS:
        return 400, b"msg_too_long"
    return None


def teams_limits(raw: bytes, body: Any) -> tuple[int, bytes] | None:
    """Teams' answer to a message over about 28 KB: 413."""
    if len(raw) > TEAMS_MAX_BYTES:
        return 413, b"Request Entity Too Large"
    return None
