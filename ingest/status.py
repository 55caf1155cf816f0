"""Feed health for ``newswatch feeds status``: poll health from ``news.feed-state``
plus the fetcher's extraction outcomes from ``news.feed-health``."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime
from typing import Any

from ingest.feeds import FeedSpec
from ingest.state import load_states, state_key
from pipeline.kafka_io import FEED_HEALTH, read_to_end
from pipeline.settings import Settings

logger = logging.getLogger(__name__)


def extraction_counts(settings: Settings) -> dict[str, Counter[str]]:
    """Per feed key: ``ok`` and ``failed`` extraction outcomes within the topic's retention."""
    counts: dict[str, Counter[str]] = {}
    for record in read_to_end(settings, settings.topic(FEED_HEALTH), "newswatch-feeds-status"):
        try:
            event = json.loads(record.value or b"{}")
        except ValueError:
            continue
        if event.get("kind") != "extraction":
            continue
        key = (record.key or b"").decode("utf-8", "replace")
        counts.setdefault(key, Counter())["ok" if event.get("ok") else "failed"] += 1
    return counts


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def feed_status(settings: Settings, specs: list[FeedSpec] | None = None) -> list[dict[str, Any]]:
    """One row per feed: listed feeds first (``never polled`` if no state), then the rest."""
    states = load_states(settings)
    extraction = extraction_counts(settings)
    keys = [state_key(s.url) for s in specs or []]
    keys += [k for k in sorted(states) if k not in keys]
    names = {state_key(s.url): s.display_name for s in specs or []}
    rows = []
    for key in keys:
        state = states.get(key)
        counts = extraction.get(key, Counter())
        total = counts["ok"] + counts["failed"]
        row: dict[str, Any] = {
            "feed_url": state.url if state else key,
            "name": names.get(key) or (state.health.feed_name if state else None),
            "extracted": counts["ok"],
            "extraction_failed": counts["failed"],
            "extraction_failure_rate": round(counts["failed"] / total, 3) if total else None,
        }
        if state is None:
            row["status"] = "never polled"
        else:
            h = state.health
            row.update(
                status="failing" if h.consecutive_failures else "ok",
                last_success_at=_iso(h.last_success_at), last_poll_at=_iso(h.last_poll_at),
                last_error=h.last_error, last_error_kind=h.last_error_kind,
                last_error_at=_iso(h.last_error_at), consecutive_failures=h.consecutive_failures,
                new_stories_per_day=round(h.new_stories_per_day, 2),
                new_stories_total=h.new_stories_total, next_poll_at=_iso(state.next_poll_at),
                interval_s=state.interval_s,
            )
        rows.append(row)
    return rows
