"""Real article pages and the RSS feeds that list them, served on several loopback hosts.

Each host is its own HTTP server on its own address (127.0.0.2, 127.0.0.3, ...: all
loopback on Linux) and port, so the fetcher sees several hosts, news.entries spreads
them over partitions, and the per-host politeness clock runs per host as on the web.

A feed lists the items whose release time has come: all of them at once for a burst,
one after the other for a steady arrival rate. Feeds answer conditional GETs (ETag,
304) as real feeds do, so a poller polling every second does not re-parse an unchanged
feed; a steady run's feeds list at most ``window`` items (the newest), as news feeds do
(a burst's list every item, or some would never be seen).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

CORPORA = ("aeb", "news4k")


@dataclass(frozen=True)
class CorpusPage:
    """One real page of a shared corpus: its file and the headline its ground truth gives."""

    corpus: str
    name: str
    path: Path
    title: str

    def html(self) -> bytes:
        return gzip.decompress(self.path.read_bytes())


def load_corpus_pages(shared_dir: Path, corpora: tuple[str, ...] = CORPORA,
                      limit: int | None = None) -> list[CorpusPage]:
    """The pages of ``corpora`` under ``<shared>/corpora/<name>/html``, sorted by name."""
    pages: list[CorpusPage] = []
    for corpus in corpora:
        root = shared_dir / "corpora" / corpus
        truth_file = root / "ground-truth.json"
        truth: dict[str, Any] = json.loads(truth_file.read_text()) if truth_file.exists() else {}
        for path in sorted((root / "html").glob("*.html.gz")):
            name = path.name.removesuffix(".html.gz")
            title = str((truth.get(name) or {}).get("title") or name[:16])
            pages.append(CorpusPage(corpus, name, path, title))
    return pages[:limit] if limit else pages


@dataclass(frozen=True)
class Item:
    """One story as served: a page under its own URL, listed by one feed."""

    page: CorpusPage
    copy: int  # 0, 1, ...: the same page served again under another URL
    feed: int
    url: str
    release_s: float  # seconds after the start when its feed begins to list it


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-response is not the benchmark's business


class FeedSites:
    """``hosts`` HTTP servers carrying ``feeds`` feeds (round-robin) and their pages."""

    def __init__(self, pages: list[CorpusPage], *, feeds: int, hosts: int, copies: int,
                 rate_per_s: float | None, window: int | None = None) -> None:
        if hosts > 250:
            raise ValueError("at most 250 loopback hosts (127.0.0.2 ..)")
        self.window = window
        self._bodies: dict[tuple[int, str], bytes] = {}  # (host, path) -> page bytes
        self._started_at: float | None = None
        self._lock = threading.Lock()
        self.requests = 0
        self.not_modified = 0
        self.servers = [self._serve(f"127.0.0.{2 + h}", h) for h in range(hosts)]
        self.feed_hosts = [f % hosts for f in range(feeds)]
        # consecutive items go to consecutive feeds, so a page's copies land on different feeds
        # (and hosts); a steady run releases every page's first copy before any second copy
        self.items: list[Item] = []
        html: dict[Path, bytes] = {}  # read once, up front: serving reads no file during the run
        for p, page in enumerate(pages):
            html.setdefault(page.path, page.html())
            for c in range(copies):
                feed = len(self.items) % feeds
                path = f"/{page.corpus}/{c}/{page.name}.html"
                release = 0.0 if rate_per_s is None else (c * len(pages) + p) / rate_per_s
                host = self.feed_hosts[feed]
                self.items.append(Item(page, c, feed, self.host_url(host, path), release))
                self._bodies[(host, path)] = html[page.path]
        self._feed_items = [sorted((i for i in self.items if i.feed == f), key=lambda i: i.release_s)
                            for f in range(feeds)]

    def host_url(self, host: int, path: str) -> str:
        address, port = self.servers[host].server_address[:2]
        return f"http://{address!s}:{port}{path}"

    def feed_urls(self) -> list[str]:
        return [self.host_url(self.feed_hosts[f], f"/feeds/{f}.xml") for f in range(len(self.feed_hosts))]

    def start(self) -> float:
        """Open the feeds; returns the epoch time release times count from."""
        with self._lock:
            self._started_at = time.time()
            return self._started_at

    @property
    def span_s(self) -> float:
        return max((i.release_s for i in self.items), default=0.0)

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()

    def _feed(self, feed: int, since_start: float | None) -> tuple[str, bytes]:
        released = [] if since_start is None else [
            i for i in self._feed_items[feed] if i.release_s <= since_start]
        listed = (released[-self.window:] if self.window else released)[::-1]  # newest first
        etag = f'"{feed}-{len(released)}"'
        base = self._started_at or 0.0
        items = "".join(
            f"<item><title>{escape(i.page.title)}</title><link>{escape(i.url)}</link>"
            f"<guid isPermaLink='true'>{escape(i.url)}</guid>"
            f"<pubDate>{formatdate(base + i.release_s, usegmt=True)}</pubDate></item>"
            for i in listed
        )
        body = ("<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
                f"<title>Bench feed {feed}</title><link>{self.feed_urls()[feed]}</link>"
                f"<description>newswatch end-to-end benchmark</description>{items}</channel></rss>")
        return etag, body.encode()

    def _serve(self, address: str, host: int) -> _Server:
        sites = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                headers = {"Content-Type": "text/html"}
                with sites._lock:
                    sites.requests += 1
                    started = sites._started_at
                status = 200
                if path.startswith("/feeds/") and path.endswith(".xml"):
                    feed = int(path[len("/feeds/"):-len(".xml")])
                    since = None if started is None else time.time() - started
                    etag, body = sites._feed(feed, since)
                    headers = {"Content-Type": "application/rss+xml", "ETag": etag}
                    if self.headers.get("If-None-Match") == etag:
                        status, body = 304, b""
                        with sites._lock:
                            sites.not_modified += 1
                else:
                    page = sites._bodies.get((host, path))
                    status, body = (200, page) if page is not None else (404, b"not found")
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                if body:
                    self.wfile.write(body)

        server = _Server((address, 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True, name=f"site-{address}").start()
        return server


def content_digest(pages: list[CorpusPage]) -> str:
    """A short digest of the page set, so two results can be seen to share their pages."""
    digest = hashlib.sha256()
    for page in pages:
        digest.update(f"{page.corpus}/{page.name}\n".encode())
    return digest.hexdigest()[:12]
