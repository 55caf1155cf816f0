"""A story travels from a feed to Elasticsearch and an alert topic, on the real services.

A local HTTP server serves an RSS feed and pages written the way news sites
write them (cookie notice, navigation, share buttons, comment counter, related
links, footer). The five stages run as real ``newswatch run`` processes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from pipeline.kafka_io import DLQ, ENTRIES
from pipeline.settings import Settings
from pipeline.story import Story
from tests.support.kafka import headers_of, produce, read_topic
from tests.support.processes import Stage, newswatch
from tests.support.site import LocalSite

pytestmark = pytest.mark.integration

SITE_DIR = Path(__file__).resolve().parent.parent / "data" / "site"
BOILERPLATE = [
    "cookies", "Share on", "comments", "Related stories", "All rights reserved",
    "Subscribe today", "Newsletter", "Markets rally", "Privacy policy", "Sign in to join",
]

ARTICLES = {
    # path: (title, body file, author)
    "/world/2026/11/colombians-captured-fighting-for-russia": (
        "Ukraine captures Colombian and Nepali men fighting for Russia near Pokrovsk",
        "foreign-fighters.txt", "Olena Petrenko",
    ),
    "/world/2026/11/firefighters-sent-to-greece": (
        "Foreign firefighters join battle against Evia wildfires",
        "firefighters.txt", "Maria Costa",
    ),
    "/world/2026/11/norway-completes-fighter-jet-delivery": (
        "Norway completes delivery of six F-16 fighter jets",
        "fighter-jets.txt", "Lars Berg",
    ),
    "/local/2026/11/council-approves-budget": (
        "City council approves budget with more money for trams",
        "council-budget.txt", "Tom Hughes",
    ),
}
VIDEO_PAGE = "/video/2026/11/evening-bulletin"
FF_PATH = "/world/2026/11/colombians-captured-fighting-for-russia"


def _page(site: LocalSite, path: str, title: str, body_file: str, author: str, published: datetime) -> str:
    template = (SITE_DIR / "page-template.html").read_text()
    return template.format(
        title=title,
        description=title,
        author=author,
        published=published.isoformat(),
        published_human=published.strftime("%d %B %Y"),
        canonical=site.url(path),
        body=(SITE_DIR / body_file).read_text(),
    )


def _feed(site: LocalSite, published: datetime) -> str:
    items = []
    links = [*ARTICLES, VIDEO_PAGE]
    for n, path in enumerate(links):
        title = ARTICLES[path][0] if path in ARTICLES else "Watch: evening bulletin"
        # tracking parameters as feeds add them: they must not change the story id
        items.append(
            f"<item><title>{title}</title><link>{site.url(path)}?utm_source=rss&amp;utm_medium=feed</link>"
            f"<guid isPermaLink='false'>meridian-{n}</guid>"
            f"<pubDate>{format_datetime(published - timedelta(hours=n))}</pubDate>"
            f"<description>{title}.</description></item>"
        )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>The Meridian Herald - World</title><link>{site.url('/')}</link>"
        "<description>World news</description><language>en</language>"
        + "".join(items)
        + "</channel></rss>"
    )


@pytest.fixture
def news_site(site: LocalSite) -> LocalSite:
    published = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    for path, (title, body, author) in ARTICLES.items():
        site.add(path, _page(site, path, title, body, author, published))
    site.add(VIDEO_PAGE, (SITE_DIR / "video-only.html").read_text())
    site.add("/feeds/world.xml", _feed(site, published), content_type="application/rss+xml")
    return site


@pytest.fixture
def pipeline_settings(
    make_settings: Callable[..., Settings], news_site: LocalSite, tmp_path: Path
) -> Settings:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - url: {news_site.url('/feeds/world.xml')}\n    name: Meridian Herald\n")
    settings = make_settings(create_topics=False, feeds=feeds, poller_once=True)
    setup = newswatch(settings, "setup")
    assert setup.returncode == 0, setup.stderr
    return settings


@pytest.fixture
def stages(pipeline_settings: Settings, tmp_path: Path) -> Iterator[dict[str, Stage]]:
    running = {
        name: Stage(pipeline_settings, name, tmp_path)
        for name in ("fetcher", "enricher", "indexer", "alerter")
    }
    yield running
    for stage in running.values():
        stage.stop()


def _search_all(settings: Settings) -> list[dict]:
    url = f"{settings.elasticsearch_url}/{settings.index_alias}/_search"
    response = httpx.post(url, json={"size": 100, "query": {"match_all": {}}}, timeout=10)
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return [hit["_source"] | {"_id": hit["_id"]} for hit in response.json()["hits"]["hits"]]


def _wait_for_documents(settings: Settings, count: int, timeout: float = 180) -> list[dict]:
    deadline = time.monotonic() + timeout
    docs: list[dict] = []
    while time.monotonic() < deadline:
        httpx.post(f"{settings.elasticsearch_url}/{settings.index_alias}/_refresh", timeout=10)
        docs = _search_all(settings)
        if len(docs) >= count:
            return docs
        time.sleep(1)
    return docs


def _kcat_alerts(settings: Settings, subscription: str, expect: int, timeout: float = 60) -> list[dict]:
    """Read an alert topic with Debian's kcat: a client that is not our code."""
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed (make test installs it)"
    topic = settings.topic(f"alerts.{subscription}")
    deadline = time.monotonic() + timeout
    messages: list[dict] = []
    while time.monotonic() < deadline:
        out = subprocess.run(
            [kcat, "-b", settings.kafka_bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q"],
            capture_output=True, text=True, timeout=60,
        )
        messages = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        if len(messages) >= expect:
            break
        time.sleep(1)
    return messages


def _text_of(doc: dict) -> str:
    """The body text from the document, whatever its layout (top-level or nested)."""
    if isinstance(doc.get("text"), str):
        return doc["text"]
    return (doc.get("content") or {}).get("text", "")


def test_a_story_travels_from_feed_to_search_and_alert(
    pipeline_settings: Settings, stages: dict[str, Stage], news_site: LocalSite
) -> None:
    settings = pipeline_settings
    # A message that no stage could decode, straight onto the fetcher's input topic
    produce(settings, ENTRIES, [(b"not-a-story", b"<html>this is not JSON</html>")])

    poll = newswatch(settings, "run", "poller")
    assert poll.returncode == 0, poll.stdout + poll.stderr

    docs = _wait_for_documents(settings, len(ARTICLES))
    logs = "\n".join(f"--- {s.name}\n{s.log()[-3000:]}" for s in stages.values())
    assert len(docs) == len(ARTICLES), logs
    by_url = {doc["url"]: doc for doc in docs}
    assert set(by_url) == {news_site.url(path) for path in ARTICLES}, "tracking parameters stripped"

    for path, (_title, body_file, _author) in ARTICLES.items():
        doc = by_url[news_site.url(path)]
        assert doc["_id"] == Story.from_link(news_site.url(path)).id
        text = _text_of(doc)
        first_sentence = (SITE_DIR / body_file).read_text().split(".")[0].removeprefix("<p>")
        assert first_sentence in text
        for phrase in BOILERPLATE:
            assert phrase not in text, f"boilerplate {phrase!r} in {path}"

    # only the foreign-fighters story carries the tag, with evidence
    tagged = {url for url, doc in by_url.items() if "foreign-fighters" in doc.get("topics", [])}
    assert tagged == {news_site.url(FF_PATH)}

    # the alert, read by an independent client
    alerts = _kcat_alerts(settings, "foreign-fighters", expect=1)
    assert len(alerts) == 1, alerts
    alert = json.loads(alerts[0]["payload"])
    assert alerts[0]["key"] == alert["story_id"] == Story.from_link(news_site.url(FF_PATH)).id
    assert alert["event"] == "new" and alert["kibana_url"]
    assert alert["url"] == news_site.url(FF_PATH)
    assert "Colombian" in alert["title"]
    topic = next(t for t in alert["topics"] if t["name"] == "foreign-fighters")
    assert topic["score"] > 0
    assert topic["evidence"] and all(e["text"] for e in topic["evidence"])

    # the search command finds it
    found = newswatch(settings, "search", "foreign fighters", "--json")
    assert found.returncode == 0, found.stderr
    assert news_site.url(FF_PATH) in found.stdout

    # the unextractable page and the undecodable message are dead-lettered with their reasons
    dead = read_topic(settings, DLQ, expect=2)
    reasons = {r.key: headers_of(r) for r in dead}
    assert set(reasons) == {b"not-a-story", Story.from_link(news_site.url(VIDEO_PAGE)).id.encode()}
    assert "undecodable" in reasons[b"not-a-story"]["x-error"]
    assert reasons[b"not-a-story"]["x-stage"] == "fetcher"
    video = reasons[Story.from_link(news_site.url(VIDEO_PAGE)).id.encode()]
    assert video["x-stage"] == "fetcher" and video["x-error"]

    # polling the same feed again adds nothing: no new entries, no new documents
    entries_before = len(read_topic(settings, ENTRIES, expect=len(ARTICLES) + 2))
    assert entries_before == len(ARTICLES) + 2  # the feed's five links and the garbage message
    again = newswatch(settings, "run", "poller")
    assert again.returncode == 0, again.stderr
    assert len(read_topic(settings, ENTRIES, expect=entries_before + 1, timeout=5)) == entries_before
    time.sleep(3)
    assert len(_wait_for_documents(settings, len(ARTICLES))) == len(ARTICLES)
    assert len(_kcat_alerts(settings, "foreign-fighters", expect=2, timeout=3)) == 1

    # SIGTERM: every stage finishes its batch and exits cleanly
    for stage in stages.values():
        assert stage.stop() == 0, stage.log()[-2000:]
