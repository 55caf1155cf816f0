"""Retry policies: the one in-process backoff every retry uses (stage runner, indexer,
webhooks), and the delayed retry tiers of transient failures (schedule and headers)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tenacity import wait_exponential_jitter
from tenacity.wait import wait_base

from pipeline.settings import Settings


def backoff(settings: Settings) -> wait_base:
    """Exponential backoff from ``retry_backoff_s`` up to ``retry_backoff_max_s``, with jitter
    of the same order as the first wait, so that replicas retrying together spread out."""
    return wait_exponential_jitter(
        multiplier=settings.retry_backoff_s,
        max=settings.retry_backoff_max_s,
        jitter=settings.retry_backoff_s,
    )


# -- delayed retries (retry topics) ----------------------------------------------------------
# Transient failures that outlast the in-process attempts go to a retry topic, one per delay
# tier (mediacloud/story-indexer's "-delay" queues, in Kafka: every message of a tier waits
# the same delay, so a tier is consumed in order and its head is always the next one due).
# The retrier stage re-publishes each message to its source topic once it is due; after the
# last tier the message is dead-lettered.

RETRY_TOPIC_PREFIX = "news.retry."

# Headers of the retry and dead-letter topics (values are UTF-8 text).
STAGE = "x-stage"  # the stage that failed; on a re-published message, the one stage to process it
ERROR = "x-error"
ERROR_TYPE = "x-error-type"
SOURCE_TOPIC = "x-source-topic"  # broker-side name of the topic the message was consumed from
PARTITION = "x-partition"
OFFSET = "x-offset"
ATTEMPTS = "x-attempts"  # in-process attempts of the last try
FAILED_AT = "x-failed-at"  # epoch milliseconds
RETRY_COUNT = "x-retry-count"  # delayed retries so far (1 on the first retry topic message)
RETRY_AFTER = "x-retry-after"  # epoch seconds when the retry is due
REPLAY_COUNT = "x-replay-count"  # times `newswatch dlq replay` sent the message back

Headers = list[tuple[str, bytes]]


def retry_topic(tier: int) -> str:
    """Logical name of the retry topic of ``tier`` (0-based): ``news.retry.1`` for tier 0."""
    return f"{RETRY_TOPIC_PREFIX}{tier + 1}"


def retry_topics(settings: Settings) -> list[str]:
    """Logical names of every retry tier's topic, shortest delay first."""
    return [retry_topic(tier) for tier in range(len(settings.retry_delays_s))]


@dataclass(frozen=True)
class RetryPlan:
    tier: int  # 0-based index into the delays
    due: float  # epoch seconds
    count: int  # the message's x-retry-count on the retry topic


def plan_retry(
    delays: Sequence[float], retries_so_far: int, retry_after: float | None, now: float
) -> RetryPlan | None:
    """Where a message that failed transiently goes next; ``None``: the tiers are spent (DLQ).

    Retry ``n`` (0-based) uses tier ``n``, or a later one when the server asked for a longer
    wait (``retry_after`` seconds): the first tier at least that long. A wish longer than the
    last tier is capped to it, so that every message of a tier waits exactly the tier's
    delay and a tier never holds a message behind one that is due later.
    """
    if retries_so_far >= len(delays):
        return None
    tier = retries_so_far
    if retry_after:
        while tier < len(delays) - 1 and delays[tier] < retry_after:
            tier += 1
    return RetryPlan(tier=tier, due=now + delays[tier], count=retries_so_far + 1)


def header(headers: Iterable[tuple[str, bytes]] | None, name: str) -> str | None:
    """The last value of header ``name``, decoded, or ``None``."""
    found = None
    for key, value in headers or ():
        if key == name and value is not None:
            found = value.decode("utf-8", "replace")
    return found


def int_header(headers: Iterable[tuple[str, bytes]] | None, name: str) -> int:
    """A counter header (``x-retry-count``, ``x-replay-count``); 0 when absent or garbled."""
    value = header(headers, name)
    try:
        return max(0, int(value)) if value is not None else 0
    except ValueError:
        return 0


def float_header(headers: Iterable[tuple[str, bytes]] | None, name: str) -> float | None:
    value = header(headers, name)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def encode(value: object) -> bytes:
    """A header value: text, capped so that a long error message cannot bloat the record."""
    return str(value).encode("utf-8", "replace")[:4000]


def failure_headers(
    *, stage: str, error: BaseException, topic: str, partition: int, offset: int,
    attempts: int, incoming: Iterable[tuple[str, bytes]] | None, now: float,
) -> Headers:
    """The headers of a message on a retry or the dead-letter topic: what failed where, plus
    the incoming message's replay count (so a replayed message that fails again shows it)."""
    headers: Headers = [
        (STAGE, encode(stage)),
        (ERROR, encode(error)),
        (ERROR_TYPE, encode(type(error).__name__)),
        (SOURCE_TOPIC, encode(topic)),
        (PARTITION, encode(partition)),
        (OFFSET, encode(offset)),
        (ATTEMPTS, encode(attempts)),
        (FAILED_AT, encode(int(now * 1000))),
    ]
    replays = int_header(incoming, REPLAY_COUNT)
    if replays:
        headers.append((REPLAY_COUNT, encode(replays)))
    return headers


def with_retry(headers: Headers, plan: RetryPlan) -> Headers:
    """``headers`` of a message bound for retry tier ``plan.tier``."""
    return [*headers, (RETRY_COUNT, encode(plan.count)), (RETRY_AFTER, encode(f"{plan.due:.3f}"))]


def republish_headers(headers: Iterable[tuple[str, bytes]] | None) -> Headers:
    """Headers of a retried message sent back to its source topic: the stage it is for
    (other stages reading the same topic skip it), its retry and replay counts."""
    out: Headers = []
    for name in (STAGE, RETRY_COUNT, REPLAY_COUNT):
        value = header(headers, name)
        if value is not None:
            out.append((name, encode(value)))
    return out
