"""Keeping the near-duplicate window right across restarts and replicas.

The window lives in the enricher's memory, so a restart would forget it and
two replicas would each see only their own partitions. Instead of a second
store, the window is fed from the stage's own output: ``news.enriched``
already holds every story with its ``cluster_id`` and text.

* At start-up the newest stories of ``news.enriched`` are read back
  (synchronously, before the first input is processed), so a restarted
  enricher keeps assigning the clusters it assigned before: at most as many
  as the window holds, and none older than its age bound (the start offsets
  come from ``offsets_for_times``). Each keeps its record's timestamp as its
  age, so the rebuilt window forgets stories when the old one would have.
* Then a daemon thread keeps tailing ``news.enriched``, so each replica learns
  the stories the other replicas clustered (within a poll interval).

Two copies processed by two replicas in the same second can still start two
clusters; that window is small and the indexer keeps both, each with its id.
"""

from __future__ import annotations

import logging
import threading
import time

from kafka import KafkaConsumer, TopicPartition

from pipeline.errors import PermanentError
from pipeline.kafka_io import ENRICHED, drain
from pipeline.metrics import DEDUP_WINDOW_BYTES, DEDUP_WINDOW_STORIES, track
from pipeline.settings import Settings
from pipeline.story import Story
from processors.dedup import NearDuplicateIndex

logger = logging.getLogger(__name__)


def _consumer(settings: Settings) -> KafkaConsumer:
    # No group: every replica reads every partition and commits nothing.
    return KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id="newswatch-enricher-window",
        # kafka-python's CRC32C is pure Python; the broker checked each batch on write, and
        # a record that does not decode is skipped (see processors.alerter.make_reader)
        check_crcs=False,
    )


def _learn(index: NearDuplicateIndex, raw: bytes | None, timestamp_ms: int | None = None) -> bool:
    try:
        story = Story.from_bytes(raw)
    except PermanentError:
        return False
    if story.enrichment is None or not story.enrichment.cluster_id:
        return False
    text = story.text or (story.feed.summary if story.feed and story.feed.summary else "")
    at = timestamp_ms / 1000 if timestamp_ms and timestamp_ms > 0 else None
    index.remember(story.id, story.enrichment.cluster_id, text or story.title or "", at=at)
    return True


def warm_up(settings: Settings, index: NearDuplicateIndex, consumer: KafkaConsumer | None = None,
            window: int | None = None) -> tuple[KafkaConsumer, int]:
    """Read back the newest stories of news.enriched (at most ``window``, default the index's
    capacity, and none older than its age bound); returns the consumer and the count."""
    topic = settings.topic(ENRICHED)
    consumer = consumer or _consumer(settings)
    partitions = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    if not tps:
        return consumer, 0
    ends = consumer.end_offsets(tps)
    begins = consumer.beginning_offsets(tps)
    per_partition = max(1, (window or index.capacity) // len(tps))
    since_ms = int((time.time() - index.max_age_s) * 1000)
    by_time = consumer.offsets_for_times({tp: since_ms for tp in tps})
    for tp in tps:
        # None: no record that recent, nothing to read back in that partition
        first_recent = by_time[tp].offset if by_time.get(tp) is not None else ends[tp]
        consumer.seek(tp, max(begins[tp], ends[tp] - per_partition, first_recent))
    learned = 0
    for record in drain(consumer, ends):
        learned += _learn(index, record.value, record.timestamp)
    logger.info("dedup window: read back %d stories from %s", learned, topic)
    return consumer, learned


def start_window_sync(settings: Settings, index: NearDuplicateIndex) -> threading.Event:
    """Warm the window, then follow news.enriched in a daemon thread; set the event to stop."""
    track(DEDUP_WINDOW_STORIES, lambda: len(index))
    track(DEDUP_WINDOW_BYTES, lambda: index.nbytes)
    consumer, _ = warm_up(settings, index)
    stop = threading.Event()

    def follow() -> None:
        try:
            while not stop.is_set():
                for records in consumer.poll(timeout_ms=1000).values():
                    for record in records:
                        _learn(index, record.value, record.timestamp)
        except Exception:  # the stage keeps running; it only loses cross-replica updates
            logger.exception("dedup window: following %s stopped", settings.topic(ENRICHED))
        finally:
            consumer.close()

    threading.Thread(target=follow, name="dedup-window", daemon=True).start()
    return stop
