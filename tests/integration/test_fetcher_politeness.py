"""The fetcher stage on the real broker while hosts make it wait (issue 9, items 4 and 6).

Pages are real bytes from local HTTP servers on two loopback addresses (two
hosts, 127.0.0.1 and 127.0.0.2). A robots.txt Crawl-delay and many queued
entries must not get the consumer evicted from its group (no rebalance, no
page fetched twice), and the other host's entries keep flowing meanwhile. The
scale is shrunk by settings, the mechanism is the one of production: Crawl-delay
2 s against a max_poll_interval of 4 s stands for 30 s against 300 s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from itertools import pairwise

import pytest
from kafka import KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.partitioner.default import murmur2

from ingest.fetch import PageFetcher
from ingest.fetcher import make_processor
from pipeline.delivery import Deliveries
from pipeline.kafka_io import ARTICLES, DLQ, ENTRIES, make_consumer, make_producer, read_to_end
from pipeline.kafka_io import uncommitted as group_uncommitted
from pipeline.partition import host_partition, send_by_host
from pipeline.scheduled import HostScheduledRunner
from pipeline.settings import Settings
from pipeline.stage import KafkaTopicSink
from pipeline.story import Story
from tests.support.pages import article_page
from tests.support.site import LocalSite, SeenRequest

pytestmark = pytest.mark.integration


@pytest.fixture
def other_site() -> Iterator[LocalSite]:
    """A second host: a server on 127.0.0.2 (another loopback address, another host name)."""
    server = LocalSite("127.0.0.2")
    yield server
    server.close()


def add_pages(site: LocalSite, host: str, prefix: str, count: int) -> list[str]:
    urls = []
    for i in range(count):
        path = f"/{prefix}/{i}"
        site.add(path, article_page(f"{prefix} story {i}"))
        urls.append(f"http://{host}:{site.port}{path}")
    return urls


def queue_entries(settings: Settings, urls: list[str]) -> None:
    """As the poller does: key = story id, partition by host."""
    producer: KafkaProducer = make_producer(settings)
    try:
        for url in urls:
            send_by_host(producer, settings.topic(ENTRIES), Story.from_link(url, source="Local"))
        producer.flush()
    finally:
        producer.close()


def page_requests(site: LocalSite, prefix: str) -> list[SeenRequest]:
    return sorted((r for r in site.requests if r.path.startswith(f"/{prefix}/")), key=lambda r: r.at)


def run_fetcher(settings: Settings, stop_after_s: float | None = None) -> HostScheduledRunner:
    fetcher = PageFetcher(settings)
    producer = make_producer(settings)
    runner = HostScheduledRunner(
        "fetcher", make_processor(fetcher, None), settings.topic(ENTRIES),
        KafkaTopicSink(producer, settings.topic(ARTICLES)),
        settings=settings, consumer=make_consumer(settings, "fetcher"), producer=producer,
        concurrency=settings.fetch_concurrency,
        slot_of=lambda story: fetcher.politeness.host_key(story.url),
        ready_at=fetcher.politeness.due_at, max_buffered=settings.fetch_max_waiting,
    )
    # as SIGTERM would; without stop_after_s, only a safety net (a test fails, never hangs)
    timer = threading.Timer(stop_after_s or 150, runner.stop.set)
    timer.start()
    try:
        runner.run(idle_exit_after=4)
    finally:
        timer.cancel()
        fetcher.close()
    return runner


def assert_spaced(hits: list[SeenRequest], delay_s: float) -> None:
    """Requests ``delay_s`` apart, seen at the server: on average at least 90 % of it, and
    never closer than half (two clocks, or none, would start requests together)."""
    gaps = [b.at - a.at for a, b in pairwise(hits)]
    assert min(gaps) >= delay_s / 2, [round(g, 2) for g in gaps]
    assert (hits[-1].at - hits[0].at) / len(gaps) >= 0.9 * delay_s, [round(g, 2) for g in gaps]


def assert_stayed_in_group(runner: HostScheduledRunner, started: float) -> None:
    """Never evicted, and no rebalance once fetching was under way. (A fresh group may
    rejoin once within its first second, when the new topic's metadata settles; an
    eviction comes max_poll_interval_ms after the last poll.)"""
    assert runner.lost == 0, "the consumer was evicted from its group"
    assert runner.assigned_at and max(runner.assigned_at) < started + 2.5, (
        f"rebalanced during the run: {[round(t - started, 1) for t in runner.assigned_at]}")


def uncommitted(settings: Settings) -> int:
    """Entries the fetcher group has not committed (0 = everything committed)."""
    return group_uncommitted(settings, settings.topic("fetcher"), settings.topic(ENTRIES))


def test_a_crawl_delay_longer_than_the_poll_interval_allows_causes_no_rebalance_nor_refetch(
    site: LocalSite, other_site: LocalSite, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(respect_robots="true", max_poll_interval_ms=4000,
                             fetch_concurrency=2, batch_size=100)
    site.add("/robots.txt", "User-agent: *\nCrawl-delay: 2\n", content_type="text/plain")
    slow = add_pages(site, "127.0.0.1", "slow", 8)  # 14 s of Crawl-delay: 3.5 poll intervals
    fast = add_pages(other_site, "127.0.0.2", "fast", 8)
    queue_entries(settings, slow + fast)

    started = time.time()
    runner = run_fetcher(settings)

    slow_hits, fast_hits = page_requests(site, "slow"), page_requests(other_site, "fast")
    # no page fetched twice, none missed: the batch was never redelivered
    assert sorted(r.path for r in slow_hits) == sorted(f"/slow/{i}" for i in range(8))
    assert sorted(r.path for r in fast_hits) == sorted(f"/fast/{i}" for i in range(8))
    assert_stayed_in_group(runner, started)
    # the publisher's Crawl-delay held: 2 s asked; generous bounds, since the times are
    # taken at the server, after its own accept and thread start (seconds under load)
    assert_spaced(slow_hits, 2.0)
    # while the slow host waited, the other host's entries all went through
    assert max(r.at for r in fast_hits) < slow_hits[1].at
    articles = read_to_end(settings, settings.topic(ARTICLES), "test-reader")
    assert sorted(Story.from_bytes(r.value).url for r in articles) == sorted(slow + fast)
    assert uncommitted(settings) == 0


def test_a_full_waiting_room_pauses_the_partitions_and_still_fetches_each_entry_once(
    site: LocalSite, make_settings: Callable[..., Settings]
) -> None:
    # small batches and room for 3 held entries: the consumer pauses its partitions most
    # of the time, keeps polling (max_poll_interval 3 s, 11 s of Crawl-delay) and resumes
    settings = make_settings(respect_robots="true", max_poll_interval_ms=3000,
                             fetch_concurrency=2, batch_size=2, fetch_max_waiting=3)
    site.add("/robots.txt", "User-agent: *\nCrawl-delay: 1\n", content_type="text/plain")
    slow = add_pages(site, "127.0.0.1", "slow", 12)
    queue_entries(settings, slow)

    started = time.time()
    runner = run_fetcher(settings)

    hits = page_requests(site, "slow")
    assert sorted(r.path for r in hits) == sorted(f"/slow/{i}" for i in range(12))
    assert_stayed_in_group(runner, started)
    assert_spaced(hits, 1.0)
    assert uncommitted(settings) == 0


def test_a_restart_fetches_nothing_again_that_was_done_behind_a_waiting_entry(
    site: LocalSite, other_site: LocalSite, make_settings: Callable[..., Settings]
) -> None:
    # one partition: the other host's entries queue behind the slow host's, finish first,
    # and cannot be covered by the committed offset while the slow host's entries wait
    settings = make_settings(respect_robots="true", fetch_concurrency=2, partitions=1)
    site.add("/robots.txt", "User-agent: *\nCrawl-delay: 2\n", content_type="text/plain")
    slow = add_pages(site, "127.0.0.1", "slow", 4)
    fast = add_pages(other_site, "127.0.0.2", "fast", 6)
    queue_entries(settings, slow + fast)

    first = run_fetcher(settings, stop_after_s=3.5)  # stopped while the slow host waits
    assert 1 <= len(page_requests(site, "slow")) < 4
    assert len(page_requests(other_site, "fast")) == 6
    second = run_fetcher(settings)  # same group: a restart

    assert sorted(r.path for r in page_requests(site, "slow")) == [f"/slow/{i}" for i in range(4)]
    assert sorted(r.path for r in page_requests(other_site, "fast")) == [f"/fast/{i}" for i in range(6)]
    assert second.skipped == 6  # delivered by the first run, known from its commit metadata
    assert first.lost == second.lost == 0
    articles = read_to_end(settings, settings.topic(ARTICLES), "test-reader")
    assert sorted(Story.from_bytes(r.value).url for r in articles) == sorted(slow + fast)
    assert uncommitted(settings) == 0


def test_payloads_sent_back_to_entries_land_on_their_hosts_partition(
    make_settings: Callable[..., Settings]
) -> None:
    """The retrier and `dlq replay` send a payload back with the original key: through
    ``Deliveries`` it goes to the host's partition, not to the key's."""
    settings = make_settings(partitions=4)
    stories = [Story.from_link(f"https://site{i}.example.com/a/{i}", source="S") for i in range(12)]
    by_key = [s for s in stories
              if (murmur2(s.id.encode()) & 0x7FFFFFFF) % 4 != host_partition(s.url, 4)]
    assert by_key, "every story's key happens to hash to its host's partition"
    producer = make_producer(settings)
    deliveries = Deliveries()
    try:
        for story in stories:
            origin = ConsumerRecord(**(dict.fromkeys(ConsumerRecord._fields) | {
                "topic": settings.topic(DLQ), "partition": 0, "offset": 0,
                "key": story.id.encode(), "headers": []}))
            deliveries.send(producer, origin, settings.topic(ENTRIES), story.to_bytes(), [])
        producer.flush()
        assert deliveries.undelivered() == {}
    finally:
        producer.close()
    records = list(read_to_end(settings, settings.topic(ENTRIES), "test-reader"))
    assert len(records) == len(stories)
    for record in records:
        story = Story.from_bytes(record.value)
        assert record.key == story.id.encode()
        assert record.partition == host_partition(story.url, 4)
