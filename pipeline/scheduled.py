"""``HostScheduledRunner``: ``run_stage`` for a stage whose records wait for a per-host turn.

The plain runner polls a batch, processes all of it, then polls again. When a
record has to wait (the fetcher's per-host delay, a robots.txt Crawl-delay of
up to a minute), that wait happens inside the batch: a batch with many entries
of one slow host outlasts ``max_poll_interval_ms``, the consumer is evicted,
and the batch is redelivered and fetched again, in a loop.

Here nothing waits inside the poll loop. The consumer thread keeps polling
(every 50 ms while work is in flight), and the records it gets wait in memory,
one queue per *slot* (the fetcher's slot is the URL's host):

- a slot's next record is handed to a worker only when the slot is due
  (``ready_at``) and none of its records is in flight, so a worker never sleeps
  on politeness and the other hosts' records keep flowing to the free workers;
- outcomes are delivered exactly as by ``StageRunner.deliver`` (sink, DLQ,
  flush), then the offsets are committed: per partition, up to the first record
  that is not yet delivered (records finish out of order, a commit never skips
  one);
- above ``max_buffered`` records held, every assigned partition is paused (the
  consumer still polls, so it stays in its group) and resumed at half of it;
- the delivered records above a commit's offset go with it as commit metadata,
  so the next owner of the partition (after a rebalance or a restart) skips
  them instead of fetching them again;
- on a rebalance, the records of partitions that went to another replica are
  dropped unfetched (their new owner reads them from the committed offset),
  those of partitions this replica keeps stay where they are;
- SIGTERM drops the records that have not started (they are not committed),
  finishes the ones in flight while still polling, delivers, commits, closes.

A record is fetched twice only when a replica dies or partitions move while it
is in flight, or within a second of its delivery (before the next commit):
at-least-once, as before, and idempotent downstream through the story id.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from pipeline.errors import PermanentError
from pipeline.health import mark_ready
from pipeline.kafka_io import wait_for_topics
from pipeline.metrics import MESSAGES, STAGE_SECONDS
from pipeline.retry import STAGE, header, retry_topics
from pipeline.settings import Settings
from pipeline.stage import Outcome, Sink, StageRunner, run_stage
from pipeline.story import Story

logger = logging.getLogger(__name__)

BUSY_POLL_MS = 50  # poll timeout while records are in flight: completions are picked up this fast
WRITE_EVERY_S = 1.0  # deliver and commit finished records at least this often


def _tp(record: ConsumerRecord) -> TopicPartition:
    return TopicPartition(record.topic, record.partition)


METADATA_PREFIX = "done:"
METADATA_MAX_CHARS = 3000  # the broker's offset.metadata.max.bytes is 4096 by default


def encode_done(position: int, done: list[int]) -> str:
    """The delivered offsets above a committed ``position``, as commit metadata
    (``done:2-5,9`` = position+2..position+5 and position+9). Cut at
    ``METADATA_MAX_CHARS``: what does not fit is fetched again, only a repeat."""
    deltas = sorted(o - position for o in done if o > position)
    items: list[str] = []
    length = len(METADATA_PREFIX)
    i = 0
    while i < len(deltas):
        j = i
        while j + 1 < len(deltas) and deltas[j + 1] == deltas[j] + 1:
            j += 1
        item = str(deltas[i]) if i == j else f"{deltas[i]}-{deltas[j]}"
        if length + len(item) + 1 > METADATA_MAX_CHARS:
            break
        items.append(item)
        length += len(item) + 1
        i = j + 1
    return METADATA_PREFIX + ",".join(items) if items else ""


def decode_done(committed: OffsetAndMetadata | None) -> set[int]:
    """The offsets ``encode_done`` recorded (none for any other metadata)."""
    if committed is None or not (committed.metadata or "").startswith(METADATA_PREFIX):
        return set()
    done: set[int] = set()
    try:
        for item in committed.metadata[len(METADATA_PREFIX):].split(","):
            low, _, high = item.partition("-")
            done.update(range(committed.offset + int(low), committed.offset + int(high or low) + 1))
    except ValueError:
        return set()
    return done


class OffsetTracker:
    """Per partition, the offsets held in memory in the order they arrived. A commit is
    everything before the first one not yet delivered, with the delivered ones above
    it as metadata (``encode_done``)."""

    def __init__(self) -> None:
        self._open: dict[TopicPartition, dict[int, bool]] = {}
        self._next: dict[TopicPartition, int] = {}
        self._dirty: set[TopicPartition] = set()

    def add(self, record: ConsumerRecord) -> None:
        self._open.setdefault(_tp(record), {})[record.offset] = False

    def done(self, record: ConsumerRecord) -> None:
        tp = _tp(record)
        offsets = self._open.get(tp)
        if offsets is not None and record.offset in offsets:
            offsets[record.offset] = True
            self._dirty.add(tp)

    def holds(self, record: ConsumerRecord) -> bool:
        return record.offset in self._open.get(_tp(record), {})

    def drop(self, tp: TopicPartition) -> None:
        self._open.pop(tp, None)
        self._next.pop(tp, None)
        self._dirty.discard(tp)

    def again(self, partitions: Collection[TopicPartition]) -> None:
        """The next ``committable`` includes ``partitions`` again (their commit was refused)."""
        self._dirty.update(tp for tp in partitions if tp in self._open or tp in self._next)

    def committable(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """For each partition with records delivered since the last call: the offset
        after its contiguous delivered prefix (forgotten now), and as metadata the
        delivered offsets above it."""
        commits: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp in sorted(self._dirty):
            offsets = self._open.get(tp, {})
            while offsets:
                first = next(iter(offsets))
                if not offsets[first]:
                    break
                del offsets[first]
                self._next[tp] = first + 1
            position = next(iter(offsets)) if offsets else self._next.get(tp)
            if position is not None:
                done = [o for o, delivered in offsets.items() if delivered]
                commits[tp] = OffsetAndMetadata(position, encode_done(position, done), -1)
        self._dirty.clear()
        return commits


class HostScheduledRunner(StageRunner, ConsumerRebalanceListener):
    """A ``StageRunner`` that keeps polling while records wait for their slot's turn.

    ``slot_of(story)`` names the clock a record waits on (``None``: none), and
    ``ready_at(slot)`` says when (``time.monotonic``) the slot may start its next
    record. At most one record per slot is in flight.
    """

    def __init__(self, *args: Any, slot_of: Callable[[Story], str | None],
                 ready_at: Callable[[str], float], max_buffered: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._pool is None:  # the consumer thread never processes a record itself
            self._pool = ThreadPoolExecutor(1)
        self.slot_of = slot_of
        self.ready_at = ready_at
        self.max_buffered = max_buffered
        self.assigned_at: list[float] = []  # wall-clock time of each assignment
        self.lost = 0  # evictions from the group (a poll came too late)
        self.skipped = 0  # records not fetched again: delivered before (commit metadata)
        self._tracker = OffsetTracker()
        self._queues: OrderedDict[str, deque[ConsumerRecord]] = OrderedDict()
        self._unslotted: deque[ConsumerRecord] = deque()
        self._busy: set[str] = set()
        self._in_flight: dict[Future[Outcome], tuple[ConsumerRecord, str | None]] = {}
        self._done: list[Outcome] = []
        self._progress = False  # something to commit (outcomes, or skipped records)
        self._progress_since = 0.0
        self._held = 0  # records polled and not yet delivered
        self._events: deque[tuple[str, set[TopicPartition]]] = deque()
        self._owned: set[TopicPartition] = set()
        self._skip: dict[TopicPartition, set[int]] = {}

    # -- rebalances ------------------------------------------------------
    # kafka-python runs these callbacks on its IO thread: they only record the event,
    # and the consumer thread applies it (``_apply_rebalances``) after its next poll.
    def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        self._events.append(("revoked", set(revoked)))

    def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        self.assigned_at.append(time.time())
        self._events.append(("assigned", set(assigned)))

    def on_partitions_lost(self, lost: Collection[TopicPartition]) -> None:
        self.lost += 1  # evicted: positions restart from the committed offsets
        self._events.append(("lost", set(lost)))

    def _apply_rebalances(self) -> None:
        """Forget the partitions that went elsewhere (their held records unfetched and
        uncommitted: the new owner reads them from the committed offset) and read, for
        the new ones, which records past the committed offset were delivered already.
        kafka-python keeps the position of a partition that stays assigned, so its held
        records stay where they are."""
        if not self._events:
            return
        lost: set[TopicPartition] = set()
        while self._events:
            kind, partitions = self._events.popleft()
            if kind == "lost":
                lost |= partitions
                logger.warning("%s: evicted from the group, %d partition(s) lost",
                               self.name, len(partitions))
        current = set(self.consumer.assignment())
        self._forget((self._owned - current) | lost)
        for tp in sorted((current - self._owned) | (lost & current)):
            self._skip[tp] = decode_done(self.consumer.committed(tp, metadata=True, timeout_ms=30_000))
        self._owned = current
        logger.info("%s: partitions assigned: %s", self.name,
                    ", ".join(f"{tp.topic}:{tp.partition}" for tp in sorted(current)) or "none")

    def _forget(self, partitions: set[TopicPartition]) -> None:
        if not partitions:
            return
        self._drop_waiting(lambda r: _tp(r) in partitions)
        for tp in partitions:
            self._tracker.drop(tp)
            self._skip.pop(tp, None)
        logger.info("%s: partitions gone: %s", self.name,
                    ", ".join(f"{tp.topic}:{tp.partition}" for tp in sorted(partitions)))

    # -- holding, dispatching, delivering ----------------------------------
    def _hold(self, record: ConsumerRecord) -> None:
        if self._tracker.holds(record):
            return  # held, in flight or delivered already (a partition read again)
        MESSAGES.labels(self.name, "consumed").inc()
        self._tracker.add(record)
        skip = self._skip.get(_tp(record))
        if skip and record.offset in skip:
            # delivered before a restart or a rebalance (commit metadata): not again
            skip.discard(record.offset)
            self._tracker.done(record)
            self.skipped += 1
            self._note_progress()
            return
        self._held += 1
        target = header(record.headers, STAGE)
        try:
            # a retry re-published for another stage is only skipped: no host to wait for
            slot = self.slot_of(Story.from_bytes(record.value)) if target in (None, self.name) else None
        except PermanentError:
            slot = None  # undecodable: `_handle` dead-letters it, no host to wait for
        if slot is None:
            self._unslotted.append(record)
        else:
            self._queues.setdefault(slot, deque()).append(record)

    def _note_progress(self) -> None:
        if not self._progress:
            self._progress = True
            self._progress_since = time.monotonic()

    def _drop_waiting(self, which: Callable[[ConsumerRecord], bool]) -> None:
        """Forget records that have not started (they are not committed: redelivered)."""
        dropped = sum(1 for r in self._unslotted if which(r))
        self._unslotted = deque(r for r in self._unslotted if not which(r))
        for slot in list(self._queues):
            kept = deque(r for r in self._queues[slot] if not which(r))
            dropped += len(self._queues[slot]) - len(kept)
            if kept:
                self._queues[slot] = kept
            else:
                del self._queues[slot]
        self._held -= dropped

    def _submit(self, record: ConsumerRecord, slot: str | None) -> None:
        assert self._pool is not None
        self._in_flight[self._pool.submit(self._measured, record)] = (record, slot)
        if slot is not None:
            self._busy.add(slot)

    def _dispatch(self) -> None:
        free = self.concurrency - len(self._in_flight)
        while free > 0 and self._unslotted:
            self._submit(self._unslotted.popleft(), None)
            free -= 1
        now = time.monotonic()
        for slot in list(self._queues):  # least recently served slot first
            if free <= 0:
                break
            if slot in self._busy or self.ready_at(slot) > now:
                continue
            queue = self._queues[slot]
            record = queue.popleft()
            if queue:
                self._queues.move_to_end(slot)
            else:
                del self._queues[slot]
            self._submit(record, slot)
            free -= 1

    def _next_due_s(self) -> float | None:
        """Seconds until a waiting slot is due (``None``: no slot waits on a clock)."""
        dues = [self.ready_at(s) for s in self._queues if s not in self._busy]
        return max(0.0, min(dues) - time.monotonic()) if dues else None

    def _collect(self) -> None:
        for future in [f for f in self._in_flight if f.done()]:
            _, slot = self._in_flight.pop(future)
            if slot is not None:
                self._busy.discard(slot)
            self._done.append(future.result())
            self._note_progress()

    def _write(self) -> None:
        started = time.monotonic()
        outcomes, self._done, self._progress = self._done, [], False
        for outcome in outcomes:
            self._tracker.done(outcome.record)
        # never commit for a partition that is no longer ours (it would rewind its owner)
        owned = self.consumer.assignment()
        offsets = {tp: m for tp, m in self._tracker.committable().items() if tp in owned}
        self.deliver(outcomes, offsets)
        self._held -= len(outcomes)
        if offsets and self.watchdog.refusing:
            # Refused (the group was rebalancing): commit the same offsets at the next write
            # if the partitions are still ours, else the last commit of a run stays undone.
            self._tracker.again(offsets)
            self._note_progress()
        STAGE_SECONDS.labels(self.name).observe(time.monotonic() - started)

    def _write_due(self) -> bool:
        if not self._progress:
            return False
        return (len(self._done) >= self.settings.batch_size or not self._in_flight
                or time.monotonic() - self._progress_since >= WRITE_EVERY_S)

    def _throttle(self) -> None:
        """Pause every assigned partition while too much is held; resume at half."""
        assigned = self.consumer.assignment()
        paused = self.consumer.paused()
        if self._held >= self.max_buffered:
            if assigned - paused:
                self.consumer.pause(*(assigned - paused))
        elif paused and self._held <= self.max_buffered // 2:
            self.consumer.resume(*paused)

    def _poll_timeout_ms(self) -> int:
        if self._in_flight:
            return BUSY_POLL_MS
        due = self._next_due_s()
        if due is None:
            return self.settings.poll_timeout_ms
        return max(10, min(self.settings.poll_timeout_ms, int(due * 1000) + 1))

    # -- the loop ------------------------------------------------------------
    def run(self, idle_exit_after: int | None = None) -> None:
        """Poll until stopped; ``idle_exit_after`` empty polls with nothing held end it."""
        # as StageRunner.run: the outcome topics too (a retry tier `setup` did not create)
        outputs = [self.dlq_topic, *(self.settings.topic(t) for t in retry_topics(self.settings))]
        wait_for_topics(self.consumer, [self.source_topic, *outputs], stop=self.stop.is_set)
        self.consumer.subscribe([self.source_topic], listener=self)
        idle, polls, ready = 0, 0, False
        logger.info("%s: consuming %s (per-host scheduling, up to %d held)", self.name,
                    self.source_topic, self.max_buffered)
        try:
            while not self.stop.is_set():
                self._throttle()
                polled = self.poll(self._poll_timeout_ms())
                polls += 1
                self._apply_rebalances()
                if not ready and (self.consumer.assignment() or polls >= 3):
                    ready = True
                    mark_ready(self.settings, self.name)
                for tp in sorted(polled, key=lambda t: t.partition):
                    if tp in self._owned:  # a partition given away since this poll is not ours
                        for record in polled[tp]:
                            self._hold(record)
                self._collect()
                if self._write_due():
                    self._write()
                self._dispatch()
                if polled or self._held or self._progress:
                    idle = 0
                elif self.consumer.assignment():
                    idle += 1
                    if idle_exit_after is not None and idle >= idle_exit_after:
                        if self._caught_up():
                            break
                        idle = 0  # empty polls after a rebalance, with messages still to read
            self._drain()
        except KafkaError:
            logger.exception("%s: Kafka failure; exiting without committing what is held", self.name)
            raise
        finally:
            self.close()

    def _drain(self) -> None:
        """Stopping: drop what has not started, finish what is in flight (still polling,
        so the group keeps us), deliver and commit."""
        self._drop_waiting(lambda _r: True)
        assigned = self.consumer.assignment()
        if assigned:
            self.consumer.pause(*assigned)
        while self._in_flight:
            self.consumer.poll(timeout_ms=BUSY_POLL_MS)
            self._apply_rebalances()
            self._collect()
        if self._progress:
            self._write()


def run_scheduled_stage(
    name: str,
    process: Callable[[Story], Story | None],
    source_topic: str,
    sink_factory: Callable[[KafkaProducer], Sink],
    settings: Settings,
    *,
    slot_of: Callable[[Story], str | None],
    ready_at: Callable[[str], float],
    concurrency: int = 1,
    idle_exit_after: int | None = None,
) -> None:
    """``run_stage`` with per-slot scheduling (the fetcher's entry point)."""
    run_stage(name, process, source_topic, sink_factory, settings, concurrency=concurrency,
              idle_exit_after=idle_exit_after, runner_class=HostScheduledRunner,
              slot_of=slot_of, ready_at=ready_at, max_buffered=settings.fetch_max_waiting)
