"""Polling one feed: conditional GET, parse, new entries, schedule, health.

No Kafka here: ``FeedPoller.poll`` returns the stories to emit and the updated
state, and ``ingest.poller`` makes them durable (entries first, then state).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from ingest.errors import IngestTransient, error_kind
from ingest.feeds import FeedSpec
from ingest.httpget import Limits, aget, raise_for_status
from ingest.parse import ParsedFeed, parse_feed
from ingest.schedule import (
    Bounds,
    cache_lifetime,
    error_interval,
    feed_period,
    success_interval,
    update_rate,
)
from ingest.state import FeedState, state_key
from pipeline.metrics import POLL_SECONDS, POLLS
from pipeline.settings import Settings
from pipeline.story import FeedEntry, Story, utcnow
from pipeline.urls import host_of

logger = logging.getLogger(__name__)

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
RECENT_IDS = 200_000  # ids emitted lately by any feed of this process


@dataclass
class PollResult:
    spec: FeedSpec
    state: FeedState
    outcome: str  # new | unchanged | not_modified | error
    stories: list[Story] = field(default_factory=list)
    error: str | None = None


class HostLimiter:
    """At most ``per_host`` requests in flight per host, starts spaced by ``delay_s``."""

    def __init__(self, per_host: int, delay_s: float) -> None:
        self.per_host = per_host
        self.delay_s = delay_s
        self._sems: dict[str, asyncio.Semaphore] = {}
        self._next_start: dict[str, float] = {}

    def semaphore(self, host: str) -> asyncio.Semaphore:
        if host not in self._sems:
            self._sems[host] = asyncio.Semaphore(self.per_host)
        return self._sems[host]

    async def wait_turn(self, host: str) -> None:
        if self.delay_s <= 0:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self._next_start.get(host, now))
        self._next_start[host] = start + self.delay_s
        if start > now:
            await asyncio.sleep(start - now)


class FeedPoller:
    """Polls feeds over one shared async HTTP client."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client
        self.limits = Limits.for_feeds(settings)
        self.global_limit = asyncio.Semaphore(settings.poller_concurrency)
        self.hosts = HostLimiter(settings.poller_per_host, settings.per_host_delay_s)
        self.recent: OrderedDict[str, None] = OrderedDict()

    def bounds(self, spec: FeedSpec) -> Bounds:
        low = spec.min_interval or self.settings.poll_min_interval_s
        high = spec.max_interval or self.settings.poll_max_interval_s
        return Bounds(min_s=low, max_s=max(high, low))

    async def poll(self, spec: FeedSpec, state: FeedState | None) -> PollResult:
        """Poll ``spec`` once (within the global and per-host limits)."""
        # work on a copy: the caller keeps the old state until the entries are durable
        state = state.model_copy(deep=True) if state else FeedState.new(spec.url, spec.name)
        host = host_of(spec.url)
        async with self.global_limit, self.hosts.semaphore(host):
            await self.hosts.wait_turn(host)
            started = time.perf_counter()
            try:
                result = await self._poll(spec, state)
            except Exception as exc:
                # one feed's surprise must not stop the others; it is counted in its health
                if not hasattr(exc, "kind"):
                    logger.exception("unexpected error polling %s", spec.url)
                retry_after = exc.retry_after if isinstance(exc, IngestTransient) else None
                result = self._failed(spec, state, exc, retry_after)
            POLL_SECONDS.observe(time.perf_counter() - started)
            reason = "ok"
            if result.outcome == "error":
                reason = result.state.health.last_error_kind or "unknown"
            POLLS.labels(result.outcome, reason).inc()
            return result

    def _request_headers(self, state: FeedState, now: datetime) -> dict[str, str]:
        headers = {"User-Agent": self.settings.http_user_agent, "Accept": FEED_ACCEPT}
        full_due = state.last_full_fetch_at is None or (
            now - state.last_full_fetch_at > timedelta(seconds=self.settings.poller_full_fetch_s)
        )
        # validators are a hint, not a guarantee: some feeds answer 304 while their
        # content changed, so a full fetch happens at least every poller_full_fetch_s
        if not full_due:
            if state.etag:
                headers["If-None-Match"] = state.etag
            if state.last_modified:
                headers["If-Modified-Since"] = state.last_modified
        return headers

    async def _poll(self, spec: FeedSpec, state: FeedState) -> PollResult:
        now = utcnow()
        page = await aget(self.client, spec.url, self.limits, self._request_headers(state, now))
        hint = cache_lifetime(page.headers)
        if page.status == 304:
            state.health.not_modified += 1
            return self._succeeded(spec, state, "not_modified", [], hint, page.status)
        raise_for_status(page)
        state.etag = page.headers.get("etag")
        state.last_modified = page.headers.get("last-modified")
        state.last_full_fetch_at = now
        digest = hashlib.sha256(page.body).hexdigest()
        if digest == state.content_hash:
            # byte-identical to the last poll (a server without validators): nothing to parse
            return self._succeeded(spec, state, "unchanged", [], hint, page.status)
        # parsing is CPU work; a thread keeps the event loop serving other feeds' sockets
        parsed = await asyncio.to_thread(parse_feed, page.body, page.final_url, page.headers,
                                         self.settings.feed_max_entries,
                                         self.settings.feed_parse_max_bytes)
        state.content_hash = digest  # only a body that parsed may short-cut the next poll
        period = feed_period(parsed.ttl, parsed.update_period, parsed.update_frequency)
        hint = max(hint or 0, period or 0) or None
        stories = self._new_stories(spec, state, parsed)
        outcome = "new" if stories else "unchanged"
        state.health.entries_in_feed = len(parsed.entries)
        state.health.entries_without_link = parsed.skipped
        state.health.last_problem = parsed.problems[0] if parsed.problems else None
        if parsed.problems:
            logger.info("feed %s: %d problem(s), first: %s", spec.url, len(parsed.problems),
                        parsed.problems[0])
        return self._succeeded(spec, state, outcome, stories, hint, page.status)

    def _new_stories(self, spec: FeedSpec, state: FeedState, parsed: ParsedFeed) -> list[Story]:
        seen = set(state.seen)
        current: list[str] = []
        stories: list[Story] = []
        for entry in parsed.entries:
            story = Story.from_link(
                entry.link,
                source=spec.display_name,
                feed=FeedEntry(
                    feed_url=spec.url, feed_name=spec.name, entry_id=entry.entry_id,
                    link=entry.link, title=entry.title, summary=entry.summary,
                    author=entry.author, published_at=entry.published_at,
                    language=spec.language or parsed.language, country=spec.country,
                    tags=list(spec.tags), categories=entry.tags,
                ),
            )
            if story.id in current:
                continue
            current.append(story.id)
            if story.id in seen or story.id in self.recent:
                continue
            stories.append(story)
            self.recent[story.id] = None
            if len(self.recent) > RECENT_IDS:
                self.recent.popitem(last=False)
        state.remember(current)
        return stories

    def forget(self, stories: list[Story]) -> None:
        """Undo ``recent`` for stories that could not be delivered (they are re-emitted)."""
        for story in stories:
            self.recent.pop(story.id, None)

    def _succeeded(self, spec: FeedSpec, state: FeedState, outcome: str, stories: list[Story],
                   hint: float | None, status: int) -> PollResult:
        now = utcnow()
        elapsed = (now - state.last_poll_at).total_seconds() if state.last_poll_at else 0.0
        if state.last_poll_at is not None:
            # the first poll sees the whole backlog; it says nothing about the rate
            state.rate_per_s = update_rate(state.rate_per_s, len(stories), elapsed)
        state.interval_s = success_interval(
            state.rate_per_s or 0.0, state.interval_s, self.bounds(spec), hint
        )
        health = state.health
        health.feed_name = spec.name
        health.last_success_at = now
        health.last_status = status
        health.consecutive_failures = 0
        health.record_new(len(stories))
        return self._finish(state, now, PollResult(spec, state, outcome, stories))

    def _failed(self, spec: FeedSpec, state: FeedState, exc: BaseException,
                retry_after: float | None) -> PollResult:
        now = utcnow()
        health = state.health
        health.feed_name = spec.name
        health.failures += 1
        health.consecutive_failures += 1
        health.last_error = str(exc)[:1000] or type(exc).__name__
        health.last_error_kind = error_kind(exc)
        health.last_error_at = now
        state.interval_s = error_interval(health.consecutive_failures, self.bounds(spec),
                                          retry_after)
        logger.warning("feed %s failed (%s, %d in a row): %s", spec.url, health.last_error_kind,
                       health.consecutive_failures, health.last_error)
        return self._finish(state, now, PollResult(spec, state, "error", error=health.last_error))

    def _finish(self, state: FeedState, now: datetime, result: PollResult) -> PollResult:
        state.last_poll_at = now
        state.next_poll_at = now + timedelta(seconds=state.interval_s or 0)
        state.health.polls += 1
        state.health.last_poll_at = now
        state.health.interval_s = state.interval_s
        state.health.next_poll_at = state.next_poll_at
        return result


def index_states(specs: list[FeedSpec], states: dict[str, FeedState]) -> dict[str, FeedState]:
    """The restored state of each listed feed (by compaction key), new ones get none."""
    return {spec.url: states[state_key(spec.url)] for spec in specs
            if state_key(spec.url) in states}
