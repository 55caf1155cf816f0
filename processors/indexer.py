"""The indexer stage: ``news.enriched`` -> Elasticsearch, one bulk request per batch.

``_id`` is the story id, so a redelivered or replayed story replaces its
document instead of adding a copy. After a rollover the alias writes to a new
index; a story that already lives in an older index is written back to that
index (looked up with one ``ids`` query per batch) so it still exists once.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, Elasticsearch, helpers
from kafka.consumer.fetcher import ConsumerRecord
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from pipeline.errors import PermanentError, TransientError
from pipeline.kafka_io import ENRICHED, FEED_HEALTH, make_consumer
from pipeline.liveness import GroupWatchdog
from pipeline.retry import backoff
from pipeline.settings import Settings
from pipeline.stage import run_stage, unchanged
from pipeline.story import Story
from processors.elastic import (
    bootstrap_index,
    feed_health_index,
    make_client,
    story_to_document,
)

logger = logging.getLogger(__name__)

# Statuses worth retrying: overloaded (429) or the cluster is unwell (5xx).
RETRYABLE = {429, 500, 502, 503, 504}
TRANSIENT = (TransientError, TransportConnectionError, ConnectionTimeout)


@dataclass
class _Pending:
    record: ConsumerRecord
    story_id: str
    document: dict[str, Any]


class ElasticsearchSink:
    """Buffer the batch's documents; ``flush`` indexes them with one bulk request."""

    def __init__(self, settings: Settings, es: Elasticsearch) -> None:
        self.settings = settings
        self.es = es
        self.alias = settings.index_alias
        self._pending: list[_Pending] = []

    def emit(self, story: Story, record: ConsumerRecord) -> None:
        """Queue ``story``; a story that cannot be mapped fails at flush as a permanent error."""
        self._pending.append(_Pending(record, story.id, story_to_document(story)))

    def _existing_indices(self, ids: list[str]) -> dict[str, str]:
        """story id -> the concrete index that already holds it (across rollovers)."""
        found = self.es.search(
            index=self.alias, query={"ids": {"values": ids}}, size=len(ids),
            source=False, ignore_unavailable=True,
        )
        return {hit["_id"]: hit["_index"] for hit in found["hits"]["hits"]}

    def _bulk(
        self, pending: list[_Pending]
    ) -> tuple[list[tuple[_Pending, dict[str, Any]]], list[_Pending]]:
        """Index ``pending``; returns (permanently failed items, items to retry)."""
        existing = self._existing_indices(sorted({p.story_id for p in pending}))
        actions = [
            {"_op_type": "index", "_index": existing.get(p.story_id, self.alias),
             "_id": p.story_id, "_source": p.document}
            for p in pending
        ]
        failed: list[tuple[_Pending, dict[str, Any]]] = []
        retry: list[_Pending] = []
        results = helpers.streaming_bulk(
            self.es, actions, raise_on_error=False, raise_on_exception=True,
            max_retries=0, chunk_size=500, max_chunk_bytes=50 * 1024 * 1024,
        )
        for item, (ok, result) in zip(pending, results, strict=True):
            if ok:
                continue
            info = result.get("index", result)
            if int(info.get("status", 0)) in RETRYABLE:
                retry.append(item)
            else:
                failed.append((item, info))
        return failed, retry

    def flush(self) -> list[tuple[ConsumerRecord, Exception]]:
        """Index everything emitted; mapping/parse failures are returned (dead-lettered).

        Elasticsearch being unreachable, overloaded (429) or failing (5xx) is retried
        with backoff and then raised: nothing is committed and the batch is redelivered.
        """
        pending, self._pending = self._pending, []
        if not pending:
            return []
        permanent: list[tuple[_Pending, dict[str, Any]]] = []
        todo = pending
        retrying = Retrying(
            stop=stop_after_attempt(max(self.settings.max_attempts, 1)),
            wait=backoff(self.settings),
            retry=retry_if_exception(_is_transient),
            reraise=True,
            before_sleep=lambda state: logger.warning(
                "indexer: bulk attempt %d failed: %s; retrying", state.attempt_number,
                state.outcome.exception() if state.outcome else "?",
            ),
        )
        for attempt in retrying:
            with attempt:
                failed, todo = self._bulk(todo)
                permanent.extend(failed)
                if todo:
                    # Items that succeeded are not sent again: the next attempt has only these.
                    raise TransientError(f"{len(todo)} document(s) rejected with a retryable status")
        failures: list[tuple[ConsumerRecord, Exception]] = []
        for item, info in permanent:
            error = info.get("error") or {}
            reason = f"{error.get('type', 'error')}: {error.get('reason', info)}"
            logger.error("indexer: story %s rejected: %s", item.story_id, reason)
            failures.append((item.record, PermanentError(f"elasticsearch rejected: {reason}")))
        logger.info("indexer: indexed %d, rejected %d", len(pending) - len(failures), len(failures))
        return failures


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ApiError):
        return exc.meta.status in RETRYABLE
    return isinstance(exc, TRANSIENT)


def feed_health_actions(records: list[ConsumerRecord], index: str) -> list[dict[str, Any]]:
    """Bulk actions for feed-health events; ``_id`` = topic/partition/offset (replay-safe).

    These events are not stories, so they do not go through ``run_stage``; an
    unreadable event is logged and skipped (it is telemetry, not news).
    """
    actions = []
    for record in records:
        try:
            event = json.loads(record.value)
            if not isinstance(event, dict):
                raise ValueError("not an object")
        except (TypeError, ValueError) as exc:
            logger.warning("indexer: skipping unreadable feed-health event %s:%s@%s: %s",
                           record.topic, record.partition, record.offset, exc)
            continue
        actions.append({"_index": index, "_id": f"{record.partition}-{record.offset}",
                        "_source": event})
    return actions


def index_feed_health(settings: Settings, es: Elasticsearch, stop: threading.Event,
                      idle_exit_after: int | None = None) -> None:
    """news.feed-health -> the feed-health index; commits after each bulk request."""
    index = feed_health_index(settings)
    consumer = make_consumer(settings, "newswatch-indexer-feed-health",
                             settings.topic(FEED_HEALTH))
    # out of its group for too long: raises, and _feed_health_forever starts a fresh consumer
    watchdog = GroupWatchdog("indexer feed-health", settings.group_stuck_s)
    idle = 0
    try:
        while not stop.is_set():
            polled = consumer.poll(timeout_ms=settings.poll_timeout_ms,
                                   max_records=settings.batch_size)
            watchdog.polled(consumer)
            records = [r for batch in polled.values() for r in batch]
            if not records:
                idle += 1
                if idle_exit_after is not None and idle >= idle_exit_after:
                    return
                continue
            idle = 0
            actions = feed_health_actions(records, index)
            if actions:
                helpers.bulk(es, actions, raise_on_error=True, max_retries=settings.max_attempts)
            consumer.commit()
    finally:
        consumer.close()


def _feed_health_forever(settings: Settings, es: Elasticsearch, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            index_feed_health(settings, es, stop)
        except Exception:
            # Feed health is a side channel: it must never stop story indexing.
            logger.exception("indexer: feed-health indexing failed; retrying in 30s")
            stop.wait(30)


def run(settings: Settings) -> None:
    """Run the indexer until SIGTERM: news.enriched -> the stories alias (+ feed health)."""
    es = make_client(settings)
    if not es.indices.exists_alias(name=settings.index_alias):
        # Writing to a missing alias would auto-create a concrete index under its name.
        for line in bootstrap_index(settings, es):
            logger.info("indexer: %s", line)
    stop = threading.Event()
    health = threading.Thread(target=_feed_health_forever, args=(settings, es, stop),
                              name="feed-health", daemon=True)
    health.start()
    try:
        run_stage("indexer", unchanged, ENRICHED,
                  lambda _producer: ElasticsearchSink(settings, es), settings)
    finally:
        stop.set()
        health.join(timeout=10)
