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
# robots.txt's own total deadline: the file is small, and other workers of the host wait for it
ROBOTS_TIMEOUT_S = 10.0
MAX_CRAWL_DELAY_S = 60.0


@dataclass
class FetchedPage:
    page: Page
    html: str
    charset: str


@dataclass(frozen=True)
class _Robots:
    rules: Protego | None  # None: no rules, everything allowed
    expires: float  # time.monotonic()
    unreachable: str | None = None  # why it could not be read; everything waits until expiry


class RobotsCache:
    """robots.txt per scheme+host, cached, as RFC 9309 says: a 4xx (or a robots.txt that
    is unavailable: redirect loop, too large) means no rules; a 5xx, 429 or network
    failure means disallowed for now, and robots.txt is tried again after
    ``ROBOTS_ERROR_TTL_S`` (an earlier good copy stands in meanwhile, RFC 9309 2.4)."""

    def __init__(self, client: httpx.Client, limits: Limits, user_agent: str) -> None:
        self.client = client
        self.limits = Limits(limits.connect_s, limits.read_s, min(limits.total_s, ROBOTS_TIMEOUT_S),
                             ROBOTS_MAX_BYTES, limits.max_redirects, limits.allow_private)
        self.user_agent = user_agent
        self._cache: dict[str, _Robots] = {}
        self._lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}

    def _load(self, origin: str, previous: _Robots | None) -> _Robots:
        now = time.monotonic()
        try:
            page = get(self.client, f"{origin}/robots.txt", self.limits,
                       {"User-Agent": self.user_agent})
        except IngestTransient as exc:
            return self._unreachable(origin, f"{exc.kind}: {exc}", previous)
        except IngestPermanent as exc:
            logger.warning("robots.txt of %s unavailable (%s): no rules", origin, exc)
            return _Robots(None, now + ROBOTS_ERROR_TTL_S)
        if page.status >= 500 or page.status in (408, 425, 429):
            return self._unreachable(origin, f"HTTP {page.status}", previous)
        if page.status >= 400:
            return _Robots(None, now + ROBOTS_TTL_S)
        text = page.body.decode("utf-8", "replace")
        return _Robots(Protego.parse(text), now + ROBOTS_TTL_S)

    def _unreachable(self, origin: str, why: str, previous: _Robots | None) -> _Robots:
        expires = time.monotonic() + ROBOTS_ERROR_TTL_S
        if previous is not None and previous.unreachable is None:
            logger.warning("robots.txt of %s unreachable (%s); keeping the copy we had", origin, why)
            return _Robots(previous.rules, expires)
        logger.warning("robots.txt of %s unreachable (%s); its pages wait", origin, why)
        return _Robots(None, expires, unreachable=why)

    def _entry(self, origin: str) -> _Robots:
        with self._lock:
            host_lock = self._host_locks.setdefault(origin, threading.Lock())
        # one fetch of robots.txt per host, however many threads ask; the holder is done
        # within the robots deadline, so waiting longer than that means something is stuck
        if not host_lock.acquire(timeout=self.limits.total_s + 1):
            raise IngestTransient("robots_unreachable", f"robots.txt of {origin} is still loading")
        try:
            cached = self._cache.get(origin)
            if cached is None or cached.expires < time.monotonic():
                cached = self._load(origin, cached)
                self._cache[origin] = cached
            return cached
        finally:
            host_lock.release()

    def allowed(self, url: str) -> bool:
        """Whether robots.txt lets us fetch ``url``; raises ``IngestTransient``
        (``robots_unreachable``) while the host's robots.txt cannot be read."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        robots = self._entry(origin)
        if robots.unreachable is not None:
            raise IngestTransient(
                "robots_unreachable",
                f"robots.txt of {origin} unreachable ({robots.unreachable}), so {url} waits",
                retry_after=max(robots.expires - time.monotonic(), 1.0),
            )
        return robots.rules is None or bool(robots.rules.can_fetch(url, self.user_agent))

    def crawl_delay(self, url: str) -> float:
        """The host's ``Crawl-delay`` for us, in seconds (0 when it sets none); call
        after ``allowed``, which loads the rules."""
        parts = urlsplit(url)
        cached = self._cache.get(f"{parts.scheme}://{parts.netloc}")
        rules = cached.rules if cached else None
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

    @staticmethod
    def host_key(url: str) -> str:
        """The name one clock is kept under: the URL's host."""
        return urlsplit(url).hostname or ""

    def due_at(self, host: str) -> float:
        """When (``time.monotonic``) ``host`` may be asked next without waiting; the
        fetcher stage dispatches a host's next entry only then, so ``wait`` never
        sleeps in a worker."""
        with self._lock:
            return self._next.get(host, 0.0)


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
        self.politeness.wait(self.politeness.host_key(url), delay)
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
