"""``run_stage``: the one runner that owns all Kafka I/O for every stage.

1. poll a batch and decode each value into a ``Story``;
2. call the processor; its result is forwarded to the sink, ``None``/``Discard``
   is dropped and counted, ``PermanentError`` (or a decode failure) goes to the
   dead-letter topic with headers, any other exception is retried with backoff
   and then dead-lettered;
3. flush the sink and the producer, **then** commit ``offset + 1``;
4. SIGTERM/SIGINT finish the batch, flush, commit and close.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import (
    CommitFailedError,
    KafkaError,
    MessageSizeTooLargeError,
    RebalanceInProgressError,
)
from kafka.structs import OffsetAndMetadata
from tenacity import (
    RetryError,
    Retrying,
    retry_if_not_exception_type,
    stop_after_attempt,
)

from pipeline.errors import Discard, PermanentError
from pipeline.health import clear_ready, mark_ready
from pipeline.kafka_io import DLQ, wait_for_topics
from pipeline.metrics import MESSAGES, STAGE_SECONDS, observe_lag, observe_record
from pipeline.retry import backoff
from pipeline.settings import Settings
from pipeline.story import Story

logger = logging.getLogger(__name__)

Processor = Callable[[Story], "Story | None"]


def unchanged(story: Story) -> Story:
    """The processor of stages whose work is all in the sink (indexer, alerter)."""
    return story


class Sink(Protocol):
    """Where forwarded stories go: a Kafka topic, Elasticsearch, alert topics."""

    def emit(self, story: Story, record: ConsumerRecord) -> None: ...

    def flush(self) -> list[tuple[ConsumerRecord, Exception]]:
        """Deliver everything emitted; return the records that failed permanently."""
        ...


@dataclass
class Outcome:
    record: ConsumerRecord
    story: Story | None = None
    discarded: str | None = None
    error: Exception | None = None
    attempts: int = 1


class KafkaTopicSink:
    """Produce each story to one topic, keyed by story id."""

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self._pending: list[tuple[ConsumerRecord, Any]] = []

    def emit(self, story: Story, record: ConsumerRecord) -> None:
        future = self.producer.send(self.topic, key=story.id.encode(), value=story.to_bytes())
        self._pending.append((record, future))

    def flush(self) -> list[tuple[ConsumerRecord, Exception]]:
        self.producer.flush()
        failed: list[tuple[ConsumerRecord, Exception]] = []
        pending, self._pending = self._pending, []
        for record, future in pending:
            try:
                future.get(timeout=30)
            except MessageSizeTooLargeError as exc:
                failed.append((record, PermanentError(f"story too large for Kafka: {exc}")))
            # any other KafkaError propagates: nothing is committed, the batch is redelivered
        return failed


class StopFlag:
    """Set by SIGTERM/SIGINT (or a test); the runner finishes its batch and exits."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self, *_: object) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.set)
            signal.signal(signal.SIGINT, self.set)


def _header(value: object) -> bytes:
    return str(value).encode("utf-8", "replace")[:4000]


class StageRunner:
    """Consume ``source_topic``, apply ``process``, hand results to ``sink``."""

    def __init__(
        self,
        name: str,
        process: Processor,
        source_topic: str,
        sink: Sink,
        *,
        settings: Settings,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        concurrency: int = 1,
        stop: StopFlag | None = None,
    ) -> None:
        self.name = name
        self.process = process
        self.source_topic = source_topic
        self.sink = sink
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.concurrency = concurrency
        self.stop = stop or StopFlag()
        self.dlq_topic = settings.topic(DLQ)
        self._pool = ThreadPoolExecutor(concurrency) if concurrency > 1 else None

    # -- one record --------------------------------------------------------
    def _measured(self, record: ConsumerRecord) -> Outcome:
        """``_handle`` with its time and retries counted (metrics only)."""
        started = time.perf_counter()
        outcome = self._handle(record)
        observe_record(self.name, outcome.attempts, time.perf_counter() - started)
        return outcome

    def _handle(self, record: ConsumerRecord) -> Outcome:
        try:
            story = Story.from_bytes(record.value)
        except PermanentError as exc:
            return Outcome(record, error=exc)
        retrying = Retrying(
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=backoff(self.settings),
            retry=retry_if_not_exception_type((Discard, PermanentError)),
            reraise=False,
            before_sleep=lambda state: logger.warning(
                "%s: attempt %d failed for %s (offset %s:%s): %s; retrying",
                self.name, state.attempt_number, story.url, record.partition, record.offset,
                state.outcome.exception() if state.outcome else "?",
            ),
        )
        attempts = 0
        try:
            for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    result = self.process(story)
        except Discard as exc:
            return Outcome(record, discarded=exc.reason, attempts=attempts)
        except PermanentError as exc:
            return Outcome(record, error=exc, attempts=attempts)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            error = last if isinstance(last, Exception) else exc
            return Outcome(record, error=error, attempts=attempts)
        if result is None:
            return Outcome(record, discarded="processor returned None", attempts=attempts)
        return Outcome(record, story=result, attempts=attempts)

    def dead_letter(self, record: ConsumerRecord, error: Exception, attempts: int = 1) -> None:
        logger.error(
            "%s: dead-lettering %s:%s offset %s (key %s): %s: %s",
            self.name, record.topic, record.partition, record.offset,
            (record.key or b"").decode("utf-8", "replace"), type(error).__name__, error,
        )
        headers = [
            ("x-stage", _header(self.name)),
            ("x-error", _header(error)),
            ("x-error-type", _header(type(error).__name__)),
            ("x-source-topic", _header(record.topic)),
            ("x-partition", _header(record.partition)),
            ("x-offset", _header(record.offset)),
            ("x-attempts", _header(attempts)),
            ("x-failed-at", _header(int(time.time() * 1000))),
        ]
        self.producer.send(self.dlq_topic, key=record.key, value=record.value, headers=headers)
        MESSAGES.labels(self.name, "dead_letter").inc()

    # -- one batch ---------------------------------------------------------
    def run_batch(self, records: Sequence[ConsumerRecord]) -> None:
        started = time.monotonic()
        MESSAGES.labels(self.name, "consumed").inc(len(records))
        if self._pool is not None:
            outcomes = list(self._pool.map(self._measured, records))
        else:
            outcomes = [self._measured(r) for r in records]
        emitted = 0
        for outcome in outcomes:
            if outcome.story is not None:
                self.sink.emit(outcome.story, outcome.record)
                emitted += 1
            elif outcome.discarded is not None:
                logger.info(
                    "%s: discarded offset %s:%s: %s", self.name,
                    outcome.record.partition, outcome.record.offset, outcome.discarded,
                )
                MESSAGES.labels(self.name, "discarded").inc()
            elif outcome.error is not None:
                self.dead_letter(outcome.record, outcome.error, outcome.attempts)
        failed = self.sink.flush()
        for record, error in failed:
            self.dead_letter(record, error)
        MESSAGES.labels(self.name, "forwarded").inc(emitted - len(failed))
        self.producer.flush()
        # Only now is every outcome durable somewhere: commit offset + 1.
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            offsets[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
        try:
            self.consumer.commit(offsets)
        except (CommitFailedError, RebalanceInProgressError) as exc:
            # The partitions moved to another replica (scaling, a restart) while this
            # batch ran: its new owner redelivers the batch, and story ids make that
            # harmless downstream. Not a reason to crash.
            logger.warning("%s: commit skipped, group is rebalancing (%s); batch will be redelivered",
                           self.name, type(exc).__name__)
        STAGE_SECONDS.labels(self.name).observe(time.monotonic() - started)
        observe_lag(self.name, self.consumer)

    def run(self, idle_exit_after: int | None = None) -> None:
        """Poll until stopped; ``idle_exit_after`` empty polls end the loop (tools, tests)."""
        wait_for_topics(self.consumer, [self.source_topic], stop=self.stop.is_set)
        self.consumer.subscribe([self.source_topic])
        idle = 0
        polls, ready = 0, False
        logger.info("%s: consuming %s", self.name, self.source_topic)
        try:
            while not self.stop.is_set():
                polled = self.consumer.poll(
                    timeout_ms=self.settings.poll_timeout_ms, max_records=self.settings.batch_size
                )
                polls += 1
                # Ready once partitions are assigned (or, for a surplus replica that
                # gets none, once the group has settled over a few polls).
                if not ready and (self.consumer.assignment() or polls >= 3):
                    ready = True
                    mark_ready(self.settings, self.name)
                records = [r for tp in sorted(polled, key=lambda t: t.partition) for r in polled[tp]]
                if not records:
                    # An empty poll before the group has assigned partitions says nothing
                    # about whether the topic is drained.
                    if self.consumer.assignment():
                        idle += 1
                    if idle_exit_after is not None and idle >= idle_exit_after:
                        break
                    continue
                idle = 0
                self.run_batch(records)
        except KafkaError:
            logger.exception("%s: Kafka failure; exiting without committing the batch", self.name)
            raise
        finally:
            self.close()

    def close(self) -> None:
        logger.info("%s: closing", self.name)
        clear_ready(self.settings, self.name)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        try:
            self.producer.flush()
        finally:
            self.producer.close()
            self.consumer.close()


def run_stage(
    name: str,
    process: Processor,
    source_topic: str,
    sink_factory: Callable[[KafkaProducer], Sink],
    settings: Settings,
    *,
    concurrency: int = 1,
    idle_exit_after: int | None = None,
) -> None:
    """Run one stage until SIGTERM/SIGINT: the entry point of ``newswatch run``."""
    from pipeline.kafka_io import make_consumer, make_producer

    stop = StopFlag()
    stop.install()
    producer = make_producer(settings)
    consumer = make_consumer(settings, f"newswatch-{name}")
    runner = StageRunner(
        name, process, settings.topic(source_topic), sink_factory(producer),
        settings=settings, consumer=consumer, producer=producer,
        concurrency=concurrency, stop=stop,
    )
    runner.run(idle_exit_after=idle_exit_after)
