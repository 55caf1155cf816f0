"""Misbehaving HTTP servers on 127.0.0.1: raw sockets, real bytes, any misbehaviour.

    server = RawServer(lambda conn, path: conn.send(b"HTTP/1.1 200 OK\\r\\n"))
    server.url("/x")     # http://127.0.0.1:PORT/x
    server.paths         # request paths seen, in order
    server.close()

Each connection runs ``behave(conn, path)`` in its own thread after the request
head has been read. ``Conn`` hides the socket errors of a client that has gone
away, so a behaviour can simply write until it is told to stop.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable


class Gone(Exception):
    """The client closed the connection, or the server is closing."""


class Conn:
    def __init__(self, sock: socket.socket, stop: threading.Event) -> None:
        self.sock = sock
        self.stop = stop

    def send(self, data: bytes | memoryview) -> None:
        if self.stop.is_set():
            raise Gone
        try:
            self.sock.sendall(data)
        except OSError:
            raise Gone from None

    def drip(self, data: bytes, every_s: float) -> None:
        """Send ``data`` one byte every ``every_s`` seconds."""
        for i in range(len(data)):
            self.send(data[i:i + 1])
            if self.stop.wait(every_s):
                raise Gone

    def forever(self, chunk: bytes, every_s: float = 0.0) -> None:
        """Send ``chunk`` again and again until the client goes away."""
        while True:
            self.send(chunk)
            if every_s and self.stop.wait(every_s):
                raise Gone


Behaviour = Callable[[Conn, str], None]


def _read_head(sock: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65536:
        data = sock.recv(4096)
        if not data:
            break
        head += data
    return head


class RawServer:
    def __init__(self, behave: Behaviour, host: str = "127.0.0.1",
                 tls: ssl.SSLContext | None = None) -> None:
        self.behave = behave
        self.tls = tls
        self.paths: list[str] = []
        self.heads: list[bytes] = []
        self.connections = 0
        self._stop = threading.Event()
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.2)
        self.host = host
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(30)
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            head = _read_head(sock)
            if not head:
                return
            self.heads.append(head)
            path = head.split(b" ", 2)[1].decode("latin-1") if head.count(b" ") >= 2 else "/"
            self.paths.append(path)
            self.behave(Conn(sock, self._stop), path)
        except (Gone, OSError):  # ssl.SSLError included
            pass
        finally:
            sock.close()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=2)


def response_head(status: str = "200 OK", headers: dict[str, str] | None = None) -> bytes:
    """A status line and headers, ready to send."""
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in (headers or {}).items()), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def respond(conn: Conn, body: bytes, status: str = "200 OK",
            headers: dict[str, str] | None = None) -> None:
    """A complete, well-formed response (Content-Length set), then close."""
    conn.send(response_head(status, {"Content-Length": str(len(body)), "Connection": "close",
                                     **(headers or {})}) + body)


class Elapsed:
    """``with Elapsed() as t: ...`` then ``t.s``: seconds taken."""

    def __enter__(self) -> Elapsed:
        self.started = time.monotonic()
        self.s = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = time.monotonic() - self.started
