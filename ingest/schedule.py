"""When to poll a feed next: adaptive interval, server hints and error backoff.

The interval follows the feed's observed rate of new entries (aiming at a few
new entries per poll), is never shorter than what the server asks for
(Cache-Control max-age, Expires, RSS ``ttl``, ``sy:updatePeriod``,
Retry-After) and always stays within the feed's bounds. Errors back off
exponentially up to the upper bound: a feed that keeps failing is polled
rarely but never dropped.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from pydantic import BaseModel

# New entries we aim to find per poll: fewer polls than 1 would miss bursts
# less often than it saves requests; 2 is what rss-fetcher style schedulers use.
TARGET_NEW_PER_POLL = 2.0
# Weight of the latest observation in the rate average.
RATE_ALPHA = 0.3
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_PERIOD_SECONDS = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400,
                   "monthly": 30 * 86400, "yearly": 365 * 86400}


class Bounds(BaseModel):
    min_s: float
    max_s: float

    def clamp(self, value: float) -> float:
        return min(max(value, self.min_s), self.max_s)


def parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    when = parse_http_date(value)
    if when is None:
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def cache_lifetime(headers: dict[str, str], now: datetime | None = None) -> float | None:
    """Seconds the response stays fresh per Cache-Control max-age or Expires."""
    control = headers.get("cache-control", "")
    match = _MAX_AGE.search(control)
    if match:
        return float(match.group(1))
    expires = parse_http_date(headers.get("expires"))
    if expires is not None:
        return max(0.0, (expires - (now or datetime.now(UTC))).total_seconds())
    return None


def feed_period(ttl: str | None, update_period: str | None, update_frequency: str | None) -> float | None:
    """Seconds between updates the feed itself declares (RSS ttl in minutes, sy:updatePeriod)."""
    if ttl and ttl.strip().isdigit() and int(ttl) > 0:
        return int(ttl) * 60.0
    if update_period and update_period.strip().lower() in _PERIOD_SECONDS:
        base = _PERIOD_SECONDS[update_period.strip().lower()]
        freq = int(update_frequency) if update_frequency and update_frequency.strip().isdigit() else 1
        return base / max(freq, 1)
    return None


def update_rate(previous: float | None, new_entries: int, elapsed_s: float) -> float:
    """Exponentially weighted rate of new entries per second."""
    if elapsed_s <= 0:
        return previous or 0.0
    observed = new_entries / elapsed_s
    if previous is None:
        return observed
    return RATE_ALPHA * observed + (1 - RATE_ALPHA) * previous


def success_interval(
    rate: float, previous_interval: float | None, bounds: Bounds, server_hint: float | None
) -> float:
    """The next interval after a successful poll."""
    # nothing new lately: slow down gradually rather than jumping to the maximum
    slower = (previous_interval or bounds.min_s) * 1.5
    interval = TARGET_NEW_PER_POLL / rate if rate > 0 else slower
    if server_hint:
        interval = max(interval, server_hint)
    return bounds.clamp(interval)


def error_interval(consecutive_failures: int, bounds: Bounds, retry_after: float | None) -> float:
    """Exponential backoff: min, 2x, 4x ... up to the upper bound (never beyond, never dropped)."""
    exponent = min(max(consecutive_failures - 1, 0), 30)
    interval = bounds.min_s * math.pow(2, exponent)
    if retry_after:
        interval = max(interval, retry_after)
    return bounds.clamp(interval)
