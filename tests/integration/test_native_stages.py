"""deploy/local/stages.sh, as `make up` and `make down` use it: ready, restarted, stopped."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest

from pipeline.kafka_io import ENTRIES, read_to_end
from pipeline.partition import host_partition
from pipeline.settings import Settings, child_environment
from pipeline.story import Story
from tests.support.pages import article_page
from tests.support.processes import NEWSWATCH
from tests.support.site import LocalSite

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "stages.sh"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _group_members(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True, text=True, check=True)
    rows = (line.split() for line in out.stdout.splitlines() if line.strip())
    return [int(pid) for pid, group in rows if int(group) == pgid]


def _wait_for_ready_pid(marker: Path, other_than: int | None, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.exists():
            text = marker.read_text().strip()
            if text and int(text) != other_than:
                return int(text)
        time.sleep(0.5)
    raise AssertionError(f"{marker} never named a new process")


def test_a_stage_is_supervised_and_stopped_without_leftovers(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    run_dir = tmp_path / "run"
    port = _free_port()
    env = child_environment(settings) | {
        "NEWSWATCH_LOCAL_RUN_DIR": str(run_dir),
        "NEWSWATCH_LOCAL_BIN": NEWSWATCH,
        "NEWSWATCH_LOCAL_STAGE_RESTART_DELAY": "1",
        # the enricher is the third stage: its metrics port is base + 2
        "NEWSWATCH_LOCAL_METRICS_BASE_PORT": str(port - 2),
    }

    def stages(*args: str) -> None:
        subprocess.run(["bash", str(SCRIPT), *args], env=env, check=True, timeout=180)

    stages("start", "enricher")
    supervisor = int((run_dir / "enricher.pid").read_text())
    try:
        first = _wait_for_ready_pid(run_dir / "ready" / "enricher", other_than=None)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            assert b"newswatch_dedup_window_stories" in response.read()
        # a stage that dies (as on an outage it cannot ride out) comes back by itself
        os.kill(first, signal.SIGKILL)
        second = _wait_for_ready_pid(run_dir / "ready" / "enricher", other_than=first)
        assert second in _group_members(supervisor)
        assert "exited with status 137; restarting" in (run_dir / "logs" / "enricher.log").read_text()
    finally:
        stages("stop", "enricher")
    assert _group_members(supervisor) == []
    assert not (run_dir / "enricher.pid").exists()
    assert not (run_dir / "ready" / "enricher").exists()


def test_two_fetcher_replicas_keep_one_hosts_rate(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """NEWSWATCH_LOCAL_FETCHERS=2: two `newswatch run fetcher` processes in one group; the
    poller partitions news.entries by host, so each host is fetched by one replica and its
    per-host delay holds (measured at the server)."""
    sites = {"127.0.0.1": LocalSite("127.0.0.1"), "127.0.0.2": LocalSite("127.0.0.2")}
    try:
        links = []
        for host, site in sites.items():
            for i in range(8):
                site.add(f"/story/{i}", article_page(f"{host} story {i}"))
                links.append(f"http://{host}:{site.port}/story/{i}")
        items = "".join(f"<item><title>T {n}</title><link>{link}</link></item>"
                        for n, link in enumerate(links))
        rss = f'<rss version="2.0"><channel><title>L</title>{items}</channel></rss>'
        sites["127.0.0.1"].add("/feed.xml", rss, content_type="application/rss+xml")
        feeds = tmp_path / "feeds.yaml"
        feeds.write_text(f"feeds:\n  - url: {sites['127.0.0.1'].url('/feed.xml')}\n    name: Local\n",
                         encoding="utf-8")
        # 127.0.0.1 and 127.0.0.2 hash to different partitions of two: one host per replica
        assert {host_partition(link, 2) for link in links} == {0, 1}
        settings = make_settings(feeds=feeds, poller_once="true", respect_robots="false",
                                 per_host_delay_s="0.5", partitions="2")
        run_dir = tmp_path / "run"
        env = child_environment(settings) | {
            "NEWSWATCH_LOCAL_RUN_DIR": str(run_dir), "NEWSWATCH_LOCAL_BIN": NEWSWATCH,
            "NEWSWATCH_LOCAL_FETCHERS": "2",
            # no metrics ports: 9102/9107 may be another stack's on a shared machine
            "NEWSWATCH_LOCAL_METRICS_BASE_PORT": "0",
        }

        def stages(*args: str) -> str:
            return subprocess.run(["bash", str(SCRIPT), *args], env=env, check=True, timeout=180,
                                  capture_output=True, text=True).stdout

        stages("start", "fetcher")
        try:
            assert stages("status", "fetcher").count("ready") == 2
            time.sleep(2)  # let the group settle on two members before the entries arrive
            polled = subprocess.run([NEWSWATCH, "run", "poller"], env=child_environment(settings),
                                    capture_output=True, text=True, timeout=120)
            assert polled.returncode == 0, polled.stderr[-2000:]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and sum(
                    len(s.requests) for s in sites.values()) < len(links) + 1:
                time.sleep(0.5)
        finally:
            stages("stop", "fetcher")
        assert not list(run_dir.glob("fetcher*.pid"))

        entries = list(read_to_end(settings, settings.topic(ENTRIES), "test-reader"))
        assert len(entries) == len(links)
        for record in entries:
            story = Story.from_bytes(record.value)
            assert record.key == story.id.encode()  # the key is still the story id
            assert record.partition == host_partition(story.url, 2)
        for host, site in sites.items():
            hits = sorted((r for r in site.requests if r.path.startswith("/story/")), key=lambda r: r.at)
            assert sorted(r.path for r in hits) == sorted(f"/story/{i}" for i in range(8)), host
            gaps = [b.at - a.at for a, b in pairwise(hits)]
            # 0.5 s asked; two replicas sharing a host start requests ~together (gaps of
            # 0.01 s without the host partitioner). Generous: times are taken at the server.
            assert min(gaps) >= 0.25, (host, [round(g, 2) for g in gaps])
            assert (hits[-1].at - hits[0].at) / len(gaps) >= 0.45, (host, [round(g, 2) for g in gaps])
        logs = [(run_dir / "logs" / f"{name}.log").read_text() for name in ("fetcher", "fetcher-2")]
        # each replica ended up owning one of the two partitions
        owned = [re.findall(r"partitions assigned: (\S+)\n", log)[-1] for log in logs]
        assert sorted(p.rsplit(":", 1)[1] for p in owned) == ["0", "1"], owned
    finally:
        for site in sites.values():
            site.close()
