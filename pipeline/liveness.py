"""Group liveness: a stage whose consumer is not a working member of its group exits.

kafka-python 3.0.12's group coordinator sometimes never recovers after a rebalance
or a broker restart (issue 9). Two shapes of it were seen:

1. the consumer never gets back to a stable generation: it sits in JoinGroup /
   SyncGroup, or has no coordinator, or has a rejoin pending that never completes.
   It fetches nothing and, having nothing to commit, attempts no commit either;
2. the consumer believes it is in the group and keeps fetching its old partitions,
   while the broker refuses every commit (RebalanceInProgress, CommitFailed).

Both mean the same thing: for ``Settings.group_stuck_s`` this consumer has not been
a member that can commit. ``GroupWatchdog`` applies that one rule for every runner
(``StageRunner``, ``HostScheduledRunner``, the retrier) and raises ``StuckInRebalance``;
the stage exits non-zero and its supervisor (``stages.sh supervise``, compose's
restart policy) starts it again with a fresh consumer. Nothing uncommitted is lost:
the next owner of the partitions reads them from the committed offsets.

One cause of shape 2 is understood and repaired in place (``finish_orphaned_join``: a
join that kafka-python leaves unfinished when the poll that started it timed out); the
exit is the backstop for that and for whatever else keeps a consumer out of its group.

Healthy, and never killed: a stable member with no partitions (a surplus replica,
more replicas than partitions), a stable member with nothing to commit (an idle
topic), a stable member whose partitions are paused (the fetcher's waiting room).
A legitimate rebalance lasts until every member has polled again (one batch), far
below the default 120 s. A member that stops polling altogether holds a rebalance for
up to its ``max_poll_interval_ms`` (300 s); the members waiting on it then exit too after
``group_stuck_s``, which costs a restart each and nothing else (they rejoin).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import MemberState

logger = logging.getLogger(__name__)


class StuckInRebalance(KafkaError):
    """The consumer has been out of a stable group, or had every commit refused, for
    ``group_stuck_s``: the stage exits so that its supervisor starts a fresh consumer."""


@dataclass(frozen=True)
class GroupState:
    """What the consumer knows of its membership, as plain values."""

    member_state: str  # kafka.structs.MemberState: '<unjoined>', '<rebalancing>', '<stable>'
    rejoin_pending: bool
    coordinator_known: bool
    generation: int

    @property
    def stable(self) -> bool:
        """A joined generation, no rejoin pending, a coordinator to commit to: the only
        state in which kafka-python sends a commit the broker can accept."""
        return (self.member_state == MemberState.STABLE and not self.rejoin_pending
                and self.coordinator_known)

    @property
    def orphaned_join(self) -> bool:
        """REBALANCING with no rejoin pending: a join that no poll will ever finish (below)."""
        return self.member_state == MemberState.REBALANCING and not self.rejoin_pending

    def describe(self) -> str:
        return (f"state {self.member_state}, generation {self.generation}, "
                f"rejoin {'pending' if self.rejoin_pending else 'not pending'}, "
                f"coordinator {'known' if self.coordinator_known else 'unknown'}")


def group_state(consumer: KafkaConsumer) -> GroupState:
    """Read the membership of ``consumer`` (no request to the broker).

    With ``finish_orphaned_join``, the one place that touches kafka-python internals.
    ``group_metadata()`` is public and gives the member state and generation, but it says
    STABLE in two states that are not: while the coordinator is gone (a stopped broker
    fails the heartbeats, which mark the coordinator dead and leave the state alone) and
    while a rejoin is pending (a heartbeat or a commit answered RebalanceInProgress sets the
    flag, and the state changes only when a later poll manages to send the JoinGroup).
    Those two are only on the coordinator object, ``consumer._coordinator`` (3.0.12:
    ``ConsumerCoordinator.need_rejoin()`` and ``BaseCoordinator.coordinator_unknown()``,
    the checks ``poll`` itself makes before it fetches)."""
    meta = consumer.group_metadata()
    coordinator = consumer._coordinator
    return GroupState(
        member_state=str(meta.state),
        rejoin_pending=bool(coordinator.need_rejoin()),
        coordinator_known=not coordinator.coordinator_unknown(),
        generation=int(meta.generation_id),
    )


def finish_orphaned_join(consumer: KafkaConsumer) -> None:
    """Make the next poll finish a join that kafka-python 3.0.12 would leave unfinished.

    The stall behind issue 9, read from the 3.0.12 source: a rejoin the group leader starts
    because the topic metadata changed (``ConsumerCoordinator.need_rejoin()``: assignment
    snapshot != metadata snapshot) runs as a background JoinGroup -> SyncGroup task. When
    the poll that started it times out first (the fetcher polls for 50 ms), the task goes on
    alone, and its ``_perform_assignment`` sets the assignment snapshot, so ``need_rejoin()``
    turns False. No later poll then calls ``ensure_active_group``, so nothing takes the
    task's result: the member stays REBALANCING for ever, sends no heartbeat (the broker
    drops it), keeps fetching its old partitions, and every commit is refused
    (RebalanceInProgress). ``request_rejoin()`` makes the next poll await the task again (or,
    if it has ended, join again), which is what the poll would have done had it not timed out.
    REBALANCING with no rejoin pending arises only this way: a join in progress always has
    one pending, and between polls no code but that task changes either value."""
    consumer._coordinator.request_rejoin()


def verdict(now: float, unstable_since: float | None, refused_since: float | None,
            limit_s: float) -> str | None:
    """Why the stage must exit now, or ``None``: the decision, from plain values.

    ``unstable_since``: when the consumer was first seen out of a stable group, since it
    was last seen in one (``None``: stable now). ``refused_since``: the first of an
    unbroken run of refused commits (``None``: the last commit went through, or none
    was refused)."""
    if unstable_since is not None and now - unstable_since >= limit_s:
        return f"out of a stable consumer group for {now - unstable_since:.0f}s"
    if refused_since is not None and now - refused_since >= limit_s:
        return f"every commit refused for {now - refused_since:.0f}s (out of the consumer group)"
    return None


class GroupWatchdog:
    """Apply ``verdict`` to one consumer: ``polled`` after each poll, ``committed`` /
    ``refused`` after each commit; each raises ``StuckInRebalance`` when it is time."""

    def __init__(self, name: str, limit_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.limit_s = limit_s
        self._clock = clock
        # Set at the first poll that finds the consumer out of a stable group (the first
        # poll of a new consumer: its first join counts), cleared at the first stable one.
        self._unstable_since: float | None = None
        self._refused_since: float | None = None
        self._last = GroupState("<not polled yet>", True, False, -1)

    def polled(self, consumer: KafkaConsumer) -> None:
        state = group_state(consumer)
        if state.orphaned_join:
            logger.warning("%s: consumer group join left unfinished by kafka-python (%s); "
                           "the next poll finishes it", self.name, state.describe())
            finish_orphaned_join(consumer)
        self.observe(state)

    def observe(self, state: GroupState) -> None:
        """``polled`` with the state already read (the unit tests pass plain values)."""
        now = self._clock()
        if state.stable:
            self._unstable_since = None
        elif self._unstable_since is None:
            self._unstable_since = now
        if state.stable != self._last.stable:
            logger.info("%s: consumer group %s (%s)", self.name,
                        "stable" if state.stable else "not stable", state.describe())
        self._last = state
        self._check(now)

    @property
    def refusing(self) -> bool:
        """The last commit was refused."""
        return self._refused_since is not None

    def committed(self) -> None:
        self._refused_since = None

    def refused(self, exc: Exception) -> None:
        now = self._clock()
        if self._refused_since is None:
            self._refused_since = now
        self._check(now, exc)

    def _check(self, now: float, cause: Exception | None = None) -> None:
        reason = verdict(now, self._unstable_since, self._refused_since, self.limit_s)
        if reason is None:
            return
        message = (f"{self.name}: {reason} ({self._last.describe()}; limit "
                   f"NEWSWATCH_GROUP_STUCK_S={self.limit_s:g}); exiting so that a fresh consumer rejoins")
        logger.error("%s", message)
        raise StuckInRebalance(message) from cause
