"""The pipeline rides out crashes and outages: kill -9 of every stage, a broker restart and
an Elasticsearch outage, each in the middle of a flow of pages, on the native stack.

Four outlets publish the same fifteen stories (near-duplicate copies, so clusters exist; a
few are about foreign fighters, so alerts exist) on feeds that release one entry at a time.
All six stages run under ``deploy/local/stages.sh``'s supervisor, as ``make up`` runs them.
Once part of the flow is indexed, the case does its damage; when the flow has drained:

* every page is in Elasticsearch exactly once (the ids of the alias are the pages' story ids,
  and the alias counts as many documents as there are pages);
* no cluster got two ``"new"`` alerts, and the seed foreign-fighters story got its one.

The services are stopped and started with ``deploy/local/services.sh`` and the
``NEWSWATCH_LOCAL_*`` variables of this test run, so under ``make test`` (default ports) the
cases restart the run's own services, and always leave them running. Before touching them,
a case checks that the script manages exactly the services the tests talk to, and fails
otherwise (it never stops a broker or a node it did not start). Those two cases are also
marked ``disruptive``: ``pytest -m "integration and not disruptive"`` leaves the services
alone (for example while someone else's tests use them).
"""

from __future__ import annotations

import html
import json
import os
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from kafka.errors import KafkaError

from pipeline.kafka_io import ARTICLES, ENRICHED, ENTRIES, read_to_end, uncommitted
from pipeline.settings import Settings, child_environment
from pipeline.story import Story
from tests.support.processes import NEWSWATCH, newswatch
from tests.support.services import check_services_are_ours, restored, services, services_ok
from tests.support.site import LocalSite, Response, SeenRequest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
STAGES_SH = REPO / "deploy" / "local" / "stages.sh"
DATA = REPO / "tests" / "data"
STAGES = ("poller", "fetcher", "enricher", "indexer", "alerter", "retrier")
# stage -> consumer group (before the topic prefix) and the topic it consumes
GROUPS = {
    "fetcher": ENTRIES, "enricher": ARTICLES, "indexer": ENRICHED, "alerter": ENRICHED,
}
OUTLETS = ("meridian", "northstar", "harbour", "capital")
RELEASE_EVERY_S = 0.5  # one feed entry (of one outlet) appears this often
SEED = "foreign-fighters.txt"  # the walking skeleton's story: alerted on its own
SUBSCRIPTION = "foreign-fighters"
# Generous bounds, against hangs only (the machine may be loaded)
FLOW_TIMEOUT_S = 240.0
READY_TIMEOUT_S = 180.0
# every group caught up and no new document for this long: the flow is over, complete or not.
# Longer than a producer send may block while the broker is away (kafka-python's max_block_ms,
# 60 s): after a broker restart the poller can spend that long in one round, delivering nothing,
# while every group has caught up (seen: a 55 s round, the case failed at QUIET_S = 20). Only a
# failing case waits this long; a complete flow ends as soon as every page is indexed.
QUIET_S = 75.0


# --- the stories -----------------------------------------------------------------------
@dataclass(frozen=True)
class BaseStory:
    slug: str
    title: str
    paragraphs: tuple[str, ...]


def _site_story(name: str, title: str) -> BaseStory:
    text = (DATA / "site" / name).read_text()
    paragraphs = tuple(p.strip().removeprefix("<p>").removesuffix("</p>")
                       for p in text.splitlines() if p.strip())
    return BaseStory(name.removesuffix(".txt"), title, paragraphs)


def _real_stories(file: str, count: int) -> list[BaseStory]:
    """The first ``count`` stories of a real-text corpus that have a headline and a body."""
    out = []
    for line in (DATA / "topic-real" / file).read_text().splitlines():
        row = json.loads(line)
        paragraphs = tuple(html.escape(p.strip()) for p in row["text"].split("\n") if p.strip())
        if row["title"] and len(row["text"]) > 1000 and len(paragraphs) >= 2:
            out.append(BaseStory(row["id"], html.escape(row["title"]), paragraphs))
        if len(out) == count:
            break
    return out


def base_stories() -> list[BaseStory]:
    return [
        _site_story(SEED, "Ukraine captures Colombian and Nepali men fighting for Russia near Pokrovsk"),
        _site_story("firefighters.txt", "Foreign firefighters join battle against Evia wildfires"),
        _site_story("fighter-jets.txt", "Norway completes delivery of six F-16 fighter jets"),
        _site_story("council-budget.txt", "City council approves budget with more money for trams"),
        *_real_stories("web-foreign-fighters-en.jsonl", 3),
        *_real_stories("web-other-topics-en.jsonl", 8),
    ]


@dataclass(frozen=True)
class Page:
    outlet: str
    base: BaseStory
    path: str
    release_s: float  # seconds after the flow starts when its feed lists it


class Flow:
    """Feeds that release their entries over time, and the pages they link to."""

    def __init__(self, site: LocalSite) -> None:
        self.site = site
        self.pages: list[Page] = []
        self.started_at: float | None = None
        self.published = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
        template = (DATA / "site" / "page-template.html").read_text()
        # Round-robin: first every story's first copy, then every story's second copy, ...
        # so that when a case strikes (a quarter in), every cluster has begun and three
        # copies of each come after: lost dedup or alert state would show as a split cluster
        # or a second "new" alert.
        bases = base_stories()
        for copy, outlet in enumerate(OUTLETS):
            for base in bases:
                path = f"/{outlet}/2026/12/{base.slug}"
                page = Page(outlet, base, path, len(self.pages) * RELEASE_EVERY_S)
                self.pages.append(page)
                # each outlet rewrites the headline and signs the story: near, not exact, copies
                title = base.title if copy == 0 else f"{base.title} ({outlet.title()})"
                body = "\n".join(f"<p>{p}</p>" for p in base.paragraphs)
                body += f"\n<p>Reporting by the {outlet.title()} Daily newsroom.</p>"
                site.add(path, template.format(
                    title=title, description=title, author=f"{outlet.title()} staff",
                    published=self.published.isoformat(),
                    published_human=self.published.strftime("%d %B %Y"),
                    canonical=site.url(path), body=body,
                ))
        for outlet in OUTLETS:
            site.add_handler(f"/feeds/{outlet}.xml", self._feed_handler(outlet))

    @property
    def release_span_s(self) -> float:
        return len(self.pages) * RELEASE_EVERY_S

    def start(self) -> None:
        self.started_at = time.monotonic()

    def _feed_handler(self, outlet: str) -> Callable[[SeenRequest], Response]:
        def handler(_request: SeenRequest) -> Response:
            elapsed = -1.0 if self.started_at is None else time.monotonic() - self.started_at
            items = []
            released = [p for p in self.pages if p.outlet == outlet and p.release_s <= elapsed]
            for page in reversed(released):  # newest first, as feeds list them
                when = self.published + timedelta(seconds=page.release_s)
                items.append(
                    f"<item><title>{page.base.title}</title><link>{self.site.url(page.path)}</link>"
                    f"<guid isPermaLink='false'>{outlet}-{page.base.slug}</guid>"
                    f"<pubDate>{format_datetime(when)}</pubDate>"
                    f"<description>{page.base.title}.</description></item>"
                )
            body = (
                "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
                f"<title>{outlet.title()} Daily</title><link>{self.site.url('/')}</link>"
                "<description>News</description><language>en</language>"
                + "".join(items) + "</channel></rss>"
            )
            return Response(200, body.encode(), {"Content-Type": "application/rss+xml"})

        return handler

    def story_ids(self) -> set[str]:
        return {Story.from_link(self.site.url(p.path)).id for p in self.pages}

    def ids_of(self, slug: str) -> set[str]:
        return {Story.from_link(self.site.url(p.path)).id for p in self.pages if p.base.slug == slug}


# --- the stages, through deploy/local/stages.sh -----------------------------------------
class Pipeline:
    """The six stages under stages.sh's supervisor, restarted 1 s after they exit."""

    def __init__(self, settings: Settings, run_dir: Path) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.env = child_environment(settings) | {
            "NEWSWATCH_LOCAL_RUN_DIR": str(run_dir),
            "NEWSWATCH_LOCAL_BIN": NEWSWATCH,
            "NEWSWATCH_LOCAL_STAGE_RESTART_DELAY": "1",
            "NEWSWATCH_LOCAL_STAGE_START_TIMEOUT": str(int(READY_TIMEOUT_S)),
            "NEWSWATCH_LOCAL_STOP_TIMEOUT": "30",
        }

    def stages(self, *args: str) -> None:
        result = subprocess.run(["bash", str(STAGES_SH), *args], env=self.env,
                                capture_output=True, text=True, timeout=READY_TIMEOUT_S + 60)
        assert result.returncode == 0, f"stages.sh {' '.join(args)}: {result.stderr}\n{self.logs()}"

    def stop(self) -> None:
        """``stages.sh stop`` of every stage at once (SIGTERM, wait, SIGKILL)."""
        stops = [subprocess.Popen(["bash", str(STAGES_SH), "stop", stage], env=self.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for stage in STAGES]
        errors = [p.communicate(timeout=120)[1] for p in stops if p.wait(timeout=120) != 0]
        assert not errors, errors

    def ready_pids(self) -> dict[str, int]:
        pids = {}
        for stage in STAGES:
            marker = self.run_dir / "ready" / stage
            text = marker.read_text().strip() if marker.exists() else ""
            if text:
                pids[stage] = int(text)
        return pids

    def wait_restarted(self, before: dict[str, int]) -> dict[str, int]:
        """Every stage ready again, as a process other than ``before``'s."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            now = self.ready_pids()
            if all(stage in now and now[stage] != before.get(stage) for stage in STAGES):
                return now
            time.sleep(0.5)
        raise AssertionError(f"stages not all restarted: {self.ready_pids()} (before {before})\n"
                             + self.logs())

    def logs(self, tail: int = 2500) -> str:
        parts = []
        for stage in STAGES:
            path = self.run_dir / "logs" / f"{stage}.log"
            text = path.read_text(errors="replace") if path.exists() else "(no log)"
            parts.append(f"--- {stage}\n{text[-tail:]}")
        return "\n".join(parts)

    def log(self, stage: str) -> str:
        return (self.run_dir / "logs" / f"{stage}.log").read_text(errors="replace")


# --- what came out ----------------------------------------------------------------------
def indexed_ids(settings: Settings) -> tuple[int, list[str]]:
    """(documents counted by the alias, their ids); (0, []) when Elasticsearch is away."""
    base = f"{settings.elasticsearch_url}/{settings.index_alias}"
    try:
        httpx.post(f"{base}/_refresh", timeout=10)
        count = httpx.post(f"{base}/_count", json={"query": {"match_all": {}}}, timeout=10)
        found = httpx.post(f"{base}/_search", timeout=10, json={
            "size": 1000, "_source": False, "query": {"match_all": {}}})
    except httpx.HTTPError:
        return 0, []
    if count.status_code != 200 or found.status_code != 200:
        return 0, []
    return int(count.json()["count"]), [hit["_id"] for hit in found.json()["hits"]["hits"]]


def wait_indexed(settings: Settings, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count, _ = indexed_ids(settings)
        if count >= at_least:
            return count
        time.sleep(0.5)
    return count


def group_lag(settings: Settings, stage: str) -> int | None:
    """Messages of the stage's input not yet committed by its group (None: broker away)."""
    try:
        return uncommitted(settings, settings.topic(f"newswatch-{stage}"),
                           settings.topic(GROUPS[stage]))
    except KafkaError:  # the broker is restarting
        return None


def wait_drained(settings: Settings, flow: Flow, pipeline: Pipeline) -> None:
    """Every page released, every stage's group caught up with its input, and either every
    page indexed or nothing indexed any more for a while (then the assertions say what is
    missing)."""
    assert flow.started_at is not None
    release_end = flow.started_at + flow.release_span_s + 5
    deadline = time.monotonic() + FLOW_TIMEOUT_S
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = indexed_ids(settings)[0]
        if count != last:
            last, quiet_since = count, time.monotonic()
        over = count >= len(flow.pages) or time.monotonic() - quiet_since > QUIET_S
        if over and time.monotonic() > release_end and all(
            group_lag(settings, s) == 0 for s in GROUPS
        ):
            return
        time.sleep(1)
    lags = {stage: group_lag(settings, stage) for stage in GROUPS}
    raise AssertionError(f"not drained after {FLOW_TIMEOUT_S}s: indexed {indexed_ids(settings)[0]}"
                         f" of {len(flow.pages)}, lags {lags}\n{pipeline.logs()}")


def alerts(settings: Settings) -> list[dict]:
    topic = settings.topic(f"alerts.{SUBSCRIPTION}")
    return [json.loads(r.value) for r in read_to_end(settings, topic, "test-resilience-alerts")]


def assert_nothing_lost_nothing_doubled(settings: Settings, flow: Flow, pipeline: Pipeline) -> None:
    wait_drained(settings, flow, pipeline)
    time.sleep(3)  # a late duplicate would show up by now
    count, ids = indexed_ids(settings)
    expected = flow.story_ids()
    logs = pipeline.logs()
    # every page indexed, and each exactly once
    assert sorted(ids) == sorted(expected), (
        f"missing {sorted(expected - set(ids))}, unexpected {sorted(set(ids) - expected)}, "
        f"doubled {[i for i, n in Counter(ids).items() if n > 1]}\n{logs}")
    assert count == len(flow.pages), f"{count} documents for {len(flow.pages)} pages\n{logs}"

    published = alerts(settings)
    new = [a for a in published if a["event"] == "new"]
    per_cluster = Counter(a["cluster_id"] for a in new)
    assert all(n == 1 for n in per_cluster.values()), (
        f"clusters alerted as new more than once: {per_cluster}\n{logs}")
    # ... nor a story of one group of copies starting a second "new" alert under another id
    per_story: dict[str, list[str]] = defaultdict(list)
    for base in base_stories():
        group = flow.ids_of(base.slug)
        per_story[base.slug] = [a["cluster_id"] for a in new if a["story_id"] in group]
    assert all(len(clusters) <= 1 for clusters in per_story.values()), (
        f"copies of one story alerted as new in several clusters: {dict(per_story)}\n{logs}")
    assert len(per_story[SEED.removesuffix(".txt")]) == 1, (
        f"the foreign-fighters story was not alerted: {published}\n{logs}")
    # every alert names a page of this flow (no stray story ids)
    assert {a["story_id"] for a in published} <= expected


# --- fixtures ---------------------------------------------------------------------------
@pytest.fixture
def flow(site: LocalSite) -> Flow:
    return Flow(site)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], flow: Flow, tmp_path: Path) -> Settings:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds:\n" + "".join(
        f"  - url: {flow.site.url(f'/feeds/{outlet}.xml')}\n    name: {outlet.title()} Daily\n"
        for outlet in OUTLETS))
    settings = make_settings(
        create_topics=False, feeds=feeds,
        poll_min_interval_s=1, poll_max_interval_s=2, poll_interval_s=1,
        batch_size=10, fetch_concurrency=4, retry_delays_s="1,2,5",
    )
    setup = newswatch(settings, "setup")
    assert setup.returncode == 0, setup.stdout + setup.stderr
    return settings


@pytest.fixture
def pipeline(settings: Settings, flow: Flow, tmp_path: Path) -> Iterator[Pipeline]:
    running = Pipeline(settings, tmp_path / "run")
    try:
        running.stages("start")
        flow.start()
        yield running
    finally:
        running.stop()


def _midflow(settings: Settings, flow: Flow, pipeline: Pipeline) -> int:
    """Wait until about a quarter of the pages are indexed; returns the count then."""
    count = wait_indexed(settings, len(flow.pages) // 4, timeout=FLOW_TIMEOUT_S)
    assert count >= len(flow.pages) // 4, f"the flow did not start: {count} indexed\n{pipeline.logs()}"
    assert count < len(flow.pages), "the flow ended before the case could disturb it"
    return count


# --- the cases --------------------------------------------------------------------------
def test_kill_9_of_every_stage_mid_flow_loses_and_doubles_nothing(
    settings: Settings, flow: Flow, pipeline: Pipeline
) -> None:
    _midflow(settings, flow, pipeline)
    before = pipeline.ready_pids()
    assert set(before) == set(STAGES), before
    for pid in before.values():
        os.kill(pid, signal.SIGKILL)
    pipeline.wait_restarted(before)
    for stage in STAGES:
        assert "exited with status 137; restarting" in pipeline.log(stage), stage
    assert_nothing_lost_nothing_doubled(settings, flow, pipeline)


@pytest.mark.disruptive
def test_a_broker_restart_mid_flow_loses_and_doubles_nothing(
    settings: Settings, flow: Flow, pipeline: Pipeline
) -> None:
    check_services_are_ours(settings, "kafka")
    _midflow(settings, flow, pipeline)
    with restored("kafka"):
        services_ok("stop", "kafka")
        assert services("status", "kafka").returncode == 3
        time.sleep(5)  # producers and consumers notice the broker is gone
    assert_nothing_lost_nothing_doubled(settings, flow, pipeline)


@pytest.mark.disruptive
def test_an_elasticsearch_outage_mid_flow_loses_and_doubles_nothing(
    settings: Settings, flow: Flow, pipeline: Pipeline
) -> None:
    check_services_are_ours(settings, "elasticsearch")
    _midflow(settings, flow, pipeline)
    with restored("elasticsearch"):
        services_ok("stop", "elasticsearch")
        assert services("status", "elasticsearch").returncode == 3
        # about 45 s without Elasticsearch in all, with the stop and the start; the flow goes
        # on upstream meanwhile, the indexer fails and is restarted
        time.sleep(20)
    assert_nothing_lost_nothing_doubled(settings, flow, pipeline)
