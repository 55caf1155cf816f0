"""The end-to-end benchmark's harness: real pages in, every stage under stages.sh, figures out.

One run: write a feed list and subscriptions for the run's feeds, ``newswatch setup`` (own
topic prefix and index alias), ``deploy/local/stages.sh start``, open the feeds (a burst:
every item listed at once; steady: items appear at a fixed rate), wait until every served
page is searchable and every group has caught up (or nothing moved for ``quiet_s``), then
read what each stage and service spent (/proc), what each topic and the index hold, and
the timestamps each story carries, and stop the stages. Bare ``trafilatura.extract`` on
the same pages follows, in the same run, with the stages stopped.

The services are the caller's: ``bench/e2e/run.py`` starts its own native stack from a
clean state; the CI test (tests/integration/test_e2e_bench.py) passes the test session's.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from bench.e2e.bare import BareResult, bare_extract
from bench.e2e.procstat import cpu_of, live_pid, load_average, memory_of
from bench.e2e.site import CorpusPage, FeedSites, content_digest
from pipeline.kafka_io import ARTICLES, DLQ, ENRICHED, ENTRIES
from pipeline.settings import REPO_ROOT, Settings, child_environment, load_settings
from pipeline.story import Story
from processors.elastic import make_client

logger = logging.getLogger("bench.e2e")

STAGES_SH = REPO_ROOT / "deploy" / "local" / "stages.sh"
SUBSCRIPTIONS = REPO_ROOT / "deploy" / "subscriptions"
STAGES = ("poller", "fetcher", "enricher", "indexer", "alerter", "retrier")
# the consumer groups whose lag says the flow is over (stage -> the topic it consumes)
GROUPS = {"fetcher": ENTRIES, "enricher": ARTICLES, "indexer": ENRICHED, "alerter": ENRICHED}
# A subscription to any tagged story, beside the shipped ones: the shipped foreign-fighters
# one alerts on a few pages of these corpora, too few for latency percentiles
ANY_TAG_SUBSCRIPTION = "bench-any-tag"
SEARCHABLE_POLL_S = 0.25  # how often the index is asked which stories are searchable

Shape = Literal["burst", "steady"]


@dataclass(frozen=True)
class RunConfig:
    shape: Shape = "burst"
    rate_per_s: float = 5.0  # steady only: stories per second over all feeds
    feeds: int = 8
    hosts: int = 4
    copies: int = 2  # every page served this many times, under different URLs
    feed_window: int = 100  # steady: a feed lists its newest items only
    timeout_s: float = 900.0  # after the last release: against hangs
    quiet_s: float = 60.0  # every group caught up and the index unchanged this long: over
    bare_processes: tuple[int, ...] = (1, 2)
    any_tag_subscription: bool = True
    # py-spy (a bench-only install) records these stages during the load: a profiling run,
    # its own figures skewed by the sampler's CPU; the collapsed stacks go to the run dir
    profile_stages: tuple[str, ...] = ()
    py_spy: str | None = None


@dataclass(frozen=True)
class RunPlaces:
    """Where the run writes, and where the services' pid files are."""

    run_dir: Path  # stages.sh's run dir (logs, pids, readiness) and the run's data files
    metrics_base_port: int
    services_run_dir: Path | None = None  # kafka.pid / elasticsearch.pid; None: not measured


@dataclass
class Timeline:
    """When each story passed each point, epoch seconds (None: it did not)."""

    released: float
    discovered: float | None = None
    fetched: float | None = None
    enriched: float | None = None
    indexed: float | None = None
    searchable: float | None = None
    alerted: float | None = None


@dataclass
class _Watch:
    searchable: dict[str, float] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)


# --- settings and child processes ----------------------------------------------------------


def run_settings(base: Settings, run_dir: Path, feed_urls: list[str], any_tag: bool) -> Settings:
    """``base`` with the run's own topics, index, feeds and subscriptions, the benchmark's
    politeness (none: one host serves many pages at once) and a poller that polls every second."""
    tag = uuid.uuid4().hex[:8]
    feeds_file = run_dir / "feeds.yaml"
    feeds_file.write_text("feeds:\n" + "".join(
        f"  - url: {url}\n    name: Bench feed {n}\n" for n, url in enumerate(feed_urls)))
    subscriptions = run_dir / "subscriptions"
    subscriptions.mkdir(exist_ok=True)
    for path in sorted(base.subscriptions_dir.glob("*.yaml")):
        shutil.copy(path, subscriptions / path.name)
    if any_tag:
        (subscriptions / f"{ANY_TAG_SUBSCRIPTION}.yaml").write_text(
            f"name: {ANY_TAG_SUBSCRIPTION}\ndescription: every tagged story (benchmark)\ntopics: []\n")
    env = {k: v for k, v in child_environment(base).items() if k.startswith("NEWSWATCH_")}
    env.update({
        "NEWSWATCH_TOPIC_PREFIX": f"e2e{tag}.",
        "NEWSWATCH_INDEX_ALIAS": f"e2e-{tag}-stories",
        "NEWSWATCH_FEEDS": str(feeds_file),
        "NEWSWATCH_SUBSCRIPTIONS_DIR": str(subscriptions),
        "NEWSWATCH_PER_HOST_DELAY_S": "0",
        "NEWSWATCH_ALLOW_PRIVATE_NETWORKS": "true",  # the pages are served on loopback
        "NEWSWATCH_POLL_INTERVAL_S": "1",
        "NEWSWATCH_POLL_MIN_INTERVAL_S": "1",
        "NEWSWATCH_POLL_MAX_INTERVAL_S": "2",
    })
    env.pop("NEWSWATCH_READY_DIR", None)
    env.pop("NEWSWATCH_METRICS_PORT", None)
    return load_settings(env)


def newswatch_bin() -> str:
    return str(Path(sys.executable).parent / "newswatch")


class Stages:
    """The six stages under deploy/local/stages.sh, as ``make up`` runs them."""

    def __init__(self, settings: Settings, places: RunPlaces) -> None:
        self.places = places
        self.env = child_environment(settings) | {
            "NEWSWATCH_LOCAL_RUN_DIR": str(places.run_dir),
            "NEWSWATCH_LOCAL_BIN": newswatch_bin(),
            "NEWSWATCH_LOCAL_METRICS_BASE_PORT": str(places.metrics_base_port),
            "NEWSWATCH_LOCAL_STAGE_START_TIMEOUT": "300",
            "NEWSWATCH_LOCAL_STOP_TIMEOUT": "60",
        }
        if "NEWSWATCH_LOCAL_FETCHERS" in os.environ:
            self.env["NEWSWATCH_LOCAL_FETCHERS"] = os.environ["NEWSWATCH_LOCAL_FETCHERS"]

    def run(self, *args: str) -> None:
        result = subprocess.run(["bash", str(STAGES_SH), *args], env=self.env,
                                capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"stages.sh {' '.join(args)} failed:\n{result.stderr}\n{self.logs()}")

    def ready_pids(self) -> dict[str, int]:
        """Instance -> pid of its ``newswatch run`` process (what it wrote in its marker)."""
        ready = self.places.run_dir / "ready"
        markers = {s: ready / s for s in STAGES}
        markers |= {p.parent.name: p for p in ready.glob("fetcher-*/fetcher")}
        pids = {}
        for name, marker in markers.items():
            pid = live_pid(marker)
            if pid is not None:
                pids[name] = pid
        return pids

    def logs(self, tail: int = 3000) -> str:
        out = []
        for path in sorted((self.places.run_dir / "logs").glob("*.log")):
            out.append(f"--- {path.stem}\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(out)

    def all_consumed(self, stories: int) -> bool:
        """Each consuming stage has taken ``stories`` messages to an outcome (its own
        counters): the flow is through every stage whatever the state of its commits."""
        metrics = self.metrics()
        outcomes = {"fetcher": ("forwarded", "discarded", "dead_letter"),
                    "enricher": ("forwarded", "discarded", "dead_letter"),
                    "indexer": ("consumed",), "alerter": ("consumed",)}
        return all(
            sum(metrics.get(stage, {}).get(f"newswatch_messages_total{{outcome={o}}}", 0) for o in names)
            >= stories
            for stage, names in outcomes.items()
        )

    def metrics(self) -> dict[str, dict[str, float]]:
        """Each stage's newswatch_* counters, ``name{labels}`` -> value."""
        out: dict[str, dict[str, float]] = {}
        if not self.places.metrics_base_port:
            return out
        for index, stage in enumerate(STAGES):
            port = self.places.metrics_base_port + index
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.HTTPError:
                continue
            values: dict[str, float] = {}
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if not sample.name.startswith("newswatch_") or sample.name.endswith(
                            ("_bucket", "_created")):
                        continue
                    labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items())
                                      if k not in ("stage", "partition", "topic"))
                    key = f"{sample.name}{{{labels}}}" if labels else sample.name
                    values[key] = values.get(key, 0.0) + sample.value
            out[stage] = values
        return out


# --- what the services hold ----------------------------------------------------------------
def topic_records(settings: Settings, logical: str) -> list[tuple[str, float, bytes]]:
    """(key, broker timestamp in epoch seconds, value) of every record of a topic."""
    topic = settings.topic(logical)
    # the records are checked by the broker when written; kafka-python's CRC check in pure
    # Python would make reading them back the slowest part of the benchmark
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                             enable_auto_commit=False, check_crcs=False,
                             fetch_max_bytes=64 * 1024 * 1024)
    out: list[tuple[str, float, bytes]] = []
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return out
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1000).values():
                out.extend(((r.key or b"").decode(), r.timestamp / 1000, r.value or b"") for r in records)
    finally:
        consumer.close()
    return out


class GroupLags:
    """Messages of each stage's input its consumer group has not committed yet.

    Read with the admin client (OffsetFetch) and a group-less consumer (end offsets), so
    the benchmark never joins, or opens a coordinator session for, a stage's group: with a
    consumer created under the alerter's group id, the alerter once saw its commit refused
    ("group is rebalancing") and did not consume again for the rest of the run.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                      client_id="bench-e2e-lags")
        self.ends = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                  enable_auto_commit=False, client_id="bench-e2e-lags")

    def by_stage(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for stage, logical in GROUPS.items():
            topic = self.settings.topic(logical)
            group = self.settings.topic(f"newswatch-{stage}")
            try:
                partitions = [TopicPartition(topic, p)
                              for p in sorted(self.ends.partitions_for_topic(topic) or ())]
                if not partitions:  # setup created the topic: its metadata is not in yet
                    out[stage] = None
                    continue
                ends = self.ends.end_offsets(partitions)
                committed = self.admin.list_group_offsets({group: partitions}).get(group, {})
            except KafkaError:
                out[stage] = None
                continue
            lag = 0
            for tp in partitions:
                done = committed.get(tp)
                lag += ends[tp] - (done.offset if done is not None and done.offset >= 0 else 0)
            out[stage] = lag
        return out

    def unsettled(self) -> dict[str, str]:
        """Stage -> what is wrong with its group, for each group that is not Stable with
        every partition of its input assigned to a member."""
        groups = {self.settings.topic(f"newswatch-{stage}"): stage for stage in GROUPS}
        try:
            described = self.admin.describe_groups(list(groups))
        except KafkaError as exc:
            return {"all": f"describe_groups: {exc}"}
        out = {}
        for group, stage in groups.items():
            info = described.get(group) or {}
            topic = self.settings.topic(GROUPS[stage])
            wanted = set(self.ends.partitions_for_topic(topic) or ())
            assigned = {p for member in info.get("members", [])
                        for a in (member.get("member_assignment") or {}).get("assigned_partitions", [])
                        if a.get("topic") == topic for p in a.get("partitions", [])}
            if info.get("group_state") != "Stable" or not wanted or assigned != wanted:
                out[stage] = (f"{info.get('group_state')}, {len(info.get('members', []))} member(s), "
                              f"partitions {sorted(assigned)} of {sorted(wanted)}")
        return out

    def wait_settled(self, timeout_s: float, checks: int = 3) -> None:
        """Until every stage's group has been settled for ``checks`` checks a second apart.

        A stage marks itself ready once it has subscribed; its group may still be joining.
        Under load, a group that rebalanced while the first stories were in flight has seen
        a member refuse its commits and then consume nothing more (kafka-python 3.0.12), so
        the feeds open only once the groups have settled.
        """
        deadline = time.monotonic() + timeout_s
        in_a_row, problems = 0, {}
        while time.monotonic() < deadline:
            problems = self.unsettled()
            in_a_row = 0 if problems else in_a_row + 1
            if in_a_row >= checks:
                return
            time.sleep(1)
        raise RuntimeError(f"consumer groups not settled after {timeout_s:.0f}s: {problems}")

    def all_caught_up(self) -> bool:
        return all(lag == 0 for lag in self.by_stage().values())

    def close(self) -> None:
        self.ends.close()
        self.admin.close()


def _epoch(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


class Index:
    def __init__(self, settings: Settings) -> None:
        self.alias = settings.index_alias
        self.es = make_client(settings)

    def count(self) -> int:
        try:
            return int(self.es.count(index=self.alias, ignore_unavailable=True)["count"])
        except Exception:  # the alias exists once setup ran; a busy node may time out
            return -1

    def documents(self) -> dict[str, dict[str, Any]]:
        """Story id -> the timestamps and url of its document, for every document."""
        self.es.indices.refresh(index=self.alias)
        found = self.es.search(index=self.alias, size=10_000, query={"match_all": {}},
                               source_includes=["url", "discovered_at", "fetched_at", "indexed_at"])
        return {hit["_id"]: hit["_source"] for hit in found["hits"]["hits"]}

    def newly_searchable(self, since: datetime) -> list[str]:
        """Ids of the documents a search finds now, indexed at ``since`` or later."""
        found = self.es.search(index=self.alias, size=10_000, source=False,
                               query={"range": {"indexed_at": {"gte": since.isoformat()}}},
                               ignore_unavailable=True)
        return [hit["_id"] for hit in found["hits"]["hits"]]


def _watch(settings: Settings, stop: threading.Event, watch: _Watch) -> None:
    """Note when each story first turns up in a search, and the load average meanwhile."""
    index = Index(settings)
    since = datetime.now(UTC) - timedelta(minutes=5)
    last_load = 0.0
    while not stop.is_set():
        try:
            for story_id in index.newly_searchable(since):
                if story_id not in watch.searchable:
                    watch.searchable[story_id] = time.time()
        except Exception as exc:  # a slow answer under load: ask again
            logger.debug("searchable poll: %s", exc)
        if time.monotonic() - last_load >= 5:
            watch.load.append(load_average()[0])
            last_load = time.monotonic()
        # a search finds documents refreshed since: look back far enough to see late ones
        since = datetime.now(UTC) - timedelta(seconds=120)
        stop.wait(SEARCHABLE_POLL_S)


# --- figures -------------------------------------------------------------------------------
def percentiles(values: Iterable[float]) -> dict[str, float | int | None]:
    data = sorted(values)
    if not data:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}

    def q(p: float) -> float:
        pos = (len(data) - 1) * p
        low = int(pos)
        high = min(low + 1, len(data) - 1)
        return round(data[low] + (data[high] - data[low]) * (pos - low), 3)

    return {"n": len(data), "p50": q(0.5), "p95": q(0.95), "p99": q(0.99), "max": round(data[-1], 3)}


LEGS: dict[str, tuple[str, str]] = {
    "released -> discovered": ("released", "discovered"),
    "discovered -> fetched": ("discovered", "fetched"),
    "fetched -> enriched": ("fetched", "enriched"),
    "enriched -> indexed": ("enriched", "indexed"),
    "indexed -> searchable": ("indexed", "searchable"),
    "fetched -> searchable": ("fetched", "searchable"),
    "discovered -> searchable": ("discovered", "searchable"),
    "released -> searchable": ("released", "searchable"),
    "enriched -> alert": ("enriched", "alerted"),
    "discovered -> alert": ("discovered", "alerted"),
}


def latencies(timelines: dict[str, Timeline]) -> dict[str, dict[str, float | int | None]]:
    out = {}
    for leg, (a, b) in LEGS.items():
        gaps = []
        for t in timelines.values():
            start, end = getattr(t, a), getattr(t, b)
            if start is not None and end is not None:
                gaps.append(end - start)
        out[leg] = percentiles(gaps)
    return out


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True,
                              text=True, check=False).stdout.strip()
    changes = [line for line in git("status", "--porcelain").splitlines()
               if not line.endswith((".json", ".md")) or "bench/e2e/results" not in line]
    return {"commit": git("rev-parse", "--short=12", "HEAD"), "dirty": bool(changes)}


def machine(name: str | None) -> dict[str, Any]:
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), 0)
    return {"name": name or socket.gethostname(), "hostname": socket.gethostname(),
            "cores": os.cpu_count(), "memory_gib": round(mem_kb / 1024 / 1024, 1),
            "kernel": platform.release(), "python": platform.python_version()}


# --- the run -------------------------------------------------------------------------------
def run_benchmark(base: Settings, pages: list[CorpusPage], config: RunConfig, places: RunPlaces,
                  machine_name: str | None = None) -> dict[str, Any]:
    """One benchmark run on the services ``base`` points at; returns the result document."""
    places.run_dir.mkdir(parents=True, exist_ok=True)
    rate = config.rate_per_s if config.shape == "steady" else None
    sites = FeedSites(pages, feeds=config.feeds, hosts=config.hosts, copies=config.copies,
                      rate_per_s=rate, window=config.feed_window if rate else None)
    load_at_start = load_average()
    started_at = datetime.now(UTC)
    try:
        settings = run_settings(base, places.run_dir, sites.feed_urls(), config.any_tag_subscription)
        setup = subprocess.run([newswatch_bin(), "setup"], env=child_environment(settings),
                               capture_output=True, text=True, timeout=300)
        if setup.returncode != 0:
            raise RuntimeError(f"newswatch setup failed:\n{setup.stdout}{setup.stderr}")
        stages = Stages(settings, places)
        try:
            stages.run("start")
            measured = _measure(settings, sites, stages, config, places)
        finally:
            stages.run("stop")
    finally:
        sites.close()
    expected = {Story.from_link(i.url).id: i for i in sites.items}
    collected = _collect(settings, expected, measured, sites, config)
    unique_paths = sorted({p.path for p in pages})
    bare = [bare_extract(unique_paths, n) for n in config.bare_processes]
    return _result(settings, pages, config, places, measured, collected, bare, started_at,
                   load_at_start, machine_name, expected)


@dataclass
class _Measured:
    t0: float
    t_end: float
    cpu: dict[str, float]
    rss_peak: dict[str, int]
    restarted: list[str]
    metrics: dict[str, dict[str, float]]
    watch: _Watch
    drained: bool
    harness_cpu_s: float
    lags: dict[str, int | None]


def _service_pids(places: RunPlaces) -> dict[str, int]:
    if places.services_run_dir is None:
        return {}
    pids = {}
    for name, file in (("kafka", "kafka.pid"), ("elasticsearch", "elasticsearch.pid")):
        pid = live_pid(places.services_run_dir / file)
        if pid is not None:
            pids[name] = pid
    return pids


def _measure(settings: Settings, sites: FeedSites, stages: Stages, config: RunConfig,
             places: RunPlaces) -> _Measured:
    pids = stages.ready_pids() | _service_pids(places)
    missing = [s for s in STAGES if s not in pids]
    if missing:
        raise RuntimeError(f"stages not ready: {missing}\n{stages.logs()}")
    expected = len(sites.items)
    lags = GroupLags(settings)
    try:
        lags.wait_settled(timeout_s=180)
    except RuntimeError:
        lags.close()
        raise
    index = Index(settings)
    watch = _Watch()
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(settings, stop, watch), daemon=True)
    watcher.start()
    profilers = [
        subprocess.Popen([config.py_spy, "record", "--pid", str(pids[stage]), "--rate", "100",
                          "--format", "raw", "--nonblocking", "-o",
                          str(places.run_dir / f"profile-{stage}.txt")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for stage in config.profile_stages if config.py_spy
    ]
    before = {name: cpu_of(pid) for name, pid in pids.items()}
    harness_before = time.process_time()
    t0 = sites.start()
    last_count, last_change = -1, time.monotonic()
    releases_end = time.monotonic() + sites.span_s
    deadline = releases_end + config.timeout_s
    drained = False
    try:
        while time.monotonic() < deadline:
            count = index.count()
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            done = count >= expected and len(watch.searchable) >= expected
            quiet = time.monotonic() - last_change > config.quiet_s
            if time.monotonic() >= releases_end and (done or quiet) and (
                    stages.all_consumed(expected) if places.metrics_base_port else lags.all_caught_up()):
                drained = done
                break
            time.sleep(0.5)
        t_end = time.time()
        # the stages commit after each batch: give the last commits a moment, then note the lags
        # (reported, not waited for: see GroupLags.wait_settled for a member that stops committing)
        commits_due = time.monotonic() + 10
        while time.monotonic() < commits_due and not lags.all_caught_up():
            time.sleep(1)
        after = {name: cpu_of(pid) for name, pid in pids.items()}
        harness_cpu = time.process_time() - harness_before
        rss = {name: (memory_of(pid) or {}).get("VmHWM", 0) for name, pid in pids.items()}
        metrics = stages.metrics()
        now_pids = stages.ready_pids()
        final_lags = lags.by_stage()
    finally:
        lags.close()
        stop.set()
        watcher.join(timeout=30)
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its samples and exits
            profiler.wait(timeout=120)
    cpu = {}
    for name in pids:
        b, a = before[name], after[name]
        if b is not None and a is not None:
            cpu[name] = round(a.total_s - b.total_s, 2)
    restarted = [s for s in pids if s in STAGES and now_pids.get(s) != pids[s]]
    if not drained:
        logger.warning("the flow did not complete: %d of %d indexed, %d searchable, lags %s\n%s",
                       last_count, expected, len(watch.searchable), final_lags, stages.logs())
    return _Measured(t0, t_end, cpu, rss, restarted, metrics, watch, drained, round(harness_cpu, 2),
                     final_lags)


@dataclass
class _Collected:
    timelines: dict[str, Timeline]
    counts: dict[str, Any]
    indexed_ids: list[str]


def _collect(settings: Settings, expected: dict[str, Any], measured: _Measured, sites: FeedSites,
             config: RunConfig) -> _Collected:
    timelines = {sid: Timeline(released=measured.t0 + item.release_s) for sid, item in expected.items()}
    documents = Index(settings).documents()
    counts: dict[str, Any] = {"served": len(expected), "feed_requests": sites.requests,
                              "feed_not_modified": sites.not_modified}
    for logical, point in ((ENTRIES, None), (ARTICLES, None), (ENRICHED, "enriched"), (DLQ, None)):
        records = topic_records(settings, logical)
        keys = Counter(k for k, _, _ in records)
        counts[logical] = {"records": len(records), "stories": len(keys),
                           "served_stories": len(set(keys) & set(expected)),
                           "redelivered": sum(n - 1 for n in keys.values())}
        if point:
            for key, stamp, _ in sorted(records, key=lambda r: r[1]):
                t = timelines.get(key)
                if t is not None and getattr(t, point) is None:
                    setattr(t, point, stamp)
    for sid, doc in documents.items():
        t = timelines.get(sid)
        if t is None:
            continue
        t.discovered, t.fetched, t.indexed = (_epoch(doc.get("discovered_at")), _epoch(doc.get("fetched_at")),
                                              _epoch(doc.get("indexed_at")))
        t.searchable = measured.watch.searchable.get(sid)
    alerts: Counter[str] = Counter()
    alerted_stories: set[str] = set()
    for path in sorted(settings.subscriptions_dir.glob("*.yaml")):
        name = path.stem
        for _, _, value in topic_records(settings, f"alerts.{name}"):
            alert = json.loads(value)
            alerts[f"{name}:{alert.get('event')}"] += 1
            story_id = alert["story_id"] if alert.get("event") == "new" else (alert.get("latest") or {}).get(
                "story_id")
            t = timelines.get(story_id or "")
            if t is not None:
                alerted_stories.add(story_id or "")
                alerted_at = _epoch(alert.get("alerted_at"))
                if alerted_at is not None and (t.alerted is None or alerted_at < t.alerted):
                    t.alerted = alerted_at
    counts["alerts"] = dict(sorted(alerts.items())) | {"stories_alerted": len(alerted_stories)}
    counts["indexed"] = {"documents": Index(settings).count(), "stories": len(documents),
                         "served_stories": len(set(documents) & set(expected)),
                         "searchable_seen": len(set(measured.watch.searchable) & set(expected))}
    return _Collected(timelines, counts, sorted(documents))


def _result(settings: Settings, pages: list[CorpusPage], config: RunConfig, places: RunPlaces,
            measured: _Measured, collected: _Collected, bare: list[BareResult], started_at: datetime,
            load_at_start: tuple[float, float, float], machine_name: str | None,
            expected: dict[str, Any]) -> dict[str, Any]:
    timelines = collected.timelines
    indexed = [t.indexed for t in timelines.values() if t.indexed is not None]
    searchable = [t.searchable for t in timelines.values() if t.searchable is not None]
    n = len(indexed)
    first_to_last = (max(indexed) - min(indexed)) if n > 1 else 0.0
    from_start = (max(searchable) - measured.t0) if searchable else 0.0
    stories = max(n, 1)
    stage_cpu = {k: v for k, v in measured.cpu.items() if k not in ("kafka", "elasticsearch")}
    cpu_total = sum(measured.cpu.values())
    by_name = {p.path.name: p for p in pages}
    bare_one = next((b for b in bare if b.processes == 1), bare[0] if bare else None)
    lost = []
    if bare_one is not None:
        # a page counts as indexed when every copy of it is
        indexed_copies = Counter(expected[sid].page.path.name for sid in collected.indexed_ids
                                 if sid in expected)
        lost = sorted(f"{by_name[name].corpus}/{name}" for name in bare_one.extracted_names
                      if indexed_copies[name] < config.copies)
    rate = {
        "stories_indexed": n,
        "first_to_last_indexed_s": round(first_to_last, 2),
        "stories_per_s_first_to_last_indexed": round((n - 1) / first_to_last, 2) if first_to_last else None,
        "start_to_last_searchable_s": round(from_start, 2),
        "stories_per_s_start_to_last_searchable":
            round(len(searchable) / from_start, 2) if from_start else None,
    }
    bare_rows = [{"processes": b.processes, "pages": b.pages, "extracted": b.extracted,
                  "wall_s": round(b.wall_s, 2), "pages_per_s": round(b.pages_per_s, 2),
                  "cpu_s": round(b.cpu_s, 2), "cpu_ms_per_page": round(b.cpu_ms_per_page, 1)}
                 for b in bare]
    ratios: dict[str, float | None] = {}
    best_bare = max(bare, key=lambda b: b.processes) if bare else None
    pipeline_rate = rate["stories_per_s_first_to_last_indexed"]
    if best_bare and pipeline_rate:
        ratios[f"pipeline / bare {best_bare.processes} processes (stories/s)"] = round(
            float(pipeline_rate) / best_bare.pages_per_s, 3)
    if bare_one and bare_one.cpu_ms_per_page:
        ratios["CPU per story, all stages and services / bare CPU per page"] = round(
            1000 * cpu_total / stories / bare_one.cpu_ms_per_page, 2)
    load_samples = measured.watch.load
    return {
        "benchmark": "newswatch end to end (issue 11)",
        "shape": config.shape,
        "config": asdict(config) | {"rate_per_s": config.rate_per_s if config.shape == "steady" else None,
                                    "topic_prefix": settings.topic_prefix,
                                    "index_alias": settings.index_alias,
                                    "per_host_delay_s": settings.per_host_delay_s,
                                    "batch_size": settings.batch_size,
                                    "fetch_concurrency": settings.fetch_concurrency,
                                    "partitions": settings.partitions,
                                    "fetchers": int(os.environ.get("NEWSWATCH_LOCAL_FETCHERS", "1"))},
        "machine": machine(machine_name),
        "date": started_at.isoformat(timespec="seconds"),
        **git_commit(),
        "load_average": {"start": list(load_at_start), "end": list(load_average()),
                         "during_1min_mean":
                             round(statistics.mean(load_samples), 2) if load_samples else None,
                         "during_1min_max": max(load_samples) if load_samples else None},
        "pages": {"unique": len(pages), "served": len(expected), "feeds": config.feeds,
                  "hosts": config.hosts, "copies": config.copies,
                  "corpora": dict(Counter(p.corpus for p in pages)), "digest": content_digest(pages)},
        "drained": measured.drained,
        "group_lags_at_end": measured.lags,
        "restarted_stages": measured.restarted,
        "run_s": round(measured.t_end - measured.t0, 2),
        "throughput": rate,
        "cpu_s": dict(sorted(measured.cpu.items(), key=lambda kv: -kv[1])) | {
            "total": round(cpu_total, 2), "harness (HTTP server, watchers)": measured.harness_cpu_s},
        "cpu_ms_per_story": {k: round(1000 * v / stories, 1) for k, v in measured.cpu.items()}
        | {"stages": round(1000 * sum(stage_cpu.values()) / stories, 1),
           "total": round(1000 * cpu_total / stories, 1)},
        "peak_rss_mib": {k: round(v / 2**20, 1) for k, v in measured.rss_peak.items()},
        "latency_s": latencies(timelines),
        "counts": collected.counts,
        "metrics": measured.metrics,
        "bare_trafilatura": bare_rows,
        "ratios": ratios,
        "bare_extracted_not_indexed": lost,
        "searchable_poll_s": SEARCHABLE_POLL_S,
    }
