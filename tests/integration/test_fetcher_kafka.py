"""The fetcher stage on the real Kafka broker: articles out, failures on the DLQ."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from kafka import KafkaProducer

from ingest.fetch import PageFetcher
from ingest.fetcher import ExtractionReporter, make_processor
from pipeline.kafka_io import ARTICLES, DLQ, ENTRIES, FEED_HEALTH, make_consumer, make_producer, read_to_end
from pipeline.retry import retry_topic
from pipeline.settings import Settings
from pipeline.stage import KafkaTopicSink, StageRunner
from pipeline.story import FeedEntry, Story
from tests.support.hostile import Conn, RawServer, respond
from tests.support.site import LocalSite

pytestmark = pytest.mark.integration

TEXT = (
    "<p>The regional court heard on Monday that the shipment of turbines had been delayed for "
    "months by a dispute over customs paperwork between the two ports.</p>"
    "<p>Engineers said the delay had pushed back the opening of the wind farm until spring, "
    "and that the contractor would ask for compensation from the shipping company.</p>"
)


def read_all(settings: Settings, logical: str) -> list[tuple[bytes | None, bytes | None, dict]]:
    """Every record on the topic, from the beginning."""
    records = read_to_end(settings, settings.topic(logical), "test-reader")
    return [(r.key, r.value, dict(r.headers)) for r in records]


def test_fetcher_stage_forwards_articles_and_dead_letters_failures(
    site: LocalSite, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(respect_robots="false")
    site.add("/good", f"<html><head><title>Turbines delayed</title></head><body>"
                      f"<nav>Home World</nav><article><h1>Turbines delayed</h1>{TEXT}</article>"
                      f"<footer>Contact us</footer></body></html>")
    site.add("/empty", "<html><body><nav><a href='/'>Home</a></nav></body></html>")
    site.add("/file.pdf", b"%PDF-1.7", content_type="application/pdf")
    site.add("/gone", "gone", status=410)
    producer: KafkaProducer = make_producer(settings)
    feed_url = site.url("/feed.xml")
    for path in ("/good", "/empty", "/file.pdf", "/gone"):
        story = Story.from_link(site.url(path), source="Local",
                                feed=FeedEntry(feed_url=feed_url, link=site.url(path)))
        producer.send(settings.topic(ENTRIES), key=story.id.encode(), value=story.to_bytes())
    producer.send(settings.topic(ENTRIES), key=b"junk", value=b"{not json")
    producer.flush()

    fetcher = PageFetcher(settings)
    health_producer = make_producer(settings)
    stage_producer = make_producer(settings)
    runner = StageRunner(
        "fetcher", make_processor(fetcher, ExtractionReporter(health_producer, settings)),
        settings.topic(ENTRIES), KafkaTopicSink(stage_producer, settings.topic(ARTICLES)),
        settings=settings, consumer=make_consumer(settings, "fetcher"),
        producer=stage_producer, concurrency=2,
    )
    runner.run(idle_exit_after=3)
    health_producer.flush()
    fetcher.close()

    articles = [Story.from_bytes(v) for _, v, _ in read_all(settings, ARTICLES)]
    assert [a.url for a in articles] == [site.url("/good")]
    good = articles[0]
    assert good.content is not None and "compensation from the shipping company" in good.text
    assert "Contact us" not in good.text and "<" not in good.text
    assert good.fetch is not None and good.fetch.status == 200

    dead = {(k or b"").decode(): h["x-error"].decode() for k, _, h in read_all(settings, DLQ)}
    by_url = {Story.from_link(site.url(p)).id: p for p in ("/empty", "/file.pdf", "/gone")}
    reasons = {by_url.get(k, k): v for k, v in dead.items()}
    assert reasons["/empty"] == f"no article text extracted from {site.url('/empty')}"
    assert reasons["/file.pdf"].startswith("not HTML: application/pdf")
    assert reasons["/gone"].startswith("HTTP 410")
    assert reasons["junk"].startswith("undecodable story")

    events = [json.loads(v or b"{}") for _, v, _ in read_all(settings, FEED_HEALTH)]
    outcomes = sorted((e["ok"], e["error_kind"]) for e in events if e["kind"] == "extraction")
    assert outcomes == [(False, "http_410"), (False, "no_text"), (False, "not_html"), (True, None)]


def test_a_dripping_host_is_cut_off_while_other_hosts_are_fetched(
    site: LocalSite, make_settings: Callable[..., Settings]
) -> None:
    def drip(conn: Conn, path: str) -> None:
        if path == "/robots.txt":
            respond(conn, b"", "404 Not Found")
            return
        conn.send(b"HTTP/1.1 200 OK\r\n")
        conn.drip(b"X-Slow: " + b"a" * 1000, 0.5)  # forever, as far as a 4 s deadline goes

    slow = RawServer(drip)
    settings = make_settings(total_timeout_s=4, read_timeout_s=2, max_attempts=2)
    page = (f"<html><head><title>Turbines delayed</title></head><body><article>{TEXT}"
            f"</article></body></html>")
    good = [f"/good{i}" for i in range(5)]
    for path in good:
        site.add(path, page)
    urls = [slow.url("/slow"), *(site.url(p) for p in good)]
    producer: KafkaProducer = make_producer(settings)
    for url in urls:
        story = Story.from_link(url, feed=FeedEntry(feed_url=site.url("/feed.xml"), link=url))
        producer.send(settings.topic(ENTRIES), key=story.id.encode(), value=story.to_bytes())
    producer.flush()

    fetcher = PageFetcher(settings)
    stage_producer = make_producer(settings)
    runner = StageRunner(
        "fetcher", make_processor(fetcher, None), settings.topic(ENTRIES),
        KafkaTopicSink(stage_producer, settings.topic(ARTICLES)), settings=settings,
        consumer=make_consumer(settings, "fetcher"), producer=stage_producer, concurrency=2,
    )
    started = time.monotonic()
    try:
        runner.run(idle_exit_after=3)
    finally:
        fetcher.close()
        slow.close()
    elapsed = time.monotonic() - started

    assert sorted(Story.from_bytes(v).url for _, v, _ in read_all(settings, ARTICLES)) == sorted(
        site.url(p) for p in good)
    # a timeout is transient: after its quick attempts it waits in the first retry tier
    # (pipeline/retry.py) rather than the dead-letter topic
    assert read_all(settings, DLQ) == []
    later = [h["x-error"].decode() for _, _, h in read_all(settings, retry_topic(0))]
    assert len(later) == 1 and later[0].startswith("total timeout 4s fetching")
    # two attempts of at most 4 s each, plus the idle exit and Kafka start-up
    assert elapsed < 2 * 4 + 3 + 20
