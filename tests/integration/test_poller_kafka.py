"""The poller stage on the real Kafka broker: entries out, state kept across restarts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest import poller
from ingest.poller import shard_feeds
from ingest.state import load_states, state_key
from ingest.status import feed_status
from pipeline.kafka_io import ENTRIES, FEED_HEALTH, FEED_STATE, read_to_end
from pipeline.settings import Settings
from pipeline.story import Story
from tests.support.site import LocalSite

pytestmark = pytest.mark.integration


def read_all(settings: Settings, logical: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record on the topic, from the beginning."""
    return [(r.key, r.value) for r in read_to_end(settings, settings.topic(logical), "test-reader")]


def rss(site: LocalSite, paths: list[str]) -> str:
    items = "".join(f"<item><title>T {p}</title><link>{site.url(p)}?utm_campaign=x</link></item>"
                    for p in paths)
    return f'<rss version="2.0"><channel><title>L</title>{items}</channel></rss>'


def feeds_file(tmp_path: Path, site: LocalSite) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text(
        "feeds:\n"
        f"  - url: {site.url('/one.xml')}\n    name: One\n    country: UA\n"
        f"  - url: {site.url('/broken.xml')}\n    name: Broken\n"
        "  - url: not a url\n",
        encoding="utf-8",
    )
    return path


def test_poll_once_emits_new_entries_and_nothing_twice(
    site: LocalSite, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    site.add("/one.xml", rss(site, ["/a", "/b"]), content_type="application/rss+xml")
    site.add("/broken.xml", "<rss><channel><item><title>x</ti", content_type="text/xml")
    settings = make_settings(feeds=feeds_file(tmp_path, site), poller_once="true")

    poller.run(settings)
    entries = read_all(settings, ENTRIES)
    stories = [Story.from_bytes(value) for _, value in entries]
    assert sorted(s.url for s in stories) == [site.url("/a"), site.url("/b")]
    assert all(key == s.id.encode() for (key, _), s in zip(entries, stories, strict=True))
    assert {s.source for s in stories} == {"One"}
    assert all(s.feed is not None and s.feed.country == "UA" for s in stories)

    # a restart reads the state back from the compacted topic: nothing is emitted again
    site.add("/one.xml", rss(site, ["/c", "/a", "/b"]), content_type="application/rss+xml")
    poller.run(settings)
    urls = [Story.from_bytes(v).url for _, v in read_all(settings, ENTRIES)]
    assert sorted(urls) == [site.url("/a"), site.url("/b"), site.url("/c")]

    states = load_states(settings)
    one = states[state_key(site.url("/one.xml"))]
    assert one.health.last_success_at is not None and one.health.new_stories_total == 3
    broken = states[state_key(site.url("/broken.xml"))]
    assert broken.health.consecutive_failures == 2
    assert broken.health.last_error_kind is not None

    health = [json.loads(v or b"{}") for _, v in read_all(settings, FEED_HEALTH)]
    assert {h["feed_url"] for h in health} == {site.url("/one.xml"), site.url("/broken.xml")}
    assert all("new_stories_per_day" in h and "consecutive_failures" in h for h in health)
    assert len(read_all(settings, FEED_STATE)) == 4  # one state per feed per poll

    rows = {r["name"]: r for r in feed_status(settings, shard_feeds(settings))}
    assert rows["One"]["status"] == "ok" and rows["One"]["new_stories_total"] == 3
    assert rows["Broken"]["status"] == "failing"
    assert rows["Broken"]["consecutive_failures"] == 2
    assert rows["Broken"]["last_error_kind"] == "malformed"


def test_replicas_split_the_feeds(
    site: LocalSite, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    lines = ["feeds:"]
    for i in range(12):
        site.add(f"/f{i}.xml", rss(site, [f"/s{i}"]), content_type="application/rss+xml")
        lines.append(f"  - url: {site.url(f'/f{i}.xml')}")
    path = tmp_path / "feeds.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    base = make_settings(feeds=path, poller_once="true")
    for shard in ("0/2", "1/2"):
        poller.run(base.model_copy(update={"poller_shard": shard}))
    urls = [Story.from_bytes(v).url for _, v in read_all(base, ENTRIES)]
    assert sorted(urls) == sorted(site.url(f"/s{i}") for i in range(12))  # each exactly once
    polled = [r.path for r in site.requests]
    assert sorted(polled) == sorted(f"/f{i}.xml" for i in range(12))
