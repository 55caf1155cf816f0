"""Per-feed poller state and where it lives: the compacted topic ``news.feed-state``.

Why a compacted Kafka topic: the poller already depends on Kafka, so the state
needs no extra service; compaction keeps exactly the latest state per feed
(key = feed URL) for as long as the feed exists; every replica restores it by
reading the topic to the end at start-up; and the state is written right after
the entries it accounts for are flushed, through the same producer, so a crash
between the two re-emits entries (idempotent downstream by story id) rather
than losing them. Replicas split the feeds by ``NEWSWATCH_POLLER_SHARD`` and
each only writes the keys of its own feeds, so they never overwrite each other.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta

from kafka import KafkaProducer
from pydantic import BaseModel, Field, ValidationError

from pipeline.kafka_io import FEED_HEALTH, FEED_STATE, read_to_end
from pipeline.settings import Settings
from pipeline.story import utcnow
from pipeline.urls import canonical_url

logger = logging.getLogger(__name__)

# Story ids remembered per feed beyond those still in the feed; ids still in
# the feed are always kept, so an entry is never forgotten while it is listed.
SEEN_EXTRA = 500
DAYS_KEPT = 8


class FeedHealth(BaseModel):
    """What an analyst needs to know whether a source is collecting."""

    feed_url: str
    feed_name: str | None = None
    kind: str = "poll"
    last_poll_at: datetime | None = None
    last_success_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    last_error_kind: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    polls: int = 0
    failures: int = 0
    not_modified: int = 0
    entries_in_feed: int = 0
    entries_without_link: int = 0
    last_problem: str | None = None  # what feedparser recovered from, on a successful poll
    new_stories_total: int = 0
    daily_new: dict[str, int] = Field(default_factory=dict)  # UTC date -> new stories
    first_seen_at: datetime = Field(default_factory=utcnow)
    interval_s: float | None = None
    next_poll_at: datetime | None = None

    @property
    def new_stories_per_day(self) -> float:
        """Average over the last seven days (or since the feed was added, if sooner)."""
        now = utcnow()
        cutoff = (now - timedelta(days=7)).date().isoformat()
        recent = sum(n for day, n in self.daily_new.items() if day > cutoff)
        age_days = max((now - self.first_seen_at).total_seconds() / 86400, 1.0)
        return recent / min(age_days, 7.0)

    def record_new(self, count: int) -> None:
        today = utcnow().date().isoformat()
        self.daily_new[today] = self.daily_new.get(today, 0) + count
        self.new_stories_total += count
        for day in sorted(self.daily_new)[:-DAYS_KEPT]:
            del self.daily_new[day]

    def event(self) -> dict[str, object]:
        """The JSON published to ``news.feed-health`` (indexed and charted in Kibana)."""
        data = self.model_dump(mode="json", exclude={"daily_new"})
        data["new_stories_per_day"] = round(self.new_stories_per_day, 3)
        data["@timestamp"] = utcnow().isoformat()
        return data


class FeedState(BaseModel):
    """Validators, remembered entries, schedule and health of one feed."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    last_full_fetch_at: datetime | None = None
    last_poll_at: datetime | None = None
    next_poll_at: datetime | None = None
    interval_s: float | None = None
    rate_per_s: float | None = None
    seen: list[str] = Field(default_factory=list)  # story ids, most recent first
    health: FeedHealth

    @classmethod
    def new(cls, url: str, name: str | None) -> FeedState:
        return cls(url=url, health=FeedHealth(feed_url=url, feed_name=name))

    def remember(self, current_ids: list[str]) -> None:
        """Keep every id still in the feed plus the most recent others."""
        keep = dict.fromkeys(current_ids)
        for sid in self.seen:
            if len(keep) >= len(current_ids) + SEEN_EXTRA:
                break
            keep.setdefault(sid)
        self.seen = list(keep)


def state_key(url: str) -> str:
    """The compaction key of a feed: its canonical URL."""
    return canonical_url(url)


def in_shard(url: str, shard: str) -> bool:
    """Whether this replica (``"i/n"``) owns the feed; stable across restarts and hosts."""
    index, count = (int(x) for x in shard.split("/"))
    digest = hashlib.sha1(state_key(url).encode()).digest()  # a spread, not security
    return int.from_bytes(digest[:8], "big") % count == index % count


def load_states(settings: Settings, wanted: set[str] | None = None) -> dict[str, FeedState]:
    """Read ``news.feed-state`` to its end; the last value per key wins (tombstones delete)."""
    topic = settings.topic(FEED_STATE)
    states: dict[str, FeedState] = {}
    for record in read_to_end(settings, topic, "newswatch-poller-state"):
        key = (record.key or b"").decode("utf-8", "replace")
        if wanted is not None and key not in wanted:
            continue
        if record.value is None:
            states.pop(key, None)
            continue
        try:
            states[key] = FeedState.model_validate_json(record.value)
        except ValidationError as exc:
            # an unreadable state only costs re-emitting that feed's entries once
            logger.warning("ignoring unreadable state for %s: %s", key, exc)
    logger.info("restored state of %d feeds from %s", len(states), topic)
    return states


def send_state(producer: KafkaProducer, settings: Settings, state: FeedState) -> None:
    """Queue the state and its health event (the caller flushes)."""
    key = state_key(state.url).encode()
    producer.send(settings.topic(FEED_STATE), key=key,
                  value=state.model_dump_json(exclude_none=True).encode())
    producer.send(settings.topic(FEED_HEALTH), key=key,
                  value=json.dumps(state.health.event()).encode())
