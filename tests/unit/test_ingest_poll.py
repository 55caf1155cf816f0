"""Polling one feed against a real local HTTP server (no Kafka)."""

from __future__ import annotations

import asyncio
import gzip
from datetime import timedelta

import pytest

from ingest.feeds import FeedSpec
from ingest.poller import shard_feeds
from ingest.polling import FeedPoller, PollResult
from ingest.state import FeedState
from ingest.transport import new_async_client
from pipeline.settings import Settings, load_settings
from tests.support.config import local_settings
from tests.support.site import LocalSite, Response, SeenRequest

settings = local_settings


def rss(site: LocalSite, paths: list[str], extra: str = "") -> str:
    items = "".join(
        f"<item><title>Story {p}</title><link>{site.url(p)}?utm_source=rss</link>"
        f"<description>&lt;p&gt;About {p}&lt;/p&gt;</description>"
        f"<pubDate>Mon, 06 Jan 2025 10:00:00 GMT</pubDate><category>world</category></item>"
        for p in paths
    )
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Local'
            f"</title>{extra}{items}</channel></rss>")


def poll(spec: FeedSpec, state: FeedState | None = None, s: Settings | None = None) -> PollResult:
    async def go() -> PollResult:
        async with new_async_client() as client:
            return await FeedPoller(s or settings(), client).poll(spec, state)

    return asyncio.run(go())


def test_new_entries_become_stories_with_feed_metadata(site: LocalSite) -> None:
    site.add("/feed.xml", rss(site, ["/a", "/b"]), content_type="application/rss+xml")
    spec = FeedSpec(url=site.url("/feed.xml"), name="Local News", country="ua", tags=("war",))
    result = poll(spec)
    assert result.outcome == "new"
    assert [s.url for s in result.stories] == [site.url("/a"), site.url("/b")]  # utm_ dropped
    story = result.stories[0]
    assert story.source == "Local News"
    assert story.feed is not None
    assert story.feed.title == "Story /a"
    assert story.feed.summary == "About /a"
    assert story.feed.country == "UA"
    assert story.feed.tags == ["war"]
    assert story.feed.published_at is not None and story.feed.published_at.year == 2025
    assert site.requests[0].headers["User-Agent"].startswith("newswatch/")


def test_seen_entries_are_not_emitted_again(site: LocalSite) -> None:
    site.add("/feed.xml", rss(site, ["/a", "/b"]), content_type="application/rss+xml")
    spec = FeedSpec(url=site.url("/feed.xml"))
    first = poll(spec)
    site.add("/feed.xml", rss(site, ["/c", "/a", "/b"]), content_type="application/rss+xml")
    # a fresh poller (as after a restart) with only the saved state
    restored = FeedState.model_validate_json(first.state.model_dump_json())
    second = poll(spec, restored)
    assert [s.url for s in second.stories] == [site.url("/c")]
    third = poll(spec, second.state)
    assert third.stories == [] and third.outcome == "unchanged"


def test_conditional_get_and_304(site: LocalSite) -> None:
    body = rss(site, ["/a"]).encode()

    def handler(req: SeenRequest) -> Response:
        if req.headers.get("If-None-Match") == '"v1"':
            return Response(304, b"", {"Cache-Control": "max-age=7200"})
        return Response(200, body, {"Content-Type": "application/rss+xml", "ETag": '"v1"',
                                    "Last-Modified": "Mon, 06 Jan 2025 10:00:00 GMT"})

    site.add_handler("/feed.xml", handler)
    spec = FeedSpec(url=site.url("/feed.xml"))
    first = poll(spec)
    second = poll(spec, first.state)
    assert second.outcome == "not_modified"
    assert site.requests[1].headers["If-Modified-Since"] == "Mon, 06 Jan 2025 10:00:00 GMT"
    assert second.state.interval_s == 7200  # Cache-Control max-age honoured
    assert second.state.health.not_modified == 1


def test_validators_are_dropped_for_a_periodic_full_fetch(site: LocalSite) -> None:
    site.add("/feed.xml", rss(site, ["/a"]), content_type="application/rss+xml",
             headers={"ETag": '"v1"'})
    spec = FeedSpec(url=site.url("/feed.xml"))
    s = settings(poller_full_fetch_s=3600)
    first = poll(spec, s=s)
    poll(spec, first.state, s)
    assert site.requests[1].headers.get("If-None-Match") == '"v1"'
    stale = first.state.model_copy(deep=True)
    assert stale.last_full_fetch_at is not None
    stale.last_full_fetch_at -= timedelta(hours=2)
    poll(spec, stale, s)
    assert "If-None-Match" not in site.requests[2].headers


def test_feed_ttl_sets_the_interval_within_bounds(site: LocalSite) -> None:
    site.add("/ttl.xml", rss(site, ["/a"], "<ttl>120</ttl>"), content_type="application/rss+xml")
    site.add("/sy.xml", rss(site, ["/a"]).replace(
        "<rss ", '<rss xmlns:sy="http://purl.org/rss/1.0/modules/syndication/" ').replace(
        "<title>Local</title>",
        "<title>Local</title><sy:updatePeriod>daily</sy:updatePeriod>"
        "<sy:updateFrequency>2</sy:updateFrequency>"), content_type="application/rss+xml")
    assert poll(FeedSpec(url=site.url("/ttl.xml"))).state.interval_s == 7200
    assert poll(FeedSpec(url=site.url("/sy.xml"))).state.interval_s == 43200
    bounded = FeedSpec(url=site.url("/ttl.xml"), max_interval="1h")
    assert poll(bounded).state.interval_s == 3600


def test_failures_back_off_exponentially_and_are_never_dropped(site: LocalSite) -> None:
    site.add("/down.xml", "oops", status=500)
    spec = FeedSpec(url=site.url("/down.xml"), min_interval=60, max_interval=600)
    state = None
    intervals = []
    for _ in range(6):
        result = poll(spec, state)
        state = result.state
        intervals.append(state.interval_s)
        assert result.outcome == "error"
    assert intervals == [60, 120, 240, 480, 600, 600]
    assert state is not None and state.health.consecutive_failures == 6
    assert state.health.last_error_kind == "http_500"
    assert state.next_poll_at is not None


def test_retry_after_is_honoured(site: LocalSite) -> None:
    site.add("/busy.xml", "slow down", status=429, headers={"Retry-After": "3000"})
    result = poll(FeedSpec(url=site.url("/busy.xml"), min_interval=60))
    assert result.state.health.last_error_kind == "http_429"
    assert result.state.interval_s == 3000


def test_malformed_and_unreachable_feeds_are_recorded(site: LocalSite) -> None:
    site.add("/junk", "<html><body>not a feed at all</body></html>")
    junk = poll(FeedSpec(url=site.url("/junk")))
    assert junk.outcome == "error"
    assert junk.state.health.last_error_kind == "not_a_feed"
    nowhere = poll(FeedSpec(url="http://127.0.0.1:9/feed.xml"))
    assert nowhere.outcome == "error"
    assert nowhere.state.health.last_error_kind == "connect"


def test_entries_without_links_are_counted_and_others_kept(site: LocalSite) -> None:
    feed = rss(site, ["/a"]).replace("</channel>", "<item><title>no link</title></item></channel>")
    site.add("/feed.xml", feed, content_type="application/rss+xml")
    result = poll(FeedSpec(url=site.url("/feed.xml")))
    assert len(result.stories) == 1
    assert result.state.health.entries_without_link == 1


def test_huge_feed_is_refused_with_a_reason(site: LocalSite) -> None:
    site.add("/huge.xml", rss(site, [f"/s{i}" for i in range(3000)]),
             content_type="application/rss+xml")
    result = poll(FeedSpec(url=site.url("/huge.xml")), s=settings(max_feed_bytes=100_000))
    assert result.state.health.last_error_kind == "too_large"


def test_slow_feed_times_out(site: LocalSite) -> None:
    site.add("/slow.xml", rss(site, ["/a"]), content_type="application/rss+xml", delay=5)
    result = poll(FeedSpec(url=site.url("/slow.xml")))
    assert result.state.health.last_error_kind == "timeout"


def test_redirect_loop_is_named(site: LocalSite) -> None:
    site.add("/r1", "", status=302, headers={"Location": "/r2"})
    site.add("/r2", "", status=302, headers={"Location": "/r1"})
    result = poll(FeedSpec(url=site.url("/r1")))
    assert result.state.health.last_error_kind == "redirect_loop"


def test_gzip_feed_with_redirect(site: LocalSite) -> None:
    site.add("/old.xml", "", status=301, headers={"Location": "/feed.xml"})
    site.add("/feed.xml", gzip.compress(rss(site, ["/a"]).encode()),
             content_type="application/rss+xml", headers={"Content-Encoding": "gzip"})
    result = poll(FeedSpec(url=site.url("/old.xml")))
    assert [s.url for s in result.stories] == [site.url("/a")]


def test_private_network_guard_applies_to_feeds(site: LocalSite) -> None:
    site.add("/feed.xml", rss(site, ["/a"]), content_type="application/rss+xml")
    result = poll(FeedSpec(url=site.url("/feed.xml")),
                  s=settings(allow_private_networks="false"))
    assert result.state.health.last_error_kind == "private_address"
    assert site.requests == []


@pytest.mark.parametrize("shard_count", [1, 3])
def test_shards_split_feeds_without_overlap(shard_count: int) -> None:
    from ingest.state import in_shard

    urls = [f"https://example{i}.org/feed" for i in range(60)]
    owners = [[u for u in urls if in_shard(u, f"{i}/{shard_count}")] for i in range(shard_count)]
    assert sorted(u for share in owners for u in share) == sorted(urls)
    assert all(share for share in owners)


def test_identical_body_is_not_reparsed_but_a_broken_one_keeps_failing(site: LocalSite) -> None:
    site.add("/same.xml", rss(site, ["/a"]), content_type="application/rss+xml")
    first = poll(FeedSpec(url=site.url("/same.xml")))
    assert first.state.content_hash is not None
    assert poll(FeedSpec(url=site.url("/same.xml")), first.state).outcome == "unchanged"
    site.add("/html", "<html><body>maintenance</body></html>")
    broken = poll(FeedSpec(url=site.url("/html")))
    again = poll(FeedSpec(url=site.url("/html")), broken.state)
    assert again.outcome == "error" and again.state.health.consecutive_failures == 2


def test_a_feed_list_that_is_not_a_file_is_a_one_line_configuration_error() -> None:
    # NEWSWATCH_FEEDS set to a feed's URL instead of a feed list file: the poller says what
    # to fix and exits, not a traceback
    settings = load_settings({"NEWSWATCH_FEEDS": "http://127.0.0.1:8765/feed.xml"})
    with pytest.raises(SystemExit) as stopped:
        shard_feeds(settings)
    message = str(stopped.value.code)
    assert "NEWSWATCH_FEEDS=http:" in message and "YAML or OPML file" in message
    assert "\n" not in message
