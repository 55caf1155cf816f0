"""Prometheus metrics read from the registry after driving the fetch processor and the poller
on real bytes from a local server; the README lists every metric name."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import pipeline.metrics as metrics
from ingest.feeds import FeedSpec
from ingest.fetch import PageFetcher
from ingest.fetcher import make_processor
from ingest.polling import FeedPoller
from ingest.transport import new_async_client
from pipeline.errors import PermanentError, TransientError
from pipeline.story import FeedEntry, Story
from tests.support.config import local_settings
from tests.support.site import LocalSite
from tests.unit.test_ingest_fetch import article
from tests.unit.test_ingest_poll import rss

REPO = Path(__file__).resolve().parents[2]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def story(url: str) -> Story:
    return Story.from_link(url, feed=FeedEntry(feed_url="http://feeds.test/rss", link=url))


def test_fetch_outcomes_are_counted_by_reason(site: LocalSite) -> None:
    site.add("/ok", article())
    site.add("/gone", "no", status=404)
    site.add("/busy", "later", status=503)
    site.add("/doc.pdf", b"%PDF-1.4", content_type="application/pdf")
    before = {k: value("newswatch_fetch_total", outcome=k)
              for k in ("ok", "http_404", "http_503", "not_html")}
    fetcher = PageFetcher(local_settings())
    process = make_processor(fetcher, None)
    try:
        process(story(site.url("/ok")))
        for path, error in (("/gone", PermanentError), ("/busy", TransientError),
                            ("/doc.pdf", PermanentError)):
            with pytest.raises(error):
                process(story(site.url(path)))
        process(story(site.url("/ok") + "?again=1"))
    finally:
        fetcher.close()
    after = {k: value("newswatch_fetch_total", outcome=k) for k in before}
    assert {k: after[k] - before[k] for k in before} == {
        "ok": 2, "http_404": 1, "http_503": 1, "not_html": 1,
    }


def test_poll_outcomes_stories_and_latency_are_counted(site: LocalSite) -> None:
    site.add("/feed.xml", rss(site, ["/a", "/b"]), content_type="application/rss+xml",
             headers={"ETag": '"v1"'})
    site.add("/down.xml", "oops", status=500)
    site.add("/junk", "<html><body>not a feed at all</body></html>")
    keys = [("new", "ok"), ("unchanged", "ok"), ("error", "http_500"), ("error", "not_a_feed")]
    before = {k: value("newswatch_polls_total", outcome=k[0], reason=k[1]) for k in keys}
    polls_before = value("newswatch_poll_seconds_count")

    async def go() -> None:
        async with new_async_client() as client:
            poller = FeedPoller(local_settings(), client)
            first = await poller.poll(FeedSpec(url=site.url("/feed.xml")), None)
            assert first.outcome == "new"
            # same body again, validators dropped: byte-identical, so "unchanged"
            await poller.poll(FeedSpec(url=site.url("/feed.xml")), None)
            await poller.poll(FeedSpec(url=site.url("/down.xml")), None)
            await poller.poll(FeedSpec(url=site.url("/junk")), None)

    asyncio.run(go())
    after = {k: value("newswatch_polls_total", outcome=k[0], reason=k[1]) for k in keys}
    assert {k: after[k] - before[k] for k in keys} == {
        ("new", "ok"): 1, ("unchanged", "ok"): 1, ("error", "http_500"): 1,
        ("error", "not_a_feed"): 1,
    }
    assert value("newswatch_poll_seconds_count") - polls_before == 4


def test_retries_and_processing_time_are_recorded_per_stage() -> None:
    before = value("newswatch_retries_total", stage="unit-stage")
    count = value("newswatch_process_seconds_count", stage="unit-stage")
    metrics.observe_record("unit-stage", attempts=3, seconds=0.2)
    metrics.observe_record("unit-stage", attempts=1, seconds=0.01)
    assert value("newswatch_retries_total", stage="unit-stage") - before == 2
    assert value("newswatch_process_seconds_count", stage="unit-stage") - count == 2


def test_readme_lists_every_metric() -> None:
    names = set()
    for obj in vars(metrics).values():
        if isinstance(obj, metrics.Counter | metrics.Gauge | metrics.Histogram):
            names.add(obj._name + ("_total" if isinstance(obj, metrics.Counter) else ""))
    assert len(names) >= 10  # the discovery above found the module's metrics
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`(newswatch_[a-z_]+)`", readme))
    assert names - listed == set()
    assert listed - names == set()
