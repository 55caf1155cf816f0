"""Bounded HTTP GET shared by the poller (async) and the fetcher (sync).

Redirects are followed by hand so that every hop passes the private-network
guard, loops are named, and the chain is recorded. The body is streamed with a
size cap and a total deadline, so a huge or never-ending response costs at
most ``max_bytes`` and ``total_timeout`` seconds. httpx decodes gzip/deflate
(and brotli/zstd when their packages are present).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin

import httpx

from ingest.errors import IngestPermanent, IngestTransient
from ingest.netguard import guard_url, guard_url_async
from ingest.schedule import parse_retry_after
from pipeline.settings import Settings

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass
class Page:
    """A response, its body decoded from transfer/content encoding but not charset."""

    url: str
    final_url: str
    status: int
    headers: dict[str, str]
    body: bytes = b""
    redirects: list[str] = field(default_factory=list)
    elapsed_ms: int = 0

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class Limits:
    connect_s: float
    read_s: float
    total_s: float
    max_bytes: int
    max_redirects: int
    allow_private: bool

    @classmethod
    def for_pages(cls, s: Settings) -> Limits:
        return cls(s.connect_timeout_s, s.read_timeout_s, s.total_timeout_s, s.max_page_bytes,
                   s.max_redirects, s.allow_private_networks)

    @classmethod
    def for_feeds(cls, s: Settings) -> Limits:
        return cls(s.connect_timeout_s, s.read_timeout_s, s.total_timeout_s, s.max_feed_bytes,
                   s.max_redirects, s.allow_private_networks)

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.read_s, connect=self.connect_s, pool=self.total_s)


def _next_hop(current: str, response: httpx.Response, chain: list[str], limits: Limits) -> str:
    location = response.headers.get("location")
    if not location:
        raise IngestPermanent(
            "bad_redirect", f"HTTP {response.status_code} without Location from {current}"
        )
    target = urljoin(current, location.strip())
    if target in chain:
        raise IngestPermanent("redirect_loop", f"redirect loop: {' -> '.join([*chain, target])}")
    if len(chain) > limits.max_redirects:
        raise IngestPermanent(
            "too_many_redirects", f"more than {limits.max_redirects} redirects from {chain[0]}"
        )
    return target


def _too_large(url: str, limits: Limits) -> IngestPermanent:
    return IngestPermanent("too_large", f"response larger than {limits.max_bytes} bytes: {url}")


def _check_length(url: str, response: httpx.Response, limits: Limits) -> None:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise _too_large(url, limits)


def translate_http_error(url: str, exc: httpx.HTTPError) -> Exception:
    """An httpx exception as an ingest failure with a health ``kind``."""
    if isinstance(exc, httpx.TimeoutException):
        return IngestTransient("timeout", f"timed out fetching {url}: {type(exc).__name__}")
    if isinstance(exc, httpx.ConnectError):
        return IngestTransient("connect", f"cannot connect to {url}: {exc}")
    if isinstance(exc, httpx.DecodingError):
        return IngestPermanent("bad_encoding", f"undecodable response body from {url}: {exc}")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return IngestPermanent("bad_url", f"cannot fetch {url}: {exc}")
    return IngestTransient("network", f"network error fetching {url}: {type(exc).__name__}: {exc}")


def raise_for_status(page: Page) -> None:
    """404/410 and other 4xx are permanent; 408, 429 and 5xx are worth retrying."""
    status = page.status
    if status < 400:
        return
    where = page.final_url
    if status in (408, 425, 429) or status >= 500:
        retry_after = parse_retry_after(page.headers.get("retry-after"))
        raise IngestTransient(f"http_{status}", f"HTTP {status} from {where}", retry_after)
    raise IngestPermanent(f"http_{status}", f"HTTP {status} from {where}")


def get(client: httpx.Client, url: str, limits: Limits, headers: dict[str, str] | None = None) -> Page:
    """GET ``url`` within ``limits``; raises ``IngestPermanent``/``IngestTransient``."""
    started = time.monotonic()
    deadline = started + limits.total_s
    chain = [url]
    current = url
    try:
        while True:
            guard_url(current, limits.allow_private)
            with client.stream("GET", current, headers=headers, follow_redirects=False) as resp:
                if resp.status_code in REDIRECT_STATUSES:
                    current = _next_hop(current, resp, chain, limits)
                    chain.append(current)
                    continue
                _check_length(current, resp, limits)
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > limits.max_bytes:
                        raise _too_large(current, limits)
                    if time.monotonic() > deadline:
                        raise IngestTransient(
                            "timeout", f"total timeout {limits.total_s:g}s reading {current}"
                        )
                return Page(url, current, resp.status_code,
                            {k.lower(): v for k, v in resp.headers.items()}, bytes(body),
                            chain[1:], int((time.monotonic() - started) * 1000))
    except httpx.HTTPError as exc:
        raise translate_http_error(current, exc) from None


async def aget(
    client: httpx.AsyncClient, url: str, limits: Limits, headers: dict[str, str] | None = None
) -> Page:
    """The async ``get`` (the poller's path); the total deadline is exact here."""
    started = time.monotonic()
    chain = [url]
    current = url
    try:
        async with asyncio.timeout(limits.total_s):
            while True:
                await guard_url_async(current, limits.allow_private)
                async with client.stream(
                    "GET", current, headers=headers, follow_redirects=False
                ) as resp:
                    if resp.status_code in REDIRECT_STATUSES:
                        current = _next_hop(current, resp, chain, limits)
                        chain.append(current)
                        continue
                    _check_length(current, resp, limits)
                    body = bytearray()
                    async for chunk in resp.aiter_bytes():
                        body += chunk
                        if len(body) > limits.max_bytes:
                            raise _too_large(current, limits)
                    return Page(url, current, resp.status_code,
                                {k.lower(): v for k, v in resp.headers.items()}, bytes(body),
                                chain[1:], int((time.monotonic() - started) * 1000))
    except TimeoutError:
        raise IngestTransient("timeout", f"total timeout {limits.total_s:g}s fetching {current}") from None
    except httpx.HTTPError as exc:
        raise translate_http_error(current, exc) from None
