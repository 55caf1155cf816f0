"""Checked deliveries: nothing is committed on the word of an unchecked produce.

Every record a batch produces besides the sink's own (dead letters, retries) is
tracked by the source partition of the message it stands for; after the
producer is flushed each future is checked, and a partition with an
undelivered outcome is not committed (its messages are redelivered).

Errors that belong to one record (too large for the topic, rejected as
invalid) are told apart from errors of the broker or the connection: the
first dead-letter that record and let the batch move on, the second stop the
stage without committing, as a failed sink does.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import (
    CorruptRecordError,
    InvalidRecordError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)

from pipeline.errors import PermanentError
from pipeline.partition import entries_partition

logger = logging.getLogger(__name__)

# Kafka's answers about one record, not about the cluster: retrying cannot help.
RECORD_ERRORS = (MessageSizeTooLargeError, RecordListTooLargeError, InvalidRecordError, CorruptRecordError)

# How long to wait for one future after the flush (they are all done by then, normally).
FUTURE_TIMEOUT_S = 30.0


def record_error(exc: BaseException, topic: str | None = None) -> PermanentError | None:
    """``exc`` as a dead-letter reason when it is about one record (too large, invalid);
    ``None`` when it is about the broker or the connection."""
    if isinstance(exc, RECORD_ERRORS):
        where = f" for {topic}" if topic else ""
        what = "too large" if isinstance(exc, MessageSizeTooLargeError | RecordListTooLargeError) \
            else "rejected"
        return PermanentError(f"record {what}{where}: {exc}")
    return None


class DeliveryError(KafkaError):
    """Some outcomes of a batch were not delivered; their partitions were not committed."""


@dataclass
class _Sent:
    record: ConsumerRecord  # the consumed message this produce stands for
    topic: str
    future: Any = None
    error: BaseException | None = None  # raised by send() itself


class Deliveries:
    """The produces of one batch, by the source partition they belong to."""

    def __init__(self) -> None:
        self._sent: dict[TopicPartition, list[_Sent]] = defaultdict(list)

    def send(
        self, producer: KafkaProducer, record: ConsumerRecord, topic: str,
        value: bytes | None, headers: list[tuple[str, bytes]],
    ) -> None:
        """Produce ``value`` (keyed like ``record``) to ``topic`` on behalf of ``record``."""
        sent = _Sent(record, topic)
        try:
            # back to news.entries (retrier, replay): on the host's partition, like the poller
            partition = entries_partition(producer, topic, value)
            sent.future = producer.send(topic, key=record.key, value=value, headers=headers,
                                        partition=partition)
        except Exception as exc:  # too large for the client, no metadata: checked like the rest
            sent.error = exc
        self._sent[TopicPartition(record.topic, record.partition)].append(sent)

    def undelivered(self) -> dict[TopicPartition, list[str]]:
        """After ``producer.flush()``: the source partitions with a failed produce, and why."""
        failed: dict[TopicPartition, list[str]] = {}
        for tp, sends in self._sent.items():
            for sent in sends:
                error = sent.error
                if error is None:
                    try:
                        sent.future.get(timeout=FUTURE_TIMEOUT_S)
                    except Exception as exc:
                        error = exc
                if error is not None:
                    logger.error(
                        "delivery to %s failed for %s:%s offset %s (key %s): %s: %s",
                        sent.topic, sent.record.topic, sent.record.partition, sent.record.offset,
                        (sent.record.key or b"").decode("utf-8", "replace"), type(error).__name__, error,
                    )
                    failed.setdefault(tp, []).append(f"{sent.topic}: {type(error).__name__}: {error}")
        return failed


def describe(failed: dict[TopicPartition, list[str]]) -> str:
    """One line for the log and the exception: which partitions, the first reason of each."""
    parts: Iterable[str] = (f"{tp.topic}[{tp.partition}] ({reasons[0]})" for tp, reasons in failed.items())
    return "; ".join(parts)
