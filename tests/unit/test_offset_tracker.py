"""What the per-host scheduled runner may commit when records finish out of order."""

from __future__ import annotations

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from pipeline.scheduled import OffsetTracker


def record(partition: int, offset: int) -> ConsumerRecord:
    values = dict.fromkeys(ConsumerRecord._fields)
    values.update(topic="t", partition=partition, offset=offset, headers=[])
    return ConsumerRecord(**values)


def test_commits_stop_at_the_first_record_not_yet_delivered() -> None:
    tracker = OffsetTracker()
    records = [record(0, n) for n in range(10, 15)]
    for r in records:
        tracker.add(r)
    assert tracker.committable() == {}
    # the slow host's entry at offset 10 still waits; later ones finished first
    for r in records[1:4]:
        tracker.done(r)
    assert tracker.committable() == {}
    tracker.done(records[0])
    commits = tracker.committable()
    assert commits[TopicPartition("t", 0)].offset == 14  # 10..13 delivered, 14 not
    assert tracker.committable() == {}  # nothing new since
    tracker.done(records[4])
    assert tracker.committable()[TopicPartition("t", 0)].offset == 15


def test_partitions_are_independent_and_a_revoked_one_is_forgotten() -> None:
    tracker = OffsetTracker()
    a, b = record(0, 5), record(1, 7)
    tracker.add(a)
    tracker.add(b)
    tracker.done(b)
    assert {tp.partition: m.offset for tp, m in tracker.committable().items()} == {1: 8}
    tracker.drop(TopicPartition("t", 0))
    tracker.done(a)  # finished after its partition moved: its new owner commits it
    assert tracker.committable() == {}
