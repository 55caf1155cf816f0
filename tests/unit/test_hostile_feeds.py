"""Hostile feeds from a raw-socket server on 127.0.0.1, polled as the poller does.

Each case asserts the named outcome, a time bound and, where the feed tries to
make us expand or hold data, a memory bound (tracemalloc peak).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingest.feeds import FeedSpec
from ingest.polling import FeedPoller, PollResult
from ingest.transport import new_async_client
from pipeline.settings import Settings
from tests.support.config import local_settings
from tests.support.hostile import Conn, Elapsed, RawServer, respond

RSS = "application/rss+xml"
REPO_ROOT = Path(__file__).resolve().parents[2]
MEMORY_MARGIN = 64_000_000


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(routes: dict[str, bytes], content_type: str = RSS) -> RawServer:
        def behave(conn: Conn, path: str) -> None:
            if path in routes:
                respond(conn, routes[path], headers={"Content-Type": content_type})
            else:
                respond(conn, b"not found", "404 Not Found")

        servers.append(RawServer(behave))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def poll_measured(url: str, settings: Settings | None = None) -> tuple[PollResult, float, int]:
    """The poll result, seconds taken and peak bytes allocated meanwhile."""

    async def go() -> PollResult:
        async with new_async_client() as client:
            return await FeedPoller(settings or local_settings(), client).poll(FeedSpec(url=url), None)

    tracemalloc.start()
    try:
        with Elapsed() as elapsed:
            result = asyncio.run(go())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, elapsed.s, peak


def rss(items: bytes, doctype: bytes = b"") -> bytes:
    return (b'<?xml version="1.0" encoding="utf-8"?>' + doctype
            + b'<rss version="2.0"><channel><title>Hostile</title>' + items + b"</channel></rss>")


def item(title: bytes, link: bytes, date: bytes = b"Mon, 06 Jan 2025 10:00:00 GMT") -> bytes:
    return (b"<item><title>" + title + b"</title><link>" + link + b"</link><pubDate>" + date
            + b"</pubDate></item>")


def test_billion_laughs_is_not_expanded(serve: Callable[..., RawServer]) -> None:
    entities = b'<!ENTITY lol "lol">' + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10))
    data = rss(item(b"&lol9;", b"http://example.org/a"), b"<!DOCTYPE rss [" + entities + b"]>")
    server = serve({"/feed.xml": data})
    result, seconds, peak = poll_measured(server.url("/feed.xml"))
    assert result.outcome == "new" and len(result.stories) == 1
    title = result.stories[0].feed.title if result.stories[0].feed else None
    assert title is None or len(title) < 100  # never a billion "lol"s
    assert seconds < 5 and peak < MEMORY_MARGIN


def test_external_entities_are_never_fetched_or_read(serve: Callable[..., RawServer]) -> None:
    routes: dict[str, bytes] = {"/secret": b"TOPSECRET"}
    server = serve(routes)
    doctype = (b'<!DOCTYPE rss [<!ENTITY file SYSTEM "file:///etc/passwd">'
               b'<!ENTITY web SYSTEM "' + server.url("/secret").encode() + b'">]>')
    routes["/feed.xml"] = rss(item(b"&file;&web;", b"http://example.org/a"), doctype)
    result, seconds, _ = poll_measured(server.url("/feed.xml"))
    assert result.outcome == "new"
    dumped = result.stories[0].model_dump_json()
    assert "root:" not in dumped and "TOPSECRET" not in dumped
    assert server.paths == ["/feed.xml"]
    assert seconds < 5


def test_nul_bytes_never_reach_a_story(serve: Callable[..., RawServer]) -> None:
    data = rss(item(b"Nul\x00led title", b"http://example.org/a")
               + item(b"link with a nul", b"http://example.org/\x00b")
               + item(b"Fine", b"http://example.org/c"))
    result, _, _ = poll_measured(serve({"/feed.xml": data}).url("/feed.xml"))
    assert result.outcome == "new"
    assert [s.url for s in result.stories] == ["http://example.org/a", "http://example.org/c"]
    assert all("\x00" not in s.model_dump_json() for s in result.stories)
    assert result.state.health.entries_without_link == 1


def test_invalid_utf8_is_read_with_a_problem_recorded(serve: Callable[..., RawServer]) -> None:
    data = rss(item(b"Caf\xe9 \xff\xfe", b"http://example.org/a") + item(b"Fine", b"http://example.org/b"))
    result, _, _ = poll_measured(serve({"/feed.xml": data}).url("/feed.xml"))
    assert result.outcome == "new" and len(result.stories) == 2
    assert result.state.health.last_problem is not None


def test_only_nul_bytes_is_a_named_failure(serve: Callable[..., RawServer]) -> None:
    result, _, _ = poll_measured(serve({"/feed.xml": b"\x00" * 10_000}).url("/feed.xml"))
    assert result.outcome == "error" and result.state.health.last_error_kind == "malformed"


def test_an_html_page_served_as_a_feed(serve: Callable[..., RawServer]) -> None:
    server = serve({"/feed.xml": b"<html><body><p>Welcome</p></body></html>"}, "text/html")
    result, _, _ = poll_measured(server.url("/feed.xml"))
    assert result.state.health.last_error_kind == "not_a_feed"


# the 20 MB poll runs in a fresh interpreter: its peak RSS is then the poll's own, and
# tracemalloc (ten times slower on 156,000 small allocations) does not distort the time
POLL_IN_A_PROCESS = """
import asyncio, json, sys, time
from ingest.feeds import FeedSpec
from ingest.polling import FeedPoller
from ingest.transport import new_async_client
from tests.support.config import local_settings

settings = local_settings(**json.loads(sys.argv[2]))

def peak_rss():  # VmHWM: getrusage's ru_maxrss is not kept current on every kernel
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024

async def go():
    async with new_async_client() as client:
        return await FeedPoller(settings, client).poll(FeedSpec(url=sys.argv[1]), None)

before = peak_rss()
started = time.monotonic()
result = asyncio.run(go())
print(json.dumps({
    "seconds": time.monotonic() - started, "outcome": result.outcome,
    "grown_bytes": peak_rss() - before,
    "urls": [s.url for s in result.stories], "problem": result.state.health.last_problem,
}))
"""


def test_a_20_mb_feed_gives_its_newest_entries_within_bounds(serve: Callable[..., RawServer]) -> None:
    # oldest first in the document, so "the first N" would be the wrong N
    count = 156_000
    items = b"".join(
        item(b"Story %d" % i, b"http://example.org/s%d" % i,
             b"Mon, %02d Jan %d %02d:%02d:00 GMT" % (1 + i // 86400 % 28, 2000 + i // 2_419_200,
                                                    i // 3600 % 24, i // 60 % 60))
        for i in range(count))
    data = rss(items)
    assert 19_000_000 < len(data) < 20_000_000
    server = serve({"/big.xml": data})
    overrides = {"total_timeout_s": 20, "feed_max_entries": 300}
    run = subprocess.run([sys.executable, "-c", POLL_IN_A_PROCESS, server.url("/big.xml"),
                          json.dumps(overrides)], capture_output=True, text=True, timeout=120,
                         cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["outcome"] == "new"
    assert set(report["urls"]) == {f"http://example.org/s{i}" for i in range(count - 300, count)}
    assert "newest" in report["problem"]
    assert report["seconds"] < 20  # it took 74 s before feeds were trimmed
    assert 0 < report["grown_bytes"] < local_settings().max_feed_bytes + MEMORY_MARGIN


def test_one_giant_entry_is_left_out_and_the_rest_kept(serve: Callable[..., RawServer]) -> None:
    giant = item(b"Giant", b"http://example.org/giant").replace(
        b"</title>", b"</title><description>" + b"&lt;b&gt;x&lt;/b&gt; " * 300_000 + b"</description>")
    data = rss(item(b"Small", b"http://example.org/small") + giant)
    result, seconds, _ = poll_measured(serve({"/feed.xml": data}).url("/feed.xml"))
    assert [s.url for s in result.stories] == ["http://example.org/small"]
    assert seconds < 5
