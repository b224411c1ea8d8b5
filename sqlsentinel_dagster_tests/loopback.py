"""A real HTTP server on loopback that records what channels send, and can fail on purpose."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
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
                failing = receiver.fail_with is not None and (
                    receiver.fail_times == 0 or len(receiver.requests) < receiver.fail_times
                )
                status = receiver.fail_with if failing and receiver.fail_with else 200
                receiver.requests.append(Received(self.command, self.path, dict(self.headers), body, status))
            self.send_response(status)
            for key, value in receiver.reply_headers.items():
                self.send_header(key, value)
            self.end_headers()
            if status >= 300:
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
