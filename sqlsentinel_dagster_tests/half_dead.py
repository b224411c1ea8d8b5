"""Half-dead servers on loopback: a TCP proxy that can stop answering, and HTTP servers that drip."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class StallingProxy:
    """Forwards TCP to ``target`` until it stalls: then connections stay open and nothing more is forwarded.

    It stalls when :meth:`stall` is called, or for a connection whose client sends ``marker``.
    """

    port: int = 0
    marker: bytes = b"stall_here"
    stalled: threading.Event = field(default_factory=threading.Event)

    def stall(self) -> None:
        """Stop forwarding on every connection, current and future (they are still accepted)."""
        self.stalled.set()


def _pump(source: socket.socket, sink: socket.socket, proxy: StallingProxy, watch: bool) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            if watch and proxy.marker in data:
                proxy.stalled.set()
            while proxy.stalled.is_set():
                time.sleep(0.05)  # swallow: the peer waits forever, as with a half-dead server
                if source.recv(65536) == b"":
                    return
            sink.sendall(data)
    except OSError:
        pass


@contextmanager
def stalling_proxy(target_port: int) -> Iterator[StallingProxy]:
    """A :class:`StallingProxy` on 127.0.0.1 forwarding to ``127.0.0.1:target_port``."""
    listener = socket.create_server(("127.0.0.1", 0))
    proxy = StallingProxy(port=listener.getsockname()[1])
    sockets: list[socket.socket] = [listener]

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            sockets.append(client)
            if proxy.stalled.is_set():
                continue  # accepted, never answered
            upstream = socket.create_connection(("127.0.0.1", target_port))
            sockets.append(upstream)
            threading.Thread(target=_pump, args=(client, upstream, proxy, True), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client, proxy, False), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield proxy
    finally:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()


@contextmanager
def dripping_http_server(headers_first: bool) -> Iterator[str]:
    """An HTTP server that answers one byte every 0.2 s, forever: after complete headers (a body that never
    ends) or from the start (headers that never end). Yields its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(client: socket.socket) -> None:
        client.settimeout(1)
        try:
            client.recv(65536)
            if headers_first:
                client.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
            else:
                client.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not stop.is_set():
                client.sendall(b"a")
                time.sleep(0.2)
        except OSError:
            pass
        finally:
            client.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        stop.set()
        listener.close()
