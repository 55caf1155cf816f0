"""A real HTTP server on 127.0.0.1 for tests: feeds and pages are real bytes on real sockets.

    site = LocalSite()            # started on a free port
    site.add("/feed.xml", body, content_type="application/rss+xml")
    site.add("/slow", b"...", delay=5)
    site.add_handler("/custom", lambda req: Response(status=304))
    site.url("/feed.xml")         # http://127.0.0.1:PORT/feed.xml
    site.requests                 # every request seen: (method, path, headers)
    site.close()
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the status line is sent


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    at: float
    body: bytes = b""  # request body (POST), e.g. a webhook delivery


Handler = Callable[[SeenRequest], Response]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that stops reading (size cap, early refusal) resets the connection
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LocalSite:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        site = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _serve(self, with_body: bool) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = SeenRequest(self.command, self.path, dict(self.headers), time.time(), body)
                with site._lock:
                    site.requests.append(seen)
                handler = site.routes.get(self.path) or site.routes.get(self.path.split("?")[0])
                response = handler(seen) if handler else Response(404, b"not found")
                if response.delay:
                    time.sleep(response.delay)
                try:
                    self.send_response(response.status)
                    headers = {"Content-Length": str(len(response.body)), **response.headers}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if with_body and response.body:
                        self.wfile.write(response.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                self._serve(True)

            def do_HEAD(self) -> None:
                self._serve(False)

            def do_POST(self) -> None:
                self._serve(True)

        self.server = _QuietServer((host, 0), _Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(
        self,
        path: str,
        body: bytes | str,
        *,
        status: int = 200,
        content_type: str = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        all_headers = {"Content-Type": content_type, **(headers or {})}
        self.routes[path] = lambda _req: Response(status, data, all_headers, delay)

    def add_handler(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
