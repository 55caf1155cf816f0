"""The retrier stage (``newswatch run retrier``): retry tiers -> back to the source topics.

Each retry tier (``news.retry.N``) holds messages that all wait the same delay,
so a partition's head is always its next message due. The retrier re-publishes
every due message to its ``x-source-topic`` (original key and payload, with
``x-stage`` so that only the stage that failed processes it again, and the
retry count); at a message that is not due yet it pauses that partition and
seeks back to it, resuming when it is due. It keeps polling meanwhile, so it
stays in its group however long the delays. Commits follow the runner's
contract: after the re-published messages are flushed and checked.
"""

from __future__ import annotations

import logging
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError, KafkaError, RebalanceInProgressError
from kafka.structs import OffsetAndMetadata

from pipeline.delivery import Deliveries, DeliveryError, describe
from pipeline.health import clear_ready, mark_ready
from pipeline.kafka_io import DLQ, make_consumer, make_producer, wait_for_topics
from pipeline.liveness import GroupWatchdog
from pipeline.metrics import MESSAGES
from pipeline.retry import (
    RETRY_AFTER,
    SOURCE_TOPIC,
    encode,
    float_header,
    header,
    republish_headers,
    retry_topics,
)
from pipeline.settings import Settings
from pipeline.stage import StopFlag

logger = logging.getLogger(__name__)

NAME = "retrier"


class Retrier:
    """Consume every retry tier; re-publish each message once its ``x-retry-after`` has come."""

    def __init__(
        self, settings: Settings, consumer: KafkaConsumer, producer: KafkaProducer,
        stop: StopFlag | None = None,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.stop = stop or StopFlag()
        self.topics = [settings.topic(t) for t in retry_topics(settings)]
        self.dlq_topic = settings.topic(DLQ)
        self._resume_at: dict[TopicPartition, float] = {}
        self._known_topics: set[str] = set()
        self.watchdog = GroupWatchdog(NAME, settings.group_stuck_s)  # as the stage runners

    def _hold(self, tp: TopicPartition, record: ConsumerRecord, due: float) -> None:
        """Not due yet: pause the partition at this record until ``due``."""
        self.consumer.pause(tp)
        self.consumer.seek(tp, record.offset)
        self._resume_at[tp] = due

    def _resume_due(self, now: float) -> None:
        paused = self.consumer.paused()
        for tp, due in list(self._resume_at.items()):
            if tp not in paused:  # revoked and reassigned: the position restarts at the commit
                del self._resume_at[tp]
            elif due <= now:
                self.consumer.resume(tp)
                del self._resume_at[tp]

    def _unroutable(self, source: str | None) -> str | None:
        """Why a message cannot be re-published to ``source``, or ``None``."""
        if not source:
            return f"no {SOURCE_TOPIC} header"
        if source not in self._known_topics:
            if not self.consumer.partitions_for_topic(source):
                return f"source topic {source} does not exist"
            self._known_topics.add(source)
        return None

    def _poll_timeout_ms(self, now: float) -> int:
        timeout = self.settings.poll_timeout_ms
        if self._resume_at:
            soonest = min(self._resume_at.values())
            timeout = min(timeout, max(10, int((soonest - now) * 1000) + 1))
        return timeout

    def run_batch(self, polled: dict[TopicPartition, list[ConsumerRecord]]) -> int:
        """Re-publish the due messages of ``polled``; returns how many were sent."""
        now = time.time()
        deliveries = Deliveries()
        last: dict[TopicPartition, int] = {}
        sent = 0
        for tp, records in polled.items():
            for record in records:
                due = float_header(record.headers, RETRY_AFTER) or 0.0
                if due > now:
                    self._hold(tp, record, due)
                    break
                source = header(record.headers, SOURCE_TOPIC)
                problem = self._unroutable(source)
                if problem is None:
                    deliveries.send(self.producer, record, str(source), record.value,
                                    republish_headers(record.headers))
                    MESSAGES.labels(NAME, "republished").inc()
                else:  # one record that cannot go back must not stop the others: to the DLQ
                    logger.error("%s: %s:%s offset %s: %s; dead-lettering it",
                                 NAME, record.topic, record.partition, record.offset, problem)
                    headers = [*record.headers, ("x-retrier-error", encode(problem))]
                    deliveries.send(self.producer, record, self.dlq_topic, record.value, headers)
                    MESSAGES.labels(NAME, "dead_letter").inc()
                last[tp] = record.offset
                sent += 1
        if not last:
            return 0
        self.producer.flush()
        undelivered = deliveries.undelivered()
        offsets = {tp: OffsetAndMetadata(offset + 1, "", -1)
                   for tp, offset in last.items() if tp not in undelivered}
        try:
            if offsets:
                self.consumer.commit(offsets)
                self.watchdog.committed()
        except (CommitFailedError, RebalanceInProgressError) as exc:
            logger.warning("%s: commit skipped, group is rebalancing (%s); messages will be re-sent",
                           NAME, type(exc).__name__)
            self.watchdog.refused(exc)
        if undelivered:
            raise DeliveryError(f"{NAME}: re-publish failed, not committed: {describe(undelivered)}")
        logger.info("%s: re-published %d message(s)", NAME, sent)
        return sent

    def run(self, idle_exit_after: int | None = None) -> None:
        """Poll until stopped; ``idle_exit_after`` polls without a due message end the loop."""
        wait_for_topics(self.consumer, self.topics, stop=self.stop.is_set)
        self.consumer.subscribe(self.topics)
        idle, polls, ready = 0, 0, False
        logger.info("%s: consuming %s", NAME, ", ".join(self.topics))
        try:
            while not self.stop.is_set():
                now = time.time()
                self._resume_due(now)
                polled = self.consumer.poll(timeout_ms=self._poll_timeout_ms(now),
                                            max_records=self.settings.batch_size)
                self.watchdog.polled(self.consumer)
                polls += 1
                if not ready and (self.consumer.assignment() or polls >= 3):
                    ready = True
                    mark_ready(self.settings, NAME)
                if self.run_batch(polled):
                    idle = 0
                elif self.consumer.assignment() and not self._resume_at:
                    idle += 1
                    if idle_exit_after is not None and idle >= idle_exit_after:
                        break
        except KafkaError:
            logger.exception("%s: Kafka failure; exiting without committing", NAME)
            raise
        finally:
            self.close()

    def close(self) -> None:
        logger.info("%s: closing", NAME)
        clear_ready(self.settings, NAME)
        try:
            self.producer.flush()
        finally:
            self.producer.close()
            self.consumer.close()


def run(settings: Settings) -> None:
    """Run the retrier until SIGTERM."""
    stop = StopFlag()
    stop.install()
    retrier = Retrier(settings, make_consumer(settings, f"newswatch-{NAME}"), make_producer(settings), stop)
    retrier.run()
