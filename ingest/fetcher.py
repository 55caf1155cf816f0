"""The fetcher stage: ``news.entries`` -> HTTP GET + trafilatura -> ``news.articles``.

Raw HTML stays in this process; only the extracted ``Story`` moves on. Each
outcome per feed (extracted, or the permanent failure's kind) is published
to ``news.feed-health`` so a feed's extraction failure rate can be charted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from kafka import KafkaProducer

from ingest.errors import error_kind
from ingest.extract import extract_content
from ingest.fetch import PageFetcher
from ingest.state import state_key
from pipeline.errors import PermanentError
from pipeline.kafka_io import ARTICLES, ENTRIES, FEED_HEALTH, make_producer
from pipeline.metrics import FETCHES
from pipeline.scheduled import run_scheduled_stage
from pipeline.settings import Settings
from pipeline.stage import KafkaTopicSink
from pipeline.story import FetchResult, Story, utcnow

logger = logging.getLogger(__name__)

def fetch_story(fetcher: PageFetcher, story: Story) -> Story:
    """Fetch and extract ``story`` with ``fetcher``; failures raise with a reason."""
    fetched = fetcher.fetch(story.url)
    page = fetched.page
    content = extract_content(fetched.html, page.final_url, story.feed)
    return story.model_copy(
        update={
            "fetch": FetchResult(
                final_url=page.final_url, status=page.status,
                content_type=page.headers.get("content-type"), charset=fetched.charset,
                bytes=len(page.body), redirects=page.redirects, elapsed_ms=page.elapsed_ms,
            ),
            "content": content,
        }
    )


class ExtractionReporter:
    """Publishes one extraction outcome per story to ``news.feed-health`` (best effort)."""

    def __init__(self, producer: KafkaProducer, settings: Settings) -> None:
        self.producer = producer
        self.topic = settings.topic(FEED_HEALTH)

    def report(self, story: Story, error: BaseException | None) -> None:
        if story.feed is None:
            return
        event = {
            "kind": "extraction",
            "feed_url": story.feed.feed_url,
            "feed_name": story.feed.feed_name,
            "story_id": story.id,
            "ok": error is None,
            "error_kind": error_kind(error) if error else None,
            "error": str(error)[:500] if error else None,
            "@timestamp": utcnow().isoformat(),
        }
        self.producer.send(self.topic, key=state_key(story.feed.feed_url).encode(),
                           value=json.dumps(event).encode())


def make_processor(
    fetcher: PageFetcher, reporter: ExtractionReporter | None
) -> Callable[[Story], Story]:
    """``fetch_story`` bound to ``fetcher``, reporting permanent outcomes per feed;
    every attempt is counted in ``newswatch_fetch_total`` by outcome."""

    def process(story: Story) -> Story:
        try:
            result = fetch_story(fetcher, story)
        except PermanentError as exc:
            FETCHES.labels(error_kind(exc)).inc()
            if reporter:
                reporter.report(story, exc)
            raise
        except Exception as exc:  # transient: the runner retries it, each attempt is counted
            FETCHES.labels(error_kind(exc)).inc()
            raise
        FETCHES.labels("ok").inc()
        if reporter:
            reporter.report(story, None)
        return result

    return process


def run(settings: Settings) -> None:
    """Run the fetcher stage until SIGTERM."""
    fetcher = PageFetcher(settings)
    health_producer = make_producer(settings)
    reporter = ExtractionReporter(health_producer, settings)
    try:
        # per-host scheduling: no worker sleeps on a host's delay, the consumer keeps
        # polling however long a host makes its entries wait (ingest/README.md)
        run_scheduled_stage(
            "fetcher", make_processor(fetcher, reporter), ENTRIES,
            lambda producer: KafkaTopicSink(producer, settings.topic(ARTICLES)),
            settings, concurrency=settings.fetch_concurrency,
            slot_of=lambda story: fetcher.politeness.host_key(story.url),
            ready_at=fetcher.politeness.due_at,
        )
    finally:
        fetcher.close()
        health_producer.flush()
        health_producer.close(timeout=30)
