"""Feed bytes -> typed entries (feedparser on bytes we downloaded; it never fetches).

Every outcome is explicit: a feed parses cleanly, parses with problems (ill-formed
XML feedparser recovered from, entries without links, bad dates, entries left
out by ``ingest.feedtrim``), is a valid feed with no entries, or is not a feed at
all (``IngestPermanent``). feedparser only ever sees a bounded document: at most
``max_entries`` entries (the newest) and ``max_bytes`` bytes, its parse budget.
"""

from __future__ import annotations

import calendar
import contextlib
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser
import lxml.html
from lxml.etree import ParserError

from ingest.errors import IngestPermanent
from ingest.feedtrim import trim_feed
from pipeline.settings import Settings
from pipeline.urls import InvalidURL, canonical_url

logger = logging.getLogger(__name__)

MAX_TITLE = 1000
MAX_SUMMARY = 5000
# C0 controls but tab/newline/CR, and DEL: a feed's NUL bytes must not reach Kafka or ES
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# for callers without settings (tools, tests): the defaults of the two settings
DEFAULT_MAX_ENTRIES: int = Settings.model_fields["feed_max_entries"].default
DEFAULT_PARSE_MAX_BYTES: int = Settings.model_fields["feed_parse_max_bytes"].default


@dataclass
class ParsedEntry:
    link: str
    entry_id: str | None
    title: str | None
    summary: str | None
    author: str | None
    published_at: datetime | None
    tags: list[str]


@dataclass
class ParsedFeed:
    title: str | None = None
    language: str | None = None
    version: str = ""
    ttl: str | None = None
    update_period: str | None = None
    update_frequency: str | None = None
    entries: list[ParsedEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: int = 0  # entries without a usable link

    @property
    def outcome(self) -> str:
        """``ok``, ``ok_with_problems`` or ``empty`` (a feed without entries)."""
        if not self.entries:
            return "empty"
        return "ok_with_problems" if self.problems else "ok"


def _text(value: Any, limit: int) -> str | None:
    if not value or not isinstance(value, str):
        return None
    value = CONTROL.sub("", value)  # before lxml, which refuses strings with NUL bytes
    if "<" in value:
        # summaries are HTML; downstream wants text
        with contextlib.suppress(ParserError, ValueError):
            value = lxml.html.fromstring(value).text_content()
    value = " ".join(value.split())
    return value[:limit] or None


def _date(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if isinstance(parsed, time.struct_time):
            try:
                return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
            except (OverflowError, ValueError, OSError):
                continue
    return None


def _link(entry: Any, base: str) -> str | None:
    candidates: list[str] = []
    if isinstance(entry.get("link"), str):
        candidates.append(entry["link"])
    for link in entry.get("links") or []:
        if link.get("rel", "alternate") == "alternate" and isinstance(link.get("href"), str):
            candidates.append(link["href"])
    # an RSS guid is often the permalink when there is no <link>
    if entry.get("guidislink") or isinstance(entry.get("id"), str):
        candidates.append(entry.get("id") or "")
    for candidate in candidates:
        candidate = candidate.strip()
        if not candidate or CONTROL.search(candidate):
            continue
        absolute = urljoin(base, candidate)
        try:
            canonical_url(absolute)
        except InvalidURL:
            continue
        return absolute
    return None


def parse_feed(data: bytes, url: str, headers: dict[str, str] | None = None,
               max_entries: int = DEFAULT_MAX_ENTRIES,
               max_bytes: int = DEFAULT_PARSE_MAX_BYTES) -> ParsedFeed:
    """Parse feed bytes fetched from ``url`` (the newest ``max_entries`` entries, at most
    ``max_bytes`` of them); raises ``IngestPermanent`` if it is not a feed."""
    response_headers = {"content-location": url, **(headers or {})}
    trimmed = trim_feed(data, url, max_entries, max_bytes)
    try:
        parsed = feedparser.parse(trimmed.data, response_headers=response_headers)
    except Exception as exc:  # feedparser is robust, but this is untrusted input
        raise IngestPermanent("parse_error", f"feed parser failed on {url}: {exc!r}") from None
    result = ParsedFeed(version=parsed.get("version") or "")
    feed = parsed.get("feed") or {}
    result.title = _text(feed.get("title"), MAX_TITLE)
    language = feed.get("language")
    result.language = language.strip().lower()[:35] if isinstance(language, str) and language else None
    result.ttl = feed.get("ttl") if isinstance(feed.get("ttl"), str) else None
    result.update_period = feed.get("sy_updateperiod")
    result.update_frequency = feed.get("sy_updatefrequency")
    if parsed.get("bozo"):
        bozo = parsed.get("bozo_exception")
        result.problems.append(f"{type(bozo).__name__}: {bozo}"[:500])
    result.problems.extend(trimmed.problems)
    # feedtrim already kept max_entries when it could find the entries; this is the backstop
    entries = (parsed.get("entries") or [])[:max_entries]
    for index, entry in enumerate(entries):
        link = _link(entry, url)
        if link is None:
            result.skipped += 1
            result.problems.append(f"entry {index + 1} has no usable link")
            continue
        tags = [t.get("term") for t in entry.get("tags") or [] if isinstance(t.get("term"), str)]
        result.entries.append(
            ParsedEntry(
                link=link,
                entry_id=entry.get("id") if isinstance(entry.get("id"), str) else None,
                title=_text(entry.get("title"), MAX_TITLE),
                summary=_text(entry.get("summary"), MAX_SUMMARY),
                author=_text(entry.get("author"), 300),
                published_at=_date(entry),
                tags=[t[:100] for t in tags if t.strip()][:50],
            )
        )
    if not result.entries and entries and parsed.get("bozo"):
        # broken XML cut off inside its items (a truncated download): none was usable
        raise IngestPermanent(
            "malformed", f"malformed feed, no usable entries ({result.problems[0]}): {url}"
        )
    if not result.entries and not result.version:
        # nothing recognisable as RSS/Atom/RDF and nothing usable: a failure, not an empty feed
        if b"<html" in data[:2048].lower():
            raise IngestPermanent("not_a_feed", f"not a feed (an HTML page): {url}")
        if parsed.get("bozo"):
            raise IngestPermanent(
                "malformed", f"malformed feed, no entries ({result.problems[0]}): {url}"
            )
        raise IngestPermanent("not_a_feed", f"not a feed (no feed elements found): {url}")
    return result
