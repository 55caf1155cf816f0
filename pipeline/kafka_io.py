"""Kafka clients and topic administration, configured in one place."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import TopicAlreadyExistsError

from pipeline.settings import Settings

logger = logging.getLogger(__name__)

# Logical names used in code; the broker-side name adds Settings.topic_prefix.
ENTRIES = "news.entries"
ARTICLES = "news.articles"
ENRICHED = "news.enriched"
DLQ = "news.dlq"
# the poller's per-feed state (compacted) and the feed-health events the poller and the
# fetcher produce and the indexer writes to Elasticsearch
FEED_STATE = "news.feed-state"
FEED_HEALTH = "news.feed-health"
ALERT_PREFIX = "alerts."


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int | None = None  # None: Settings.partitions
    config: dict[str, str] = field(default_factory=dict)
    # One topic per retry tier, ``<name>.1`` .. ``<name>.N`` (N = len(Settings.retry_delays_s))
    per_retry_tier: bool = False


def load_topic_specs(path: Path) -> list[TopicSpec]:
    """The pipeline's topics, declared as data (``settings.kafka_topics``,
    by default ``deploy/kafka/topics.yaml``)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    specs = []
    for item in data.get("topics", []):
        config = {str(k): str(v) for k, v in (item.get("config") or {}).items()}
        specs.append(TopicSpec(str(item["name"]), item.get("partitions"), config,
                               bool(item.get("per_retry_tier", False))))
    return specs


def expand_topic_specs(settings: Settings, specs: list[TopicSpec]) -> list[TopicSpec]:
    """``specs`` with each ``per_retry_tier`` spec replaced by one topic per retry tier,
    so that adding a tier to ``NEWSWATCH_RETRY_DELAYS_S`` is a setting and a ``setup``."""
    out: list[TopicSpec] = []
    for spec in specs:
        if spec.per_retry_tier:
            out += [TopicSpec(f"{spec.name}.{n}", spec.partitions, spec.config)
                    for n in range(1, len(settings.retry_delays_s) + 1)]
        else:
            out.append(spec)
    return out


def make_producer(settings: Settings, **overrides: object) -> KafkaProducer:
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": "all",
        "linger_ms": 20,
        "retries": 5,
        # kafka-python's idempotent producer (its default since 3.0) treats a record the broker
        # refuses (MESSAGE_TOO_LARGE for one story) as fatal: every later send of the producer,
        # dead letters included, fails, and the stage would crash on every redelivery. The
        # pipeline is idempotent through story ids instead; one request in flight keeps each
        # partition in order across retries (the compacted feed-state topic relies on it).
        "enable_idempotence": False,
        "max_in_flight_requests_per_connection": 1,
        "client_id": "newswatch",
    }
    options.update(overrides)
    return KafkaProducer(**options)


def make_consumer(settings: Settings, group: str, *topics: str, **overrides: object) -> KafkaConsumer:
    """A consumer in group ``group`` (prefixed like the topics, so that two deployments
    or test runs sharing a broker never share a group), subscribed to ``topics``."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "group_id": settings.topic(group),
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": settings.batch_size,
        "max_poll_interval_ms": settings.max_poll_interval_ms,
        # notice new partitions (a scaled-up topic) within a minute, not five
        "metadata_max_age_ms": 60_000,
        "client_id": f"newswatch-{group}",
    }
    options.update(overrides)
    consumer = KafkaConsumer(**options)
    if topics:
        wait_for_topics(consumer, topics)
        consumer.subscribe(list(topics))
    return consumer


def wait_for_topics(
    consumer: KafkaConsumer,
    topics: Sequence[str],
    timeout_s: float = 60.0,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Wait until the broker's metadata lists every topic.

    A consumer that joins its group before the metadata lists its topic (right
    after ``newswatch setup`` created it) is assigned nothing, and notices the
    topic only at its next metadata refresh, minutes later.
    """
    deadline = time.monotonic() + timeout_s
    for topic in topics:
        while not consumer.partitions_for_topic(topic):
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {topic} does not exist: run `newswatch setup` first")
            if stop():
                return
            time.sleep(0.5)


def ensure_topics(settings: Settings, specs: list[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; returns the names created.

    Idempotent: running setup twice creates nothing the second time. Existing
    topics are left as they are (changing partitions is an operator decision).
    """
    specs = expand_topic_specs(settings, specs)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="newswatch-setup")
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(
                name=settings.topic(spec.name),
                num_partitions=spec.partitions or settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=spec.config,
            )
            for spec in specs
            if settings.topic(spec.name) not in existing
        ]
        created = []
        for topic in wanted:
            try:
                admin.create_topics([topic])
                created.append(topic.name)
                logger.info("created topic %s (%d partitions)", topic.name, topic.num_partitions)
            except TopicAlreadyExistsError:
                # another setup replica won the race; that is fine
                logger.info("topic %s already exists", topic.name)
        return created
    finally:
        admin.close()


# A read "to the end" ends at the end offsets taken when it began. One stop rule for every
# such read (start-up state, the dedup window, the alerter's catch-up, the CLI's listings):
# every partition reached its end, or the deadline passed, or this many polls in a row came
# back empty (a partition whose last offsets are transaction markers never yields them, so
# its position can stop short of the end offset for good).
EMPTY_POLLS_AT_END = 10
READ_TO_END_TIMEOUT_S = 60.0


def drain(consumer: KafkaConsumer, ends: dict[TopicPartition, int], *,
          timeout_s: float = READ_TO_END_TIMEOUT_S, max_records: int = 1000,
          poll_ms: int = 500) -> Iterator[ConsumerRecord]:
    """The records of ``ends``' partitions from the consumer's positions up to ``ends``,
    under the one stop rule above; ``behind`` says afterwards whether it stopped short."""
    deadline = time.monotonic() + timeout_s
    empty = 0
    while (empty < EMPTY_POLLS_AT_END and time.monotonic() < deadline
           and behind(consumer, ends)):
        polled = consumer.poll(timeout_ms=poll_ms, max_records=max_records)
        if not any(polled.values()):
            empty += 1
            continue
        empty = 0
        for records in polled.values():
            yield from records


def behind(consumer: KafkaConsumer, ends: dict[TopicPartition, int]) -> int:
    """How many offsets the consumer still has to read before ``ends``."""
    return sum(max(0, end - consumer.position(tp)) for tp, end in ends.items())


def uncommitted(settings: Settings, group_id: str, topic: str) -> int:
    """Offsets of ``topic`` (broker-side names both) that ``group_id`` has not committed.

    The consumer never subscribes, so it reads the group's commits without joining the
    group (no rebalance of the members it inspects). Raises KafkaError when the broker is away.
    """
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group_id,
                             enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(partitions)
        return sum(ends[tp] - (consumer.committed(tp) or 0) for tp in partitions)
    finally:
        consumer.close()


def read_to_end(settings: Settings, topic: str, client_id: str,
                timeout_s: float = READ_TO_END_TIMEOUT_S) -> Iterator[ConsumerRecord]:
    """Every record of ``topic`` (a broker-side name), from the beginning up to the end
    offsets at the time of the call (see ``drain`` for when it gives up: a warning says so);
    group-less, so it commits nothing. Yields nothing when the topic does not exist."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None,
        enable_auto_commit=False, client_id=client_id,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        yield from drain(consumer, ends, timeout_s=timeout_s)
        left = behind(consumer, ends)
        if left:
            logger.warning("%s: read of %s stopped %d offsets short of its end", client_id, topic, left)
    finally:
        consumer.close()
