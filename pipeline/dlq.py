"""``newswatch dlq list`` and ``newswatch dlq replay``: inspect dead letters, send them back.

A dead letter is the original message (key = story id, payload byte for byte)
with headers saying where and why it failed. Replay sends the original payload
back to its ``x-source-topic`` with ``x-replay-count`` (one more than the
dead letter's) and ``x-stage`` (so that only the stage that failed processes
it; other stages reading the same topic skip it). Replaying twice is harmless:
the story id is the key on every topic and the ``_id`` in Elasticsearch.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click
from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord

from pipeline.delivery import Deliveries, describe
from pipeline.kafka_io import DLQ, make_producer, read_to_end
from pipeline.retry import (
    ATTEMPTS,
    ERROR,
    ERROR_TYPE,
    FAILED_AT,
    REPLAY_COUNT,
    RETRY_COUNT,
    SOURCE_TOPIC,
    STAGE,
    encode,
    header,
    int_header,
)
from pipeline.settings import Settings


@dataclass(frozen=True)
class DeadLetter:
    """One message of ``news.dlq``, as ``dlq list --json`` prints it."""

    partition: int
    offset: int
    key: str | None
    stage: str | None
    error: str | None
    error_type: str | None
    source_topic: str | None
    failed_at: str | None  # ISO 8601, UTC
    attempts: int
    retries: int
    replays: int
    bytes: int

    @property
    def failed_at_dt(self) -> datetime | None:
        return datetime.fromisoformat(self.failed_at) if self.failed_at else None


def dead_letter(record: ConsumerRecord) -> DeadLetter:
    """The typed view of one ``news.dlq`` record."""
    headers = record.headers
    millis = header(headers, FAILED_AT)
    when = None
    if millis and millis.isdigit():
        when = datetime.fromtimestamp(int(millis) / 1000, UTC).isoformat(timespec="seconds")
    elif record.timestamp and record.timestamp > 0:
        when = datetime.fromtimestamp(record.timestamp / 1000, UTC).isoformat(timespec="seconds")
    return DeadLetter(
        partition=record.partition, offset=record.offset,
        key=record.key.decode("utf-8", "replace") if record.key is not None else None,
        stage=header(headers, STAGE), error=header(headers, ERROR),
        error_type=header(headers, ERROR_TYPE), source_topic=header(headers, SOURCE_TOPIC),
        failed_at=when, attempts=int_header(headers, ATTEMPTS), retries=int_header(headers, RETRY_COUNT),
        replays=int_header(headers, REPLAY_COUNT), bytes=len(record.value or b""),
    )


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``--since``: a duration back from now (``90m``, ``6h``, ``2d``) or an ISO date or
    time (``2026-12-01``, ``2026-12-01T18:00``; UTC unless it names its offset)."""
    text = value.strip().lower()
    match = _DURATION.match(text)
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"not a duration (30m, 6h, 2d) or an ISO date/time: {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Filters:
    stage: str | None = None
    reason: str | None = None  # substring of x-error or x-error-type, case-insensitive
    since: datetime | None = None

    def match(self, letter: DeadLetter) -> bool:
        if self.stage is not None and letter.stage != self.stage:
            return False
        if self.reason is not None:
            haystack = f"{letter.error_type or ''}: {letter.error or ''}".lower()
            if self.reason.lower() not in haystack:
                return False
        if self.since is not None:
            when = letter.failed_at_dt
            if when is None or when < self.since:
                return False
        return True


def dead_letters(settings: Settings, filters: Filters) -> Iterator[tuple[ConsumerRecord, DeadLetter]]:
    """Every dead letter matching ``filters``, oldest first (reads the topic, commits nothing)."""
    for record in read_to_end(settings, settings.topic(DLQ), "newswatch-dlq"):
        letter = dead_letter(record)
        if filters.match(letter):
            yield record, letter


def replay_headers(record: ConsumerRecord) -> list[tuple[str, bytes]]:
    """Headers of a replayed message: one more replay, for the stage that failed; the retry
    count starts again (a fixed bug deserves the whole retry budget)."""
    headers = [(REPLAY_COUNT, encode(int_header(record.headers, REPLAY_COUNT) + 1))]
    stage = header(record.headers, STAGE)
    if stage:
        headers.append((STAGE, encode(stage)))
    return headers


def _existing_topics(settings: Settings) -> set[str]:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, client_id="newswatch-dlq")
    try:
        return set(consumer.topics())
    finally:
        consumer.close()


def replay(settings: Settings, records: Iterable[ConsumerRecord]) -> tuple[dict[str, int], int]:
    """Send each dead letter's original payload back to its source topic; returns the counts
    by topic and how many were skipped (no source topic, or one that no longer exists).
    Raises ``RuntimeError`` naming what was not delivered."""
    existing = _existing_topics(settings)
    producer = make_producer(settings)
    deliveries = Deliveries()
    counts: dict[str, int] = {}
    skipped = 0
    try:
        for record in records:
            topic = header(record.headers, SOURCE_TOPIC)
            if not topic or topic not in existing:
                skipped += 1
                continue
            deliveries.send(producer, record, topic, record.value, replay_headers(record))
            counts[topic] = counts.get(topic, 0) + 1
        producer.flush()
        failed = deliveries.undelivered()
    finally:
        producer.close()
    if failed:
        raise RuntimeError(f"not replayed: {describe(failed)}")
    return counts, skipped


# -- command line -----------------------------------------------------------------------------


def _filters(stage: str | None, reason: str | None, since: str | None) -> Filters:
    try:
        return Filters(stage, reason, parse_since(since) if since else None)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None


F = TypeVar("F", bound=Callable[..., Any])


def _filter_options(func: F) -> F:
    func = click.option("--since", help="Failed within a duration (30m, 6h, 2d) or since an ISO time.")(func)
    func = click.option("--reason", help="Substring of the error (or its type), case-insensitive.")(func)
    func = click.option("--stage", help="Only dead letters of this stage (fetcher, enricher, ...).")(func)
    return func


def _settings() -> Settings:
    from pipeline.cli import settings_or_exit

    return settings_or_exit()


@click.group("dlq")
def dlq() -> None:
    """Inspect and replay dead letters (news.dlq)."""


@dlq.command("list")
@_filter_options
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def list_command(stage: str | None, reason: str | None, since: str | None, as_json: bool) -> None:
    """List dead letters, oldest first."""
    filters = _filters(stage, reason, since)
    settings = _settings()
    count = 0
    for _, letter in dead_letters(settings, filters):
        count += 1
        if as_json:
            click.echo(json.dumps(asdict(letter), ensure_ascii=False))
            continue
        source = (letter.source_topic or "?").removeprefix(settings.topic_prefix)
        error = (letter.error or "").replace("\n", " ")
        click.echo(f"{letter.failed_at or '?':25}  {letter.stage or '?':10}  {source:14}  "
                   f"{letter.key or '-':16}  {error[:100]}")
    if not as_json:
        click.echo(f"{count} dead letter(s)", err=True)


@dlq.command("replay")
@_filter_options
@click.option("--all", "everything", is_flag=True, help="Replay every dead letter (no filter).")
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; send nothing.")
def replay_command(
    stage: str | None, reason: str | None, since: str | None, everything: bool, dry_run: bool
) -> None:
    """Send matching dead letters back to their source topics (original payload)."""
    if not (stage or reason or since or everything):
        raise click.UsageError("name what to replay (--stage, --reason, --since), or --all")
    filters = _filters(stage, reason, since)
    settings = _settings()
    matched = [record for record, _ in dead_letters(settings, filters)]
    if dry_run:
        click.echo(f"would replay {len(matched)} dead letter(s)")
        return
    try:
        counts, skipped = replay(settings, matched)
    except RuntimeError as exc:
        click.echo(f"newswatch: {exc}", err=True)
        sys.exit(1)
    for topic, n in sorted(counts.items()):
        click.echo(f"replayed {n} to {topic}")
    if skipped:
        click.echo(f"skipped {skipped}: no x-source-topic, or the topic no longer exists", err=True)
    click.echo(f"replayed {sum(counts.values())} dead letter(s)")


COMMANDS = [dlq]
