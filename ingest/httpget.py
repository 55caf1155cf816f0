"""Bounded HTTP GET shared by the poller (async) and the fetcher (sync).

One ``Exchange`` holds the rules of a fetch without doing I/O: redirects are
followed by hand (loops and over-long chains are named, the chain is
recorded), the declared and the actual size are capped, Content-Encoding is
inflated by ``ingest.inflate`` with its output bounded, and one total deadline
covers every hop. ``get`` (blocking) and ``aget`` (async) only move bytes
between an ``Exchange`` and the client, so the two cannot drift apart. The
clients come from ``ingest.transport``, whose network backend enforces the
same deadline on every socket operation (so a server dripping its headers is
cut off too) and connects only to addresses the private-network guard checked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx

from ingest.errors import IngestPermanent, IngestTransient
from ingest.inflate import ACCEPT_ENCODING, Decoder, decoder_for
from ingest.netguard import check_url
from ingest.schedule import parse_retry_after
from ingest.transport import Budget, is_guarded
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


# more header lines than any real server sends; h11 already caps their total size at 100 KiB
MAX_HEADERS = 256
# seconds of budget left below which a timeout is the total deadline's doing
DEADLINE_SLACK_S = 0.1

Inspect = Callable[[Page], None]


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
    if isinstance(exc, httpx.RemoteProtocolError):
        # httpx checks a Location even when it does not follow it
        if "location header" in str(exc):
            return IngestPermanent("bad_redirect", f"unusable redirect from {url}: {exc}")
        # h11's words for a response cut short, as opposed to one that is malformed
        if "complete message body" in str(exc) or "incomplete chunked read" in str(exc):
            return IngestTransient("incomplete", f"connection closed mid-response from {url}: {exc}")
        return IngestTransient("protocol", f"malformed HTTP response from {url}: {exc}")
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


class Exchange:
    """One GET with its redirect chain, size cap and deadline, as steps without I/O.

    A driver asks ``request()`` for the next hop's arguments, hands the response
    to ``on_response`` (true: a redirect, ask again), feeds raw body chunks to
    ``on_chunk`` and ends with ``finish()``; any httpx error goes to ``failure``.
    ``inspect`` sees the final response's status and headers before its body is
    read, and may refuse it (a PDF where a page was expected is not downloaded).
    """

    def __init__(self, url: str, limits: Limits, headers: dict[str, str] | None = None,
                 inspect: Inspect | None = None) -> None:
        self.limits = limits
        self.started = time.monotonic()
        self.budget = Budget(self.started + limits.total_s, limits.allow_private)
        self.chain = [url]
        self.headers = {"Accept-Encoding": ACCEPT_ENCODING, **(headers or {})}
        self.inspect = inspect
        self._response: httpx.Response | None = None
        self._decoder = Decoder()
        self._body = bytearray()
        self._raw_bytes = 0

    @property
    def current(self) -> str:
        return self.chain[-1]

    def request(self) -> dict[str, Any]:
        """Keyword arguments of ``client.stream`` for the current hop."""
        check_url(self.current)
        left = self.budget.left()
        if left <= 0:
            raise self.timed_out()
        limits = self.limits
        timeout = httpx.Timeout(min(limits.read_s, left), connect=min(limits.connect_s, left),
                                pool=left)
        return {"method": "GET", "url": self.current, "headers": self.headers,
                "timeout": timeout, "follow_redirects": False}

    def on_response(self, response: httpx.Response) -> bool:
        """True if ``response`` redirects (``current`` is then the next hop); otherwise
        check its headers and get ready for its body."""
        if len(response.headers.raw) > MAX_HEADERS:
            raise IngestTransient(
                "protocol", f"more than {MAX_HEADERS} header lines from {self.current}"
            )
        if response.status_code in REDIRECT_STATUSES:
            self.chain.append(self._next_hop(response))
            return True
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limits.max_bytes:
            raise self._too_large()
        self._response = response
        if self.inspect is not None:
            self.inspect(self._page(b""))
        if 200 <= response.status_code < 300:
            self._decoder = decoder_for(response.headers.get("content-encoding"), self.current)
        # otherwise (304, an error page) only the status counts: an odd encoding on such a
        # body must not turn a retryable 503 into a permanent bad_encoding; it is kept raw
        return False

    def on_chunk(self, raw: bytes) -> None:
        """Take one raw (still encoded) piece of the body."""
        self._raw_bytes += len(raw)
        if self._raw_bytes > self.limits.max_bytes:
            raise self._too_large()
        for piece in self._decoder.feed(raw, self.limits.max_bytes - len(self._body)):
            self._append(piece)
        if self.budget.left() <= 0:
            raise self.timed_out()

    def finish(self) -> Page:
        """The final page, once the body has ended."""
        for piece in self._decoder.flush(self.limits.max_bytes - len(self._body)):
            self._append(piece)
        return self._page(bytes(self._body))

    def failure(self, exc: httpx.HTTPError) -> Exception:
        """An httpx error of this exchange as a named ingest failure."""
        if isinstance(exc, httpx.TimeoutException) and self.budget.left() < DEADLINE_SLACK_S:
            return self.timed_out()
        return translate_http_error(self.current, exc)

    def unusable_url(self, exc: Exception) -> IngestPermanent:
        """A URL that cannot be parsed, IDNA-encoded or resolved as a name."""
        return IngestPermanent("bad_url", f"cannot fetch {self.current[:200]}: {exc}")

    def timed_out(self) -> IngestTransient:
        return IngestTransient(
            "timeout", f"total timeout {self.limits.total_s:g}s fetching {self.current}"
        )

    def _append(self, piece: bytes) -> None:
        self._body += piece
        if len(self._body) > self.limits.max_bytes:
            raise self._too_large()

    def _too_large(self) -> IngestPermanent:
        return IngestPermanent(
            "too_large", f"response larger than {self.limits.max_bytes} bytes: {self.current}"
        )

    def _next_hop(self, response: httpx.Response) -> str:
        location = response.headers.get("location")
        if not location:
            raise IngestPermanent(
                "bad_redirect", f"HTTP {response.status_code} without Location from {self.current}"
            )
        try:
            target = urljoin(self.current, location.strip())
            check_url(target)
        except (ValueError, IngestPermanent):
            raise IngestPermanent(
                "bad_redirect", f"unusable Location {location[:200]!r} from {self.current}"
            ) from None
        if target in self.chain:
            raise IngestPermanent(
                "redirect_loop", f"redirect loop: {' -> '.join([*self.chain, target])}"
            )
        if len(self.chain) > self.limits.max_redirects:
            raise IngestPermanent(
                "too_many_redirects",
                f"more than {self.limits.max_redirects} redirects from {self.chain[0]}",
            )
        return target

    def _page(self, body: bytes) -> Page:
        assert self._response is not None
        response = self._response
        return Page(self.chain[0], self.current, response.status_code,
                    {k.lower(): v for k, v in response.headers.items()}, body, self.chain[1:],
                    int((time.monotonic() - self.started) * 1000))


def _require_guarded(client: httpx.Client | httpx.AsyncClient) -> None:
    if not is_guarded(client):
        # a plain client would connect without the guard and without the deadline
        raise TypeError("ingest.httpget needs a client from ingest.transport.new_(async_)client")


def get(client: httpx.Client, url: str, limits: Limits, headers: dict[str, str] | None = None,
        inspect: Inspect | None = None) -> Page:
    """GET ``url`` within ``limits``; raises ``IngestPermanent``/``IngestTransient``."""
    _require_guarded(client)
    exchange = Exchange(url, limits, headers, inspect)
    with exchange.budget.active():
        try:
            while True:
                with client.stream(**exchange.request()) as response:
                    if exchange.on_response(response):
                        continue
                    for chunk in response.iter_raw():
                        exchange.on_chunk(chunk)
                    return exchange.finish()
        except httpx.HTTPError as exc:
            raise exchange.failure(exc) from None
        except (httpx.InvalidURL, ValueError) as exc:  # UnicodeError (IDNA) is a ValueError
            raise exchange.unusable_url(exc) from None


async def aget(client: httpx.AsyncClient, url: str, limits: Limits,
               headers: dict[str, str] | None = None, inspect: Inspect | None = None) -> Page:
    """The async ``get`` (the poller's path), the same ``Exchange`` driven by await."""
    _require_guarded(client)
    exchange = Exchange(url, limits, headers, inspect)
    with exchange.budget.active():
        try:
            # a backstop only: the transport already holds every socket operation to the budget
            async with asyncio.timeout(limits.total_s + 1):
                while True:
                    async with client.stream(**exchange.request()) as response:
                        if exchange.on_response(response):
                            continue
                        async for chunk in response.aiter_raw():
                            exchange.on_chunk(chunk)
                        return exchange.finish()
        except TimeoutError:
            raise exchange.timed_out() from None
        except httpx.HTTPError as exc:
            raise exchange.failure(exc) from None
        except (httpx.InvalidURL, ValueError) as exc:
            raise exchange.unusable_url(exc) from None
