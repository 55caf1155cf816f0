"""The one stop rule of every read "to the end" (pipeline.kafka_io.drain), on the real broker."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, TopicPartition

from pipeline.kafka_io import DLQ, behind, drain, make_producer, read_to_end
from pipeline.settings import Settings

pytestmark = pytest.mark.integration


def _fill(settings: Settings, count: int) -> str:
    topic = settings.topic(DLQ)
    producer = make_producer(settings)
    for n in range(count):
        producer.send(topic, key=f"k{n % 5}".encode(), value=f"v{n}".encode())
    producer.flush()
    producer.close()
    return topic


def test_read_to_end_reads_every_record_present_when_it_began(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    topic = _fill(settings, 25)
    values = sorted(int(r.value[1:]) for r in read_to_end(settings, topic, "test-read-to-end"))
    assert values == list(range(25))
    assert list(read_to_end(settings, settings.topic("news.absent"), "test-read-to-end")) == []


def test_drain_stops_at_its_deadline_and_says_how_far_behind(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    topic = _fill(settings, 10)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                             enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        assert sum(ends.values()) == 10
        assert list(drain(consumer, ends, timeout_s=0)) == []  # no time: nothing read
        assert behind(consumer, ends) == 10
        # ends beyond what exists (as a partition ending in transaction markers looks):
        # the empty polls end the read instead of waiting for offsets that never come
        past = {tp: end + 3 for tp, end in ends.items()}
        assert len(list(drain(consumer, past, timeout_s=120, poll_ms=50))) == 10
        assert behind(consumer, past) == 3 * len(partitions)
    finally:
        consumer.close()
