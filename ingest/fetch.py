"""Fetching one article page politely: robots.txt, per-host delay, bounded GET, checks.

Used from the fetcher stage's worker threads, so the robots cache and the
per-host clock are guarded by locks.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from protego import Protego

from ingest.errors import IngestPermanent, IngestTransient
from ingest.extract import decode_html, header_charset
from ingest.httpget import Limits, Page, get, raise_for_status
from ingest.transport import new_client
from pipeline.settings import Settings

logger = logging.getLogger(__name__)

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
ROBOTS_TTL_S = 24 * 3600
# an unreachable robots.txt is retried sooner than a fetched one is refreshed
ROBOTS_ERROR_TTL_S = 300
ROBOTS_MAX_BYTES = 512_000
MAX_CRAWL_DELAY_S = 60.0


@dataclass
class FetchedPage:
    page: Page
    html: str
    charset: str


class RobotsCache:
    """robots.txt per scheme+host, cached; 4xx means no rules (RFC 9309)."""

    def __init__(self, client: httpx.Client, limits: Limits, user_agent: str) -> None:
        self.client = client
        self.limits = Limits(limits.connect_s, limits.read_s, min(limits.total_s, 30),
                             ROBOTS_MAX_BYTES, limits.max_redirects, limits.allow_private)
        self.user_agent = user_agent
        self._cache: dict[str, tuple[Protego | None, float]] = {}
        self._lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}

    def _load(self, origin: str) -> tuple[Protego | None, float]:
        try:
            page = get(self.client, f"{origin}/robots.txt", self.limits,
                       {"User-Agent": self.user_agent})
        except (IngestPermanent, IngestTransient) as exc:
            # RFC 9309 says "unreachable: assume disallowed"; we retry soon instead of
            # dead-lettering every story of a host whose robots.txt blipped once
            logger.warning("robots.txt of %s unreachable (%s); allowing for now", origin, exc)
            return None, ROBOTS_ERROR_TTL_S
        if page.status >= 500:
            logger.warning("robots.txt of %s: HTTP %d; allowing for now", origin, page.status)
            return None, ROBOTS_ERROR_TTL_S
        if page.status >= 400:
            return None, ROBOTS_TTL_S
        text = page.body.decode("utf-8", "replace")
        return Protego.parse(text), ROBOTS_TTL_S

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            host_lock = self._host_locks.setdefault(origin, threading.Lock())
        with host_lock:  # one fetch of robots.txt per host, however many threads ask
            cached = self._cache.get(origin)
            if cached is None or cached[1] < time.monotonic():
                rules, ttl = self._load(origin)
                cached = (rules, time.monotonic() + ttl)
                self._cache[origin] = cached
        rules = cached[0]
        return rules is None or bool(rules.can_fetch(url, self.user_agent))

    def crawl_delay(self, url: str) -> float:
        """The host's ``Crawl-delay`` for us, in seconds (0 when it sets none); call
        after ``allowed``, which loads the rules."""
        parts = urlsplit(url)
        cached = self._cache.get(f"{parts.scheme}://{parts.netloc}")
        rules = cached[0] if cached else None
        delay = rules.crawl_delay(self.user_agent) if rules is not None else None
        # a publisher's wish, capped so that one odd robots.txt cannot stall a worker for long
        return min(float(delay or 0), MAX_CRAWL_DELAY_S)


class Politeness:
    """Requests to one host start at least ``delay_s`` (or the host's Crawl-delay) apart, across threads."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, host: str, delay_s: float | None = None) -> None:
        """Block until this host may be asked again; ``delay_s`` overrides the default
        (a robots.txt Crawl-delay longer than ours)."""
        delay = self.delay_s if delay_s is None else delay_s
        if delay <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next.get(host, now))
            self._next[host] = start + delay
        if start > now:
            time.sleep(start - now)


def _refuse_early(page: Page) -> None:
    """Status and content type are known before the body: an error page or a PDF is
    refused without downloading it."""
    raise_for_status(page)
    content_type = page.content_type
    if content_type and content_type not in HTML_TYPES:
        raise IngestPermanent("not_html", f"not HTML: {content_type} at {page.final_url}")


class PageFetcher:
    """GET an article page within the settings' limits and return it decoded."""

    def __init__(self, settings: Settings, client: httpx.Client | None = None) -> None:
        self.settings = settings
        self.limits = Limits.for_pages(settings)
        # from ingest.transport: the guard and the total deadline live in its network backend
        self.client = client or new_client(settings.fetch_concurrency * 2)
        self.user_agent = settings.http_user_agent
        self.robots = RobotsCache(self.client, self.limits, self.user_agent)
        self.politeness = Politeness(settings.per_host_delay_s)

    def fetch(self, url: str) -> FetchedPage:
        """Fetch ``url``; raises ``IngestPermanent`` / ``IngestTransient`` with a reason."""
        delay = self.settings.per_host_delay_s
        if self.settings.respect_robots:
            if not self.robots.allowed(url):
                raise IngestPermanent("robots", f"disallowed by robots.txt: {url}")
            delay = max(delay, self.robots.crawl_delay(url))
        self.politeness.wait(urlsplit(url).hostname or "", delay)
        page = get(self.client, url, self.limits,
                   {"User-Agent": self.user_agent, "Accept": PAGE_ACCEPT}, inspect=_refuse_early)
        if not page.body.strip():
            raise IngestPermanent("empty", f"empty response body from {page.final_url}")
        if not page.content_type and b"<" not in page.body[:1024]:
            raise IngestPermanent("not_html", f"not HTML (no content type) at {page.final_url}")
        html, charset = decode_html(page.body, header_charset(page.headers.get("content-type")))
        return FetchedPage(page, html, charset)

    def close(self) -> None:
        self.client.close()
