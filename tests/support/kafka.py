"""Reading topics back in tests, with kafka-python (independent of the stage runner)."""

from __future__ import annotations

import time
import uuid

from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord

from pipeline.settings import Settings


def read_topic(
    settings: Settings, logical_topic: str, *, expect: int, timeout: float = 60.0
) -> list[ConsumerRecord]:
    """Every record of a topic from the beginning, waiting until ``expect`` have arrived.

    Returns what arrived by the deadline (so a test can assert the exact count).
    """
    consumer = KafkaConsumer(
        settings.topic(logical_topic),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"test-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(records) < expect:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        # a short extra poll so that surplus records (duplicates) are seen too
        for batch in consumer.poll(timeout_ms=1500).values():
            records.extend(batch)
    finally:
        consumer.close()
    return records


def produce(settings: Settings, logical_topic: str, items: list[tuple[bytes | None, bytes | None]]) -> None:
    """Write raw (key, value) pairs to a topic and wait until the broker has them."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    try:
        for key, value in items:
            producer.send(settings.topic(logical_topic), key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def headers_of(record: ConsumerRecord) -> dict[str, str]:
    return {name: value.decode("utf-8", "replace") for name, value in record.headers or []}
