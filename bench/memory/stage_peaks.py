"""Peak RSS (VmHWM) of the poller, fetcher, enricher and indexer processes on a small real load.

    deploy/local/services.sh start all       # Kafka + Elasticsearch (NEWSWATCH_LOCAL_* ports)
    PYTHONPATH=. .venv/bin/python bench/memory/stage_peaks.py [--feeds 20] [--timeout 900]

The stages run as ``make up`` runs them (``deploy/local/stages.sh``: one ``newswatch run
STAGE`` process each, under its supervisor) on a topic prefix and index alias of their own.
A local HTTP server serves the 421 real news4k pages (../shared) and ``--feeds`` RSS feeds
that list them between them; the pipeline polls, fetches and extracts, enriches and indexes
all of it. Once every page has been dealt with (nothing new indexed for a while and every
group caught up), each stage's VmHWM and VmRSS are read from /proc/<pid>/status (the pid
in its readiness marker), then the stages are stopped and the topics and index deleted.
Politeness is off (NEWSWATCH_PER_HOST_DELAY_S=0: every page is on one local host).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from memstat import mib  # noqa: E402

from pipeline.kafka_io import ARTICLES, ENRICHED, ENTRIES  # noqa: E402
from pipeline.settings import Settings, load_settings  # noqa: E402
from tests.support.site import LocalSite  # noqa: E402

STAGES = ("poller", "fetcher", "enricher", "indexer")
GROUPS = {"fetcher": ENTRIES, "enricher": ARTICLES, "indexer": ENRICHED}
NEWSWATCH = REPO / ".venv" / "bin" / "newswatch"
STAGES_SH = REPO / "deploy" / "local" / "stages.sh"
QUIET_S = 30.0  # nothing new indexed for this long, every group caught up: done


def pages(shared: Path) -> list[tuple[str, str, bytes]]:
    """(slug, title, html) of the news4k pages."""
    truth = json.loads((shared / "corpora" / "news4k" / "ground-truth.json").read_text())
    out = []
    for key, item in sorted(truth.items()):
        path = shared / "corpora" / "news4k" / "html" / f"{key}.html.gz"
        if path.is_file():
            out.append((key, str(item.get("title") or key), gzip.decompress(path.read_bytes())))
    return out


def feed(site: LocalSite, items: list[tuple[str, str]]) -> bytes:
    entries = "".join(
        f"<item><title>{title.replace('&', '&amp;').replace('<', '&lt;')}</title>"
        f"<link>{site.url('/news/' + slug)}</link><guid>{slug}</guid></item>"
        for slug, title in items)
    return (f"<?xml version='1.0'?><rss version='2.0'><channel><title>bench</title>"
            f"<link>{site.url('/')}</link><description>d</description>{entries}</channel></rss>"
            ).encode()


def status(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            values[name] = int(rest.split()[0]) * 1024
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()

    base = load_settings()
    corpus = pages(base.shared_dir)
    if not corpus:
        sys.exit(f"news4k not found under {base.shared_dir} (set NEWSWATCH_SHARED_DIR)")
    site = LocalSite()
    for slug, _title, html in corpus:
        site.add(f"/news/{slug}", html)
    for i in range(args.feeds):
        site.add(f"/feeds/{i}.xml", feed(site, [(s, t) for s, t, _ in corpus[i::args.feeds]]),
                 content_type="application/rss+xml")

    run = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="stage-peaks-"))
    feeds = work / "feeds.yaml"
    feeds.write_text("feeds:\n" + "".join(
        f"  - url: {site.url(f'/feeds/{i}.xml')}\n    name: Bench {i}\n" for i in range(args.feeds)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    env.update({
        "NEWSWATCH_KAFKA_BOOTSTRAP": base.kafka_bootstrap,
        "NEWSWATCH_ELASTICSEARCH_URL": base.elasticsearch_url,
        "NEWSWATCH_TOPIC_PREFIX": f"b{run}.", "NEWSWATCH_INDEX_ALIAS": f"bench-{run}-stories",
        "NEWSWATCH_FEEDS": str(feeds), "NEWSWATCH_ALLOW_PRIVATE_NETWORKS": "true",
        "NEWSWATCH_PER_HOST_DELAY_S": "0", "NEWSWATCH_POLL_MIN_INTERVAL_S": "60",
        "NEWSWATCH_POLL_INTERVAL_S": "60",
        "NEWSWATCH_LOCAL_RUN_DIR": str(work / "run"), "NEWSWATCH_LOCAL_BIN": str(NEWSWATCH),
        "NEWSWATCH_LOCAL_METRICS_BASE_PORT": "0", "NEWSWATCH_LOCAL_STAGE_START_TIMEOUT": "300",
    })
    subprocess.run([str(NEWSWATCH), "setup"], env=env, check=True, capture_output=True)
    settings = load_settings({k: v for k, v in env.items()
                              if k.startswith("NEWSWATCH_") and not k.startswith("NEWSWATCH_LOCAL_")})
    started = time.monotonic()
    subprocess.run(["bash", str(STAGES_SH), "start", *STAGES], env=env, check=True)
    try:
        count = wait_done(settings, started, args.timeout)
        elapsed = time.monotonic() - started
        print(f"{len(corpus)} pages in {args.feeds} feeds: {count} indexed in {elapsed:.0f}s "
              f"(stages started included)")
        print("| stage | peak RSS (VmHWM) | RSS at the end |\n|---|---:|---:|")
        for stage in STAGES:
            pid = int((work / "run" / "ready" / stage).read_text().strip())
            values = status(pid)
            print(f"| {stage} | {mib(values['VmHWM'])} | {mib(values['VmRSS'])} |")
        restarts = {s: (work / "run" / "logs" / f"{s}.log").read_text().count("restarting")
                    for s in STAGES}
        print(f"stage restarts during the run: {restarts}")
    finally:
        subprocess.run(["bash", str(STAGES_SH), "stop", *STAGES], env=env, check=False)
        site.close()
        cleanup(settings)


def indexed(settings: Settings) -> int:
    import httpx

    base = f"{settings.elasticsearch_url}/{settings.index_alias}"
    try:
        httpx.post(f"{base}/_refresh", timeout=10)
        return int(httpx.post(f"{base}/_count", timeout=10).json().get("count", 0))
    except (httpx.HTTPError, ValueError):
        return 0


def lag(settings: Settings, stage: str) -> int:
    from pipeline.kafka_io import uncommitted

    return uncommitted(settings, settings.topic(f"newswatch-{stage}"), settings.topic(GROUPS[stage]))


def wait_done(settings: Settings, started: float, timeout: float) -> int:
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() - started < timeout:
        count = indexed(settings)
        if count != last:
            last, quiet_since = count, time.monotonic()
        if count and time.monotonic() - quiet_since > QUIET_S and all(
                lag(settings, s) == 0 for s in GROUPS):
            return count
        time.sleep(2)
    raise SystemExit(f"not done after {timeout}s: {last} indexed")


def cleanup(settings: Settings) -> None:
    import httpx
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        mine = [t for t in admin.list_topics() if t.startswith(settings.topic_prefix)]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()
    # the stories indices and template, the feed-health index and template (bench-<run>-*)
    prefix = settings.index_alias.removesuffix("-stories")
    httpx.delete(f"{settings.elasticsearch_url}/{prefix}-*", timeout=30)
    for template in (settings.index_alias, f"{prefix}-feed-health"):
        httpx.delete(f"{settings.elasticsearch_url}/_index_template/{template}", timeout=30)


if __name__ == "__main__":
    main()
