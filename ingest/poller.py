"""The poller stage: ``newswatch run poller``.

Loads the feed list, keeps this replica's shard, restores state from
``news.feed-state``, then polls due feeds concurrently (asyncio, global and
per-host limits). Results are committed in groups: the new entries are
produced to ``news.entries`` and flushed, and only then are the feeds' states
(and health events) written. ``NEWSWATCH_POLLER_ONCE=true`` polls every feed
once and exits; otherwise it runs until SIGTERM, finishing the current group.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from kafka import KafkaProducer

from ingest.feeds import FeedSpec, load_feeds
from ingest.polling import FeedPoller, PollResult
from ingest.state import FeedState, in_shard, load_states, send_state, state_key
from ingest.transport import new_async_client
from pipeline.health import clear_ready, mark_ready
from pipeline.kafka_io import ENTRIES, make_producer
from pipeline.metrics import POLL_STORIES, POLL_UNDELIVERED
from pipeline.partition import send_by_host
from pipeline.settings import Settings
from pipeline.stage import StopFlag
from pipeline.story import utcnow

logger = logging.getLogger(__name__)

COMMIT_EVERY = 500  # feeds per commit group
COMMIT_AFTER_S = 2.0  # or this long after the group's first result
IDLE_SLEEP_MAX_S = 5.0


class PollerLoop:
    """Schedules feeds and makes each poll's outcome durable."""

    def __init__(self, settings: Settings, specs: list[FeedSpec], states: dict[str, FeedState],
                 producer: KafkaProducer, stop: StopFlag | None = None) -> None:
        self.settings = settings
        self.specs = specs
        self.states = states  # keyed by state_key(url)
        self.producer = producer
        self.stop = stop or StopFlag()
        self.counts: Counter[str] = Counter()
        self.entries_topic = settings.topic(ENTRIES)

    def commit(self, poller: FeedPoller, results: list[PollResult]) -> None:
        """Entries first (produce + flush), then state and health for the delivered feeds."""
        sent = []
        for result in results:
            # keyed by story id, partitioned by host: one fetcher replica owns a host
            futures = [send_by_host(self.producer, self.entries_topic, s) for s in result.stories]
            sent.append((result, futures))
        self.producer.flush()
        for result, futures in sent:
            failed = [f for f in futures if f.failed()]
            if failed:
                # state is not saved: the entries are emitted again on the next poll
                logger.error("feed %s: %d of %d entries not delivered (%s); will retry",
                             result.spec.url, len(failed), len(futures), failed[0].exception)
                poller.forget(result.stories)
                self.counts["undelivered"] += 1
                POLL_UNDELIVERED.inc()
                continue
            self.states[state_key(result.spec.url)] = result.state
            send_state(self.producer, self.settings, result.state)
            self.counts[result.outcome] += 1
            self.counts["stories"] += len(result.stories)
            POLL_STORIES.inc(len(result.stories))
        self.producer.flush()

    async def poll_round(self, poller: FeedPoller, specs: list[FeedSpec]) -> None:
        tasks = [asyncio.create_task(poller.poll(s, self.states.get(state_key(s.url))))
                 for s in specs]
        pending: list[PollResult] = []
        group_started = 0.0
        for next_done in asyncio.as_completed(tasks):
            pending.append(await next_done)
            if len(pending) == 1:
                group_started = time.monotonic()
            if len(pending) >= COMMIT_EVERY or time.monotonic() - group_started > COMMIT_AFTER_S:
                self.commit(poller, pending)
                pending = []
        if pending:
            self.commit(poller, pending)

    def due(self) -> list[FeedSpec]:
        now = utcnow()
        due = []
        for spec in self.specs:
            state = self.states.get(state_key(spec.url))
            if state is None or state.next_poll_at is None or state.next_poll_at <= now:
                due.append(spec)
        return due

    def seconds_to_next(self) -> float:
        now = utcnow()
        waits = [
            (s.next_poll_at - now).total_seconds()
            for spec in self.specs
            if (s := self.states.get(state_key(spec.url))) and s.next_poll_at
        ]
        return max(0.0, min(waits, default=IDLE_SLEEP_MAX_S))

    async def run(self, once: bool) -> Counter[str]:
        # timeouts are set per request by ingest.httpget, within each fetch's total deadline
        async with new_async_client(self.settings.poller_concurrency) as client:
            poller = FeedPoller(self.settings, client)
            while not self.stop.is_set():
                specs = list(self.specs) if once else self.due()
                if specs:
                    started = time.monotonic()
                    await self.poll_round(poller, specs)
                    logger.info("polled %d feeds in %.1fs: %s", len(specs),
                                time.monotonic() - started, dict(self.counts))
                if once:
                    break
                wait = min(self.seconds_to_next(), IDLE_SLEEP_MAX_S)
                # short sleeps keep SIGTERM responsive
                deadline = time.monotonic() + wait
                while not self.stop.is_set() and time.monotonic() < deadline:
                    await asyncio.sleep(min(0.5, max(deadline - time.monotonic(), 0.01)))
        return self.counts


def shard_feeds(settings: Settings) -> list[FeedSpec]:
    """The feeds of the list that belong to this replica."""
    try:
        feeds = load_feeds(settings.feeds)
    except OSError as exc:
        # a configuration error, not a crash: one line that says what to fix
        raise SystemExit(
            f"newswatch poller: cannot read the feed list NEWSWATCH_FEEDS={settings.feeds}: "
            f"{exc.strerror or exc}. It must name a YAML or OPML file (one feed: a file with "
            f"'feeds:' and a line '  - url: <feed URL>'), not a URL.") from None
    mine = [f for f in feeds.feeds if in_shard(f.url, settings.poller_shard)]
    logger.info("feed list %s: %d feeds, %d problem(s); shard %s polls %d",
                settings.feeds, len(feeds.feeds), len(feeds.problems), settings.poller_shard,
                len(mine))
    return mine


def run(settings: Settings) -> None:
    """Poll the feeds until SIGTERM (or once, with ``NEWSWATCH_POLLER_ONCE=true``)."""
    stop = StopFlag()
    stop.install()
    specs = shard_feeds(settings)
    states = load_states(settings, {state_key(s.url) for s in specs})
    producer = make_producer(settings)
    # ready: state restored and the broker reachable; rounds start now
    mark_ready(settings, "poller")
    try:
        loop = PollerLoop(settings, specs, states, producer, stop)
        counts = asyncio.run(loop.run(settings.poller_once))
        logger.info("poller finished: %s", dict(counts))
    finally:
        clear_ready(settings, "poller")
        producer.flush()
        producer.close(timeout=30)

