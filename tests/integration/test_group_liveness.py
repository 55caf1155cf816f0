"""The group-liveness watchdog on the real broker (issue 9): a stage whose consumer cannot
reach a stable group exits with ``StuckInRebalance`` within ``NEWSWATCH_GROUP_STUCK_S``,
and a healthy surplus replica (stable, no partition) is left alone meanwhile.

Two honest ways to keep a real consumer out of a stable group:

* a wedged peer: a member of the group that stops polling. When the stage's consumer
  joins, the broker starts a rebalance and waits for every member to rejoin, up to the
  peer's rebalance timeout (its ``max_poll_interval_ms``); the stage's consumer sits in
  JoinGroup all that time, as kafka-python's stuck join/sync does;
* the broker stopped (``disruptive``): the coordinator is gone.
"""

from __future__ import annotations

import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from kafka import KafkaConsumer
from kafka.errors import KafkaConnectionError, KafkaError

from pipeline.kafka_io import ARTICLES, ENTRIES, make_consumer, make_producer
from pipeline.kafka_io import uncommitted as group_uncommitted
from pipeline.liveness import StuckInRebalance, group_state
from pipeline.settings import Settings
from pipeline.stage import KafkaTopicSink, StageRunner, unchanged
from pipeline.story import Content, Story
from tests.support.kafka import produce
from tests.support.services import check_services_are_ours, restored, services, services_ok

pytestmark = pytest.mark.integration

STUCK_S = 8.0
# how long after the limit the watchdog may take to notice (a poll is 300 ms; a loaded machine)
NOTICE_S = 5.0
# ... and the stage to be gone: closing sends LeaveGroup, which waits behind the JoinGroup the
# broker is holding on the same connection, up to the request timeout (30 s)
EXIT_S = STUCK_S + NOTICE_S + 35.0


@dataclass
class Running:
    """A ``StageRunner.run`` in a thread: when it ended, and how."""

    runner: StageRunner
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def why(self) -> str:
        return "".join(traceback.format_exception(self.error)) if self.error else "no error"

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


def stage(settings: Settings, group: str, name: str = "stage") -> StageRunner:
    producer = make_producer(settings)
    return StageRunner(name, unchanged, settings.topic(ENTRIES),
                       KafkaTopicSink(producer, settings.topic(ARTICLES)), settings=settings,
                       consumer=make_consumer(settings, group), producer=producer)


@contextmanager
def running(*runners: StageRunner) -> Iterator[list[Running]]:
    """Run each runner in its own thread; stop them (as SIGTERM would) and wait at the end."""
    states = [Running(r) for r in runners]

    def target(state: Running) -> None:
        try:
            state.runner.run()
        except BaseException as exc:
            state.error = exc
        finally:
            state.ended = time.monotonic()

    for state in states:
        state.thread = threading.Thread(target=target, args=(state,), daemon=True)
        state.thread.start()
    try:
        yield states
    finally:
        for state in states:
            state.runner.stop.set()
        for state in states:
            assert state.thread is not None
            state.thread.join(timeout=60)
            assert not state.thread.is_alive(), f"{state.runner.name} did not stop"


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.2)


def stories(n: int, tag: str) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n):
        story = Story.from_link(f"https://news.test/{tag}/{i}", content=Content(title=f"{tag} {i}"))
        out.append((story.id.encode(), story.to_bytes()))
    return out


def stuck_after_s(error: BaseException | None) -> float:
    """The seconds out of the group after which the watchdog fired, from its message."""
    assert isinstance(error, StuckInRebalance), (
        "".join(traceback.format_exception(error)) if error else "no error")
    found = re.search(r"out of a stable consumer group for (\d+)s", str(error))
    assert found, str(error)
    return float(found.group(1))


def uncommitted(settings: Settings, group: str) -> int:
    return group_uncommitted(settings, settings.topic(group), settings.topic(ENTRIES))


def test_a_stage_that_cannot_join_exits_and_a_surplus_replica_stays(
    make_settings: Callable[..., Settings]
) -> None:
    stuck_settings = make_settings(group_stuck_s=STUCK_S)
    healthy_settings = make_settings(group_stuck_s=STUCK_S, partitions=1)

    # The wedged peer: joins the stage's group, gets both partitions, then never polls
    # again. Its heartbeats go on (kafka-python's background thread), so the broker keeps
    # it, and a rebalance waits up to its max_poll_interval_ms for it to rejoin.
    peer = KafkaConsumer(bootstrap_servers=stuck_settings.kafka_bootstrap,
                         group_id=stuck_settings.topic("wedged"), enable_auto_commit=False,
                         max_poll_interval_ms=120_000)
    peer.subscribe([stuck_settings.topic(ENTRIES)])
    try:
        def peer_assigned() -> bool:
            peer.poll(timeout_ms=200)
            return bool(peer.assignment())

        wait_for(peer_assigned, 60, "the peer's partitions")

        # Two replicas of a healthy stage on a 1-partition topic: one owns it, the other is
        # a stable member with nothing assigned, which never commits. Never stuck.
        owner_or_surplus = [stage(healthy_settings, "healthy", "healthy-1"),
                            stage(healthy_settings, "healthy", "healthy-2")]
        with running(*owner_or_surplus) as healthy:
            wait_for(lambda: sum(bool(h.runner.consumer.assignment()) for h in healthy) == 1
                     and all(group_state(h.runner.consumer).stable for h in healthy), 60,
                     "one healthy replica with the partition, both stable")
            with running(stage(stuck_settings, "wedged", "stuck")) as (stuck,):
                produce(healthy_settings, ENTRIES, stories(5, "before"))
                wait_for(lambda: not stuck.alive(), EXIT_S, "the stuck stage to exit")
                produce(healthy_settings, ENTRIES, stories(5, "after"))
                # the healthy pair keeps running for longer than the limit after that
                time.sleep(STUCK_S + 2)
                assert all(h.alive() and h.error is None for h in healthy), [
                    (h.runner.name, h.error) for h in healthy]
                surplus = [h for h in healthy if not h.runner.consumer.assignment()]
                assert len(surplus) == 1, "no surplus replica: the case proves nothing"
                assert group_state(surplus[0].runner.consumer).stable
            # at the limit, not before (a consumer joining for a few seconds is not stuck)
            assert STUCK_S <= stuck_after_s(stuck.error) <= STUCK_S + NOTICE_S, stuck.error
            wait_for(lambda: uncommitted(healthy_settings, "healthy") == 0, 60,
                     "the healthy group to commit everything")
        assert all(h.error is None for h in healthy), [h.error for h in healthy]
    finally:
        peer.close()


@pytest.mark.disruptive
def test_a_stage_whose_broker_is_gone_exits_within_the_limit(
    make_settings: Callable[..., Settings]
) -> None:
    """Without a broker the consumer keeps its state (STABLE) and loses its coordinator, and
    ``poll`` returns nothing, for ever: the watchdog ends it. (Now and then kafka-python
    3.0.12 raises its own ``KafkaConnectionError`` from ``poll`` first, when a metadata refresh
    it awaits while looking for the coordinator fails: an exit too, also within the limit.)"""
    settings = make_settings(group_stuck_s=STUCK_S)
    check_services_are_ours(settings, "kafka")
    runner = stage(settings, "orphan")
    with restored("kafka"), running(runner) as (state,):
        wait_for(lambda: bool(runner.consumer.assignment())
                 and group_state(runner.consumer).stable, 60, "the stage in a stable group")
        services_ok("stop", "kafka")
        assert services("status", "kafka").returncode == 3
        stopped = time.monotonic()
        wait_for(lambda: not state.alive(), EXIT_S, "the stage to exit")
        assert state.ended is not None
        assert state.ended - stopped <= EXIT_S, state.ended - stopped
        assert isinstance(state.error, KafkaError), state.why()
        if not isinstance(state.error, KafkaConnectionError):
            assert STUCK_S <= stuck_after_s(state.error) <= STUCK_S + NOTICE_S, state.why()
            # the member state alone would not tell: it is kept while the coordinator is gone
            assert "coordinator unknown" in str(state.error), state.why()
