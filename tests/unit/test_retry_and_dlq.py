"""The retry tiers' schedule and headers, and the dead-letter filters (no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from ingest.errors import IngestTransient
from ingest.httpget import Page, raise_for_status
from pipeline.delivery import record_error
from pipeline.dlq import Filters, dead_letter, parse_since, replay_headers
from pipeline.errors import PermanentError, TransientError
from pipeline.kafka_io import expand_topic_specs, load_topic_specs
from pipeline.retry import (
    failure_headers,
    float_header,
    header,
    int_header,
    plan_retry,
    republish_headers,
    retry_topic,
    retry_topics,
    with_retry,
)
from pipeline.settings import Settings, SettingsError, load_settings

DELAYS = (60.0, 300.0, 1800.0, 7200.0, 21600.0)
NOW = 1_800_000_000.0


def _record(
    headers: list[tuple[str, bytes]], value: bytes = b"{}", key: bytes | None = b"id1"
) -> ConsumerRecord:
    return ConsumerRecord("p.news.dlq", 0, -1, 7, 1_700_000_000_000, 0, key, value, headers,
                          None, 3, len(value), -1)


@pytest.mark.parametrize(("retries", "tier"), [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)])
def test_each_retry_waits_in_the_next_tier(retries: int, tier: int) -> None:
    plan = plan_retry(DELAYS, retries, None, NOW)
    assert plan is not None
    assert (plan.tier, plan.count, plan.due) == (tier, retries + 1, NOW + DELAYS[tier])


def test_after_the_last_tier_the_message_is_dead_lettered() -> None:
    assert plan_retry(DELAYS, len(DELAYS), None, NOW) is None
    assert plan_retry(DELAYS, len(DELAYS) + 3, 10.0, NOW) is None
    assert plan_retry((5.0,), 1, None, NOW) is None


@pytest.mark.parametrize(
    ("retries", "retry_after", "tier"),
    [(0, 30, 0), (0, 60, 0), (0, 61, 1), (0, 3600, 3), (1, 10, 1), (2, 7000, 3),
     (0, 10 ** 6, 4), (4, 10 ** 6, 4), (0, 0, 0)],
)
def test_retry_after_picks_the_first_tier_at_least_that_long(
    retries: int, retry_after: float, tier: int
) -> None:
    plan = plan_retry(DELAYS, retries, retry_after, NOW)
    assert plan is not None
    assert plan.tier == tier
    # every message of a tier waits exactly the tier's delay (a longer wish is capped)
    assert plan.due == NOW + DELAYS[tier]
    assert plan.count == retries + 1


def test_retry_topics_follow_the_delay_tiers() -> None:
    settings = load_settings({"NEWSWATCH_RETRY_DELAYS_S": "1,2,3", "NEWSWATCH_TOPIC_PREFIX": "x."})
    assert retry_topic(0) == "news.retry.1"
    assert retry_topics(settings) == ["news.retry.1", "news.retry.2", "news.retry.3"]


def test_topics_yaml_declares_one_retry_topic_per_tier() -> None:
    specs = load_topic_specs(Settings().kafka_topics)
    names = [s.name for s in expand_topic_specs(load_settings({"NEWSWATCH_RETRY_DELAYS_S": "1,2"}), specs)]
    assert "news.retry" not in names
    assert {"news.retry.1", "news.retry.2", "news.dlq"} <= set(names)
    assert "news.retry.3" not in names
    default = [s.name for s in expand_topic_specs(load_settings({}), specs)]
    assert [n for n in default if n.startswith("news.retry.")] == [f"news.retry.{n}" for n in range(1, 6)]
    retention = {s.name: int(s.config["retention.ms"]) for s in expand_topic_specs(load_settings({}), specs)
                 if "retention.ms" in s.config}
    assert retention["news.retry.5"] > 10 * max(DELAYS) * 1000, "a retry outlives its longest tier"


def test_retry_delays_setting_is_parsed_and_checked() -> None:
    assert load_settings({}).retry_delays_s == DELAYS
    settings = load_settings({"NEWSWATCH_RETRY_DELAYS_S": " 0.5, 2,2 "})
    assert settings.retry_delays_s == (0.5, 2.0, 2.0)
    # str() of the tuple (how tests hand settings to a child process) reads back the same
    assert load_settings({"NEWSWATCH_RETRY_DELAYS_S": str(settings.retry_delays_s)}) == settings
    for bad in ("", "300,60", "-1", "soon"):
        with pytest.raises(SettingsError, match="NEWSWATCH_RETRY_DELAYS_S"):
            load_settings({"NEWSWATCH_RETRY_DELAYS_S": bad})


def test_failure_headers_name_the_stage_source_and_error_and_keep_the_replay_count() -> None:
    incoming = [("x-replay-count", b"2"), ("x-stage", b"fetcher"), ("x-retry-count", b"1")]
    headers = failure_headers(stage="fetcher", error=TransientError("HTTP 503 from x"),
                              topic="p.news.entries", partition=3, offset=41, attempts=2,
                              incoming=incoming, now=NOW)
    assert dict((k, v.decode()) for k, v in headers) == {
        "x-stage": "fetcher", "x-error": "HTTP 503 from x", "x-error-type": "TransientError",
        "x-source-topic": "p.news.entries", "x-partition": "3", "x-offset": "41", "x-attempts": "2",
        "x-failed-at": str(int(NOW * 1000)), "x-replay-count": "2",
    }
    plan = plan_retry(DELAYS, int_header(incoming, "x-retry-count"), None, NOW)
    assert plan is not None
    retried = with_retry(headers, plan)
    assert header(retried, "x-retry-count") == "2"
    assert float_header(retried, "x-retry-after") == pytest.approx(NOW + 300)


def test_a_long_error_is_capped_in_its_header() -> None:
    headers = failure_headers(stage="s", error=RuntimeError("x" * 10_000), topic="t", partition=0, offset=0,
                              attempts=1, incoming=None, now=NOW)
    assert len(dict(headers)["x-error"]) == 4000


def test_republished_messages_carry_only_stage_and_counts() -> None:
    headers = [("x-stage", b"indexer"), ("x-error", b"boom"), ("x-retry-count", b"3"),
               ("x-retry-after", b"1.0"), ("x-source-topic", b"t"), ("x-replay-count", b"1")]
    assert republish_headers(headers) == [("x-stage", b"indexer"), ("x-retry-count", b"3"),
                                          ("x-replay-count", b"1")]
    assert republish_headers(None) == []


def test_garbled_counters_read_as_zero() -> None:
    assert int_header([("x-retry-count", b"many")], "x-retry-count") == 0
    assert int_header([("x-retry-count", b"-4")], "x-retry-count") == 0
    assert int_header(None, "x-retry-count") == 0
    assert float_header([("x-retry-after", b"later")], "x-retry-after") is None


def test_replay_headers_count_one_more_replay_and_keep_the_stage() -> None:
    record = _record([("x-stage", b"enricher"), ("x-replay-count", b"1"), ("x-retry-count", b"5")])
    assert replay_headers(record) == [("x-replay-count", b"2"), ("x-stage", b"enricher")]
    assert replay_headers(_record([])) == [("x-replay-count", b"1")]


def test_only_record_errors_become_dead_letter_reasons() -> None:
    error = record_error(MessageSizeTooLargeError("big"), "p.news.articles")
    assert isinstance(error, PermanentError)
    assert str(error).startswith("record too large for p.news.articles: ")
    assert record_error(KafkaTimeoutError("no metadata")) is None
    assert record_error(ValueError("x")) is None


def test_the_fetchers_429_503_and_timeouts_are_transient_with_their_retry_after() -> None:
    for status, wait in ((429, "120"), (503, "7"), (502, None)):
        headers = {"retry-after": wait} if wait else {}
        page = Page("http://x/", "http://x/", status, headers, b"", [], 1)
        with pytest.raises(TransientError) as caught:
            raise_for_status(page)
        assert isinstance(caught.value, IngestTransient)
        assert caught.value.retry_after == (float(wait) if wait else None)
    with pytest.raises(PermanentError):
        raise_for_status(Page("http://x/", "http://x/", 404, {}, b"", [], 1))


def test_parse_since_takes_durations_and_iso_times() -> None:
    now = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("6h", now) == now - timedelta(hours=6)
    assert parse_since("2d", now) == now - timedelta(days=2)
    assert parse_since("1w", now) == now - timedelta(weeks=1)
    assert parse_since("2026-11-30", now) == datetime(2026, 11, 30, tzinfo=UTC)
    assert parse_since("2026-11-30T18:30+01:00", now) == datetime(2026, 11, 30, 17, 30, tzinfo=UTC)
    for bad in ("yesterday", "5 fortnights", ""):
        with pytest.raises(ValueError, match="duration"):
            parse_since(bad, now)


def test_dead_letters_are_typed_and_filtered_by_stage_reason_and_time() -> None:
    failed_at = int(datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
    letter = dead_letter(_record([
        ("x-stage", b"fetcher"), ("x-error", b"HTTP 503 from https://a.test/1"),
        ("x-error-type", b"IngestTransient"), ("x-source-topic", b"p.news.entries"),
        ("x-failed-at", str(failed_at).encode()), ("x-attempts", b"3"), ("x-retry-count", b"5"),
    ], value=b"x" * 10))
    assert letter.key == "id1" and letter.stage == "fetcher" and letter.bytes == 10
    assert letter.failed_at == "2026-12-01T12:00:00+00:00"
    assert (letter.attempts, letter.retries, letter.replays) == (3, 5, 0)
    assert Filters().match(letter)
    assert Filters(stage="fetcher", reason="http 503", since=datetime(2026, 12, 1, tzinfo=UTC)).match(letter)
    assert Filters(reason="ingesttransient").match(letter), "the error type matches too"
    assert not Filters(stage="indexer").match(letter)
    assert not Filters(reason="404").match(letter)
    assert not Filters(since=datetime(2026, 12, 1, 12, 0, 1, tzinfo=UTC)).match(letter)


def test_a_dead_letter_without_failure_time_uses_the_record_timestamp() -> None:
    letter = dead_letter(_record([], key=None))
    assert letter.key is None and letter.stage is None
    assert letter.failed_at == datetime.fromtimestamp(1_700_000_000, UTC).isoformat(timespec="seconds")
    assert not Filters(stage="fetcher").match(letter)


def test_env_example_documents_the_retry_tiers() -> None:
    text = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    assert "# NEWSWATCH_RETRY_DELAYS_S=60,300,1800,7200,21600" in text
