"""Pure scheduling rules: server hints, adaptive interval, backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from ingest.schedule import (
    Bounds,
    cache_lifetime,
    error_interval,
    feed_period,
    parse_retry_after,
    success_interval,
    update_rate,
)

NOW = datetime(2025, 1, 7, 12, 0, tzinfo=UTC)
BOUNDS = Bounds(min_s=300, max_s=86400)


def test_cache_control_beats_expires() -> None:
    expires = format_datetime(NOW + timedelta(hours=3), usegmt=True)
    assert cache_lifetime({"cache-control": "public, max-age=600", "expires": expires}, NOW) == 600
    assert cache_lifetime({"expires": expires}, NOW) == 3 * 3600
    assert cache_lifetime({"expires": "garbage"}, NOW) is None
    assert cache_lifetime({}, NOW) is None


def test_retry_after_seconds_or_date() -> None:
    assert parse_retry_after("120") == 120
    later = format_datetime(NOW + timedelta(minutes=10), usegmt=True)
    assert parse_retry_after(later, NOW) == 600
    assert parse_retry_after("soon") is None


def test_feed_declared_periods() -> None:
    assert feed_period("60", None, None) == 3600
    assert feed_period(None, "hourly", "4") == 900
    assert feed_period(None, "weekly", None) == 7 * 86400
    assert feed_period("0", "never", None) is None


def test_busy_feeds_are_polled_often_quiet_ones_rarely() -> None:
    busy = update_rate(None, 20, 3600)  # 20 new entries an hour
    assert success_interval(busy, 900, BOUNDS, None) == 360  # 2 new entries per poll
    flood = update_rate(None, 500, 60)
    assert success_interval(flood, 900, BOUNDS, None) == 300  # never below the lower bound
    assert success_interval(0.0, 3600, BOUNDS, None) == 5400  # slows down by half each time
    assert success_interval(0.0, 80000, BOUNDS, None) == 86400  # never above the upper bound
    assert success_interval(busy, 900, BOUNDS, 7200) == 7200  # server hints are respected


def test_rate_is_smoothed() -> None:
    rate = update_rate(None, 10, 1000)
    assert update_rate(rate, 0, 1000) < rate
    assert update_rate(rate, 0, 1000) > 0


def test_error_backoff_doubles_up_to_the_bound_and_honours_retry_after() -> None:
    assert [error_interval(n, BOUNDS, None) for n in (1, 2, 3)] == [300, 600, 1200]
    assert error_interval(40, BOUNDS, None) == 86400
    assert error_interval(1, BOUNDS, 4000) == 4000
