"""The group-liveness rule (pipeline/liveness.py) on plain values: when a stage must exit."""

from __future__ import annotations

import pytest
from kafka.errors import CommitFailedError, KafkaError, RebalanceInProgressError
from kafka.structs import MemberState

from pipeline.liveness import GroupState, GroupWatchdog, StuckInRebalance, verdict

STABLE = GroupState(MemberState.STABLE, rejoin_pending=False, coordinator_known=True, generation=3)
JOINING = GroupState(MemberState.REBALANCING, rejoin_pending=True, coordinator_known=True, generation=-1)
UNJOINED = GroupState(MemberState.UNJOINED, rejoin_pending=True, coordinator_known=True, generation=-1)
# what kafka-python shows while the broker is down: the state is kept, the coordinator is gone
NO_COORDINATOR = GroupState(MemberState.STABLE, rejoin_pending=False, coordinator_known=False,
                            generation=3)
# a heartbeat or a commit answered RebalanceInProgress: the state changes at the next JoinGroup
REJOIN_PENDING = GroupState(MemberState.STABLE, rejoin_pending=True, coordinator_known=True,
                            generation=3)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_verdict_exits_only_past_the_limit() -> None:
    assert verdict(100.0, None, None, 120) is None
    assert verdict(100.0, 0.0, None, 120) is None
    assert verdict(119.9, 0.0, None, 120) is None
    assert "out of a stable consumer group for 120s" in (verdict(120.0, 0.0, None, 120) or "")
    assert verdict(119.0, None, 0.0, 120) is None
    assert "every commit refused for 130s" in (verdict(130.0, None, 0.0, 120) or "")
    # either clock alone is enough
    assert verdict(130.0, 125.0, 0.0, 120) is not None
    assert verdict(130.0, 0.0, 125.0, 120) is not None


def test_only_a_joined_generation_with_a_coordinator_is_stable() -> None:
    assert STABLE.stable
    for state in (JOINING, UNJOINED, NO_COORDINATOR, REJOIN_PENDING):
        assert not state.stable, state


def test_only_rebalancing_without_a_pending_rejoin_is_an_orphaned_join() -> None:
    # kafka-python's background join task went on after the poll that started it timed out,
    # and its leader assignment cleared need_rejoin(): no later poll would finish it
    orphaned = GroupState(MemberState.REBALANCING, rejoin_pending=False, coordinator_known=True,
                          generation=2)
    assert orphaned.orphaned_join and not orphaned.stable
    for state in (STABLE, JOINING, UNJOINED, NO_COORDINATOR, REJOIN_PENDING):
        assert not state.orphaned_join, state


def test_a_stable_member_is_never_killed_even_with_no_partitions_and_no_commits(clock: Clock) -> None:
    # a surplus replica: stable, nothing assigned, so it never commits; hours of that are fine
    watchdog = GroupWatchdog("surplus", 120, clock)
    watchdog.observe(JOINING)  # its first join
    for _ in range(10_000):
        clock.now += 1
        watchdog.observe(STABLE)


def test_a_consumer_that_never_joins_exits_after_the_limit(clock: Clock) -> None:
    watchdog = GroupWatchdog("fetcher", 120, clock)
    watchdog.observe(JOINING)  # the first poll
    for _ in range(119):
        clock.now += 1
        watchdog.observe(JOINING)
    clock.now += 1
    with pytest.raises(StuckInRebalance, match="fetcher: out of a stable consumer group for 120s"):
        watchdog.observe(JOINING)


def test_the_first_join_counts_from_the_first_poll(clock: Clock) -> None:
    watchdog = GroupWatchdog("indexer", 120, clock)
    clock.now += 300  # waiting for the topics to exist, before subscribing: not counted
    watchdog.observe(UNJOINED)
    clock.now += 119
    watchdog.observe(JOINING)
    clock.now += 1
    with pytest.raises(StuckInRebalance):
        watchdog.observe(JOINING)


@pytest.mark.parametrize("state", [JOINING, UNJOINED, NO_COORDINATOR, REJOIN_PENDING])
def test_every_unstable_state_exits_once_it_lasts(clock: Clock, state: GroupState) -> None:
    watchdog = GroupWatchdog("enricher", 30, clock)
    watchdog.observe(STABLE)
    clock.now += 500  # stable all along: the clock starts when the trouble does
    watchdog.observe(state)
    clock.now += 29
    watchdog.observe(state)
    clock.now += 1
    with pytest.raises(StuckInRebalance) as raised:
        watchdog.observe(state)
    assert isinstance(raised.value, KafkaError)  # the runners' `except KafkaError` logs and re-raises


def test_a_rebalance_that_ends_resets_the_clock(clock: Clock) -> None:
    watchdog = GroupWatchdog("alerter", 120, clock)
    for _ in range(20):  # a rebalance of 100 s, then stable, again and again
        for _ in range(100):
            clock.now += 1
            watchdog.observe(JOINING)
        clock.now += 1
        watchdog.observe(STABLE)


def test_refused_commits_exit_after_the_limit_unless_one_goes_through(clock: Clock) -> None:
    watchdog = GroupWatchdog("enricher", 120, clock)
    watchdog.observe(STABLE)
    watchdog.refused(RebalanceInProgressError())
    clock.now += 100
    watchdog.observe(STABLE)
    watchdog.refused(CommitFailedError())
    watchdog.committed()  # one commit accepted: the run of refusals is over
    clock.now += 100
    watchdog.refused(CommitFailedError())
    clock.now += 119
    watchdog.refused(CommitFailedError())
    clock.now += 1
    # the client believes it is stable and keeps fetching; the broker refuses every commit
    with pytest.raises(StuckInRebalance, match="every commit refused for 120s") as raised:
        watchdog.refused(CommitFailedError())
    assert isinstance(raised.value.__cause__, CommitFailedError)
