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
            status = receiver.fail_with or 200
            with receiver.lock:
                receiver.requests.append(Received(self.command, self.path, dict(self.headers), body, status))
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else b"fail")

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
