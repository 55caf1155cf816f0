"""``run_stage``: the one runner that owns all Kafka I/O for every stage.

1. poll a batch and decode each value into a ``Story``;
2. call the processor; its result is forwarded to the sink, ``None``/``Discard``
   is dropped and counted, ``PermanentError`` (or a decode failure) goes to the
   dead-letter topic with headers, ``TransientError`` is retried in process and
   then sent to the delayed retry tiers (``news.retry.N``, re-published by the
   retrier stage; dead-lettered after the last tier), any other exception is
   retried with backoff and then dead-lettered. A record the sink cannot take
   (too large for the topic, not serialisable) takes the same paths;
3. flush the sink and the producer, check every delivery (sink, retry topic,
   dead-letter topic), **then** commit ``offset + 1``; a partition with an
   undelivered outcome is not committed and the stage exits;
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
    RebalanceInProgressError,
)
from kafka.structs import OffsetAndMetadata
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)

from pipeline.delivery import Deliveries, DeliveryError, describe, record_error
from pipeline.errors import Discard, PermanentError, TransientError
from pipeline.health import clear_ready, mark_ready
from pipeline.kafka_io import DLQ, wait_for_topics
from pipeline.liveness import GroupWatchdog
from pipeline.metrics import MESSAGES, STAGE_SECONDS, observe_lag, observe_record
from pipeline.retry import (
    RETRY_COUNT,
    STAGE,
    backoff,
    encode,
    failure_headers,
    header,
    int_header,
    plan_retry,
    retry_topic,
    retry_topics,
    with_retry,
)
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
    skipped: str | None = None  # a retried or replayed message meant for another stage


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
            except KafkaError as exc:
                # A record the broker refuses (too large for the topic, invalid) is dead-lettered;
                # any other KafkaError propagates: nothing is committed, the batch is redelivered.
                error = record_error(exc, self.topic)
                if error is None:
                    raise
                failed.append((record, error))
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


def _retry_in_process(exc: BaseException) -> bool:
    """Quick retries help with blips; not with a decision (discard, permanent), a record the
    broker refuses, a broker failure (the stage exits), or a server that named its wait."""
    if isinstance(exc, Discard | PermanentError | KafkaError):
        return False
    return not (isinstance(exc, TransientError) and exc.retry_after)


def _last_error(exc: RetryError) -> Exception:
    last = exc.last_attempt.exception()
    return last if isinstance(last, Exception) else exc


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
        # out of a stable group, or every commit refused, for group_stuck_s: the stage exits
        self.watchdog = GroupWatchdog(name, settings.group_stuck_s)

    # -- one record --------------------------------------------------------
    def _retrying(self, what: str, story: Story, record: ConsumerRecord) -> Retrying:
        def log_retry(state: RetryCallState) -> None:
            logger.warning(
                "%s: %s attempt %d failed for %s (offset %s:%s): %s; retrying",
                self.name, what, state.attempt_number, story.url, record.partition, record.offset,
                state.outcome.exception() if state.outcome else "?",
            )

        return Retrying(
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=backoff(self.settings),
            retry=retry_if_exception(_retry_in_process),
            reraise=False,
            before_sleep=log_retry,
        )

    def _measured(self, record: ConsumerRecord) -> Outcome:
        """``_handle`` with its time and retries counted (metrics only)."""
        started = time.perf_counter()
        outcome = self._handle(record)
        observe_record(self.name, outcome.attempts, time.perf_counter() - started)
        return outcome

    def _handle(self, record: ConsumerRecord) -> Outcome:
        target = header(record.headers, STAGE)
        if target is not None and target != self.name:
            return Outcome(record, skipped=f"re-published for stage {target}")
        try:
            story = Story.from_bytes(record.value)
        except PermanentError as exc:
            return Outcome(record, error=exc)
        attempts = 0
        try:
            for attempt in self._retrying("process", story, record):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    result = self.process(story)
        except Discard as exc:
            return Outcome(record, discarded=exc.reason, attempts=attempts)
        except RetryError as exc:
            return Outcome(record, error=_last_error(exc), attempts=attempts)
        except Exception as exc:  # not retried in process: permanent, or a server's Retry-After
            return Outcome(record, error=exc, attempts=attempts)
        if result is None:
            return Outcome(record, discarded="processor returned None", attempts=attempts)
        return Outcome(record, story=result, attempts=attempts)

    def _emit(self, story: Story, record: ConsumerRecord) -> Exception | None:
        """Hand ``story`` to the sink; an error of this one record is returned (it takes the
        path of a processor error), a broker failure is raised (the stage exits)."""
        try:
            for attempt in self._retrying("emit", story, record):
                with attempt:
                    self.sink.emit(story, record)
        except RetryError as exc:
            error = _last_error(exc)
        except Exception as exc:
            error = exc
        else:
            return None
        poison = record_error(error)
        if poison is not None:
            return poison
        if isinstance(error, KafkaError):
            raise error
        return error

    def _fail(
        self, deliveries: Deliveries, record: ConsumerRecord, error: Exception, attempts: int = 1
    ) -> None:
        """Send a failed message to its next retry tier (transient failures) or the DLQ."""
        now = time.time()
        headers = failure_headers(
            stage=self.name, error=error, topic=record.topic, partition=record.partition,
            offset=record.offset, attempts=attempts, incoming=record.headers, now=now,
        )
        key = (record.key or b"").decode("utf-8", "replace")
        retries = int_header(record.headers, RETRY_COUNT)
        if isinstance(error, TransientError):
            plan = plan_retry(self.settings.retry_delays_s, retries, error.retry_after, now)
            if plan is not None:
                topic = self.settings.topic(retry_topic(plan.tier))
                logger.warning(
                    "%s: retry %d of %s:%s offset %s (key %s) in %gs via %s: %s",
                    self.name, plan.count, record.topic, record.partition, record.offset, key,
                    self.settings.retry_delays_s[plan.tier], topic, error,
                )
                deliveries.send(self.producer, record, topic, record.value, with_retry(headers, plan))
                MESSAGES.labels(self.name, "retried").inc()
                return
        if retries:
            headers.append((RETRY_COUNT, encode(retries)))
        logger.error(
            "%s: dead-lettering %s:%s offset %s (key %s): %s: %s",
            self.name, record.topic, record.partition, record.offset, key, type(error).__name__, error,
        )
        deliveries.send(self.producer, record, self.dlq_topic, record.value, headers)
        MESSAGES.labels(self.name, "dead_letter").inc()

    # -- one batch ---------------------------------------------------------
    def run_batch(self, records: Sequence[ConsumerRecord]) -> None:
        started = time.monotonic()
        MESSAGES.labels(self.name, "consumed").inc(len(records))
        if self._pool is not None:
            outcomes = list(self._pool.map(self._measured, records))
        else:
            outcomes = [self._measured(r) for r in records]
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            offsets[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
        try:
            self.deliver(outcomes, offsets)
        finally:
            STAGE_SECONDS.labels(self.name).observe(time.monotonic() - started)

    def deliver(self, outcomes: Sequence[Outcome],
                offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Make every outcome durable (sink, retry tier, DLQ) and check each delivery,
        **then** commit ``offsets``, except on the partitions with an undelivered
        outcome; those raise ``DeliveryError`` once the others are committed."""
        deliveries = Deliveries()
        emitted = 0
        for outcome in outcomes:
            if outcome.story is not None:
                error = self._emit(outcome.story, outcome.record)
                if error is None:
                    emitted += 1
                    continue
                outcome.error = error
            if outcome.skipped is not None:
                MESSAGES.labels(self.name, "skipped").inc()
            elif outcome.discarded is not None:
                logger.info(
                    "%s: discarded offset %s:%s: %s", self.name,
                    outcome.record.partition, outcome.record.offset, outcome.discarded,
                )
                MESSAGES.labels(self.name, "discarded").inc()
            elif outcome.error is not None:
                self._fail(deliveries, outcome.record, outcome.error, outcome.attempts)
        # A sink that cannot deliver at all raises here: nothing is committed.
        failed = self.sink.flush()
        for record, error in failed:
            self._fail(deliveries, record, error)
        MESSAGES.labels(self.name, "forwarded").inc(emitted - len(failed))
        self.producer.flush()
        undelivered = deliveries.undelivered()
        # Only now is every outcome durable somewhere: commit, except on the partitions
        # where a dead letter or a retry was not delivered.
        offsets = {tp: meta for tp, meta in offsets.items() if tp not in undelivered}
        try:
            if offsets:
                self.consumer.commit(offsets)
                self.watchdog.committed()
        except (CommitFailedError, RebalanceInProgressError) as exc:
            # The partitions moved to another replica (scaling, a restart) while this
            # batch ran: its new owner redelivers the batch, and story ids make that
            # harmless downstream. Not a reason to crash, unless it never ends.
            logger.warning("%s: commit skipped, group is rebalancing (%s); batch will be redelivered",
                           self.name, type(exc).__name__)
            self.watchdog.refused(exc)
        observe_lag(self.name, self.consumer)
        if undelivered:
            raise DeliveryError(f"{self.name}: undelivered outcomes, not committed: {describe(undelivered)}")

    def run(self, idle_exit_after: int | None = None) -> None:
        """Poll until stopped; ``idle_exit_after`` empty polls end the loop (tools, tests)."""
        # The outcome topics too: a retry tier that `newswatch setup` has not created (a tier
        # added to NEWSWATCH_RETRY_DELAYS_S) fails here, at start-up, with a clear message.
        outputs = [self.dlq_topic, *(self.settings.topic(t) for t in retry_topics(self.settings))]
        wait_for_topics(self.consumer, [self.source_topic, *outputs], stop=self.stop.is_set)
        self.consumer.subscribe([self.source_topic])
        idle = 0
        polls, ready = 0, False
        logger.info("%s: consuming %s", self.name, self.source_topic)
        try:
            while not self.stop.is_set():
                polled = self.poll(self.settings.poll_timeout_ms)
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
                        if self._caught_up():
                            break
                        idle = 0  # empty polls after a rebalance, with messages still to read
                    continue
                idle = 0
                self.run_batch(records)
        except KafkaError:
            logger.exception("%s: Kafka failure; exiting without committing the batch "
                             "(or the partitions it could not deliver)", self.name)
            raise
        finally:
            self.close()

    def poll(self, timeout_ms: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        """One poll of the consumer, then the group-liveness check (both runners' loops
        poll through here): raises ``StuckInRebalance`` when the stage must exit."""
        polled: dict[TopicPartition, list[ConsumerRecord]] = self.consumer.poll(
            timeout_ms=timeout_ms, max_records=self.settings.batch_size)
        self.watchdog.polled(self.consumer)
        return polled

    def _caught_up(self) -> bool:
        """Every assigned partition read to its end (``idle_exit_after`` ends only then)."""
        assigned = list(self.consumer.assignment())
        if not assigned:
            return False
        end = self.consumer.end_offsets(assigned)
        return all(self.consumer.position(tp) >= end[tp] for tp in assigned)

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
    runner_class: type[StageRunner] | None = None,
    **runner_options: Any,
) -> None:
    """Run one stage until SIGTERM/SIGINT: the entry point of ``newswatch run``.

    ``runner_class`` (default ``StageRunner``) and ``runner_options`` let a stage run under
    a subclass with the same Kafka set-up (the fetcher's ``HostScheduledRunner``)."""
    from pipeline.kafka_io import make_consumer, make_producer

    stop = StopFlag()
    stop.install()
    producer = make_producer(settings)
    consumer = make_consumer(settings, f"newswatch-{name}")
    runner = (runner_class or StageRunner)(
        name, process, settings.topic(source_topic), sink_factory(producer),
        settings=settings, consumer=consumer, producer=producer,
        concurrency=concurrency, stop=stop, **runner_options,
    )
    runner.run(idle_exit_after=idle_exit_after)
