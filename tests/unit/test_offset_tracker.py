"""What the per-host scheduled runner commits when records finish out of order."""

from __future__ import annotations

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata

from pipeline.scheduled import METADATA_MAX_CHARS, OffsetTracker, decode_done, encode_done

TP0 = TopicPartition("t", 0)


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
    commit = tracker.committable()[TP0]
    assert commit.offset == 10  # not past the one still waiting...
    assert decode_done(commit) == {11, 12, 13}  # ...but the next owner skips these
    assert tracker.committable() == {}  # nothing new since
    tracker.done(records[0])
    commit = tracker.committable()[TP0]
    assert (commit.offset, decode_done(commit)) == (14, set())
    tracker.done(records[4])
    assert tracker.committable()[TP0].offset == 15


def test_a_refused_commit_is_offered_again() -> None:
    tracker = OffsetTracker()
    records = [record(0, n) for n in range(3)]
    for r in records:
        tracker.add(r)
        tracker.done(r)
    refused = tracker.committable()
    assert refused[TP0].offset == 3
    assert tracker.committable() == {}
    tracker.again(refused)  # the broker refused it: the next write commits it again
    assert tracker.committable() == refused
    tracker.drop(TP0)
    tracker.again(refused)  # ... unless the partition has gone to another replica
    assert tracker.committable() == {}


def test_partitions_are_independent_and_a_dropped_one_is_forgotten() -> None:
    tracker = OffsetTracker()
    a, b = record(0, 5), record(1, 7)
    tracker.add(a)
    tracker.add(b)
    tracker.done(b)
    assert {tp.partition: m.offset for tp, m in tracker.committable().items()} == {1: 8}
    tracker.drop(TP0)
    tracker.done(a)  # finished after its partition moved: its new owner commits it
    assert tracker.committable() == {}
    assert not tracker.holds(a)


def test_done_offsets_round_trip_through_commit_metadata() -> None:
    done = [101, 102, 103, 107, 110, 111]
    text = encode_done(100, done)
    assert text == "done:1-3,7,10-11"
    assert decode_done(OffsetAndMetadata(100, text, -1)) == set(done)
    assert encode_done(100, []) == ""
    for other in (None, OffsetAndMetadata(5, "", -1), OffsetAndMetadata(5, "done:x-", -1),
                  OffsetAndMetadata(5, "something else", -1)):
        assert decode_done(other) == set()


def test_metadata_is_cut_to_what_the_broker_accepts() -> None:
    scattered = list(range(1, 100_000, 2))  # no two adjacent: one item each
    text = encode_done(0, scattered)
    assert len(text) <= METADATA_MAX_CHARS
    kept = decode_done(OffsetAndMetadata(0, text, -1))
    assert kept and kept <= set(scattered)
    assert min(kept) == 1  # the nearest ones are kept: they come back first
