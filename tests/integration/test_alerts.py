"""The alerter on the real broker: matching, one alert per cluster, webhooks, read by kcat."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.kafka_io import DLQ, ENRICHED, TopicSpec, ensure_topics, make_consumer, make_producer
from pipeline.settings import Settings
from pipeline.stage import StageRunner
from pipeline.story import Story
from processors.alerter import AlertSink, make_reader
from processors.enricher import Enricher
from processors.subscriptions import load_subscriptions
from tests.support.kafka import headers_of, produce, read_topic
from tests.support.site import LocalSite, Response, SeenRequest
from tests.unit.test_es_document import make_story

pytestmark = pytest.mark.integration


def _kcat(settings: Settings, topic: str) -> list[dict[str, Any]]:
    """Every message of ``topic`` read by an independent client (kcat), as JSON envelopes."""
    kcat = shutil.which("kcat")
    assert kcat, "kcat is required (apt-get install -y kcat)"
    out = subprocess.run(
        [kcat, "-b", settings.kafka_bootstrap, "-C", "-t", settings.topic(topic),
         "-o", "beginning", "-e", "-J", "-q"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _subscriptions(tmp_path: Path, webhook: str | None = None) -> Path:
    directory = tmp_path / "subs"
    directory.mkdir()
    (directory / "ff.yaml").write_text(
        "name: ff\ntopics: [foreign-fighters]\nfilters:\n  minimum_score: 2\n"
        "  countries: [UA]\n", encoding="utf-8")
    hook = f"output:\n  webhook:\n    url: {webhook}\n" if webhook else ""
    (directory / "nepal.yaml").write_text(
        "name: nepal\ntopics: [foreign-fighters]\nfilters:\n  entities: [nepali]\n" + hook,
        encoding="utf-8")
    return directory


def _run_alerter(settings: Settings, group: str) -> None:
    subs = load_subscriptions(settings.subscriptions_dir)
    ensure_topics(settings, [TopicSpec(s.alert_topic, partitions=1) for s in subs])
    reader = make_reader(settings, subs)
    producer = make_producer(settings)
    runner = StageRunner(
        "alerter", lambda s: s, settings.topic(ENRICHED),
        AlertSink(settings, subs, producer, reader), settings=settings,
        consumer=make_consumer(settings, group), producer=producer,
    )
    try:
        runner.run(idle_exit_after=15)  # group joins can take seconds
    finally:
        reader.consumer.close()


def _send(settings: Settings, stories: list[Story]) -> None:
    produce(settings, ENRICHED, [(s.id.encode(), s.to_bytes()) for s in stories])


def test_one_alert_per_cluster_updated_by_copies_and_restarts(
    make_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    settings = make_settings(subscriptions_dir=_subscriptions(tmp_path), kibana_url="http://kb")
    copies = [make_story(f"https://outlet{i}.example/recruits", cluster_id="c-recruits",
                         source=f"Outlet {i}") for i in range(3)]
    weak = make_story("https://weak.example/a", topics=[("foreign-fighters", 1.0)])
    elsewhere = make_story("https://else.example/a", countries=["CO"])
    other_topic = make_story("https://sport.example/a", topics=[("sport", 9.0)])
    _send(settings, [copies[0], weak, elsewhere, other_topic])
    _run_alerter(settings, "alerter")
    _send(settings, copies[1:])
    _run_alerter(settings, "alerter")  # a restart: state comes back from the alert topic

    alerts = _kcat(settings, "alerts.ff")
    payloads = [json.loads(a["payload"]) for a in alerts]
    assert [p["event"] for p in payloads] == ["new", "update", "update"]
    assert {a["key"] for a in alerts} == {copies[0].id}  # one key: one alert per cluster
    assert [p["cluster_size"] for p in payloads] == [1, 2, 3]
    first = payloads[0]
    assert first["story_id"] == copies[0].id
    assert first["title"] == copies[0].title
    assert first["url"] == copies[0].url
    assert first["source"] == "Outlet 0"
    assert first["published_at"].startswith("2025-05-02T08:30")
    assert first["topics"][0]["name"] == "foreign-fighters"
    assert first["topics"][0]["score"] == 4.5
    assert first["topics"][0]["evidence"][0]["text"]
    assert first["kibana_url"].startswith("http://kb/app/discover#/")
    assert copies[0].id in first["kibana_url"]
    assert payloads[2]["latest"]["url"] == copies[2].url
    assert payloads[2]["cluster_story_ids"] == [c.id for c in copies]
    assert _kcat(settings, "alerts.nepal") == []

    # a full replay of news.enriched (new consumer group) publishes nothing new
    _run_alerter(settings, "replay")
    assert len(_kcat(settings, "alerts.ff")) == 3


def test_webhook_delivery_and_dead_lettered_failure(
    make_settings: Callable[..., Settings], tmp_path: Path, site: LocalSite,
) -> None:
    status = {"code": 200}
    site.add_handler("/hook", lambda req: Response(status["code"], b"ok"))
    settings = make_settings(subscriptions_dir=_subscriptions(tmp_path, site.url("/hook")),
                             max_attempts=2)
    nepal = make_story("https://nepal.example/army", cluster_id="c-nepal",
                       entities=[("Nepali", "nationality")])
    _send(settings, [nepal])
    _run_alerter(settings, "alerter")
    posts: list[SeenRequest] = [r for r in site.requests if r.method == "POST"]
    assert len(posts) == 1
    assert json.loads(posts[0].body)["story_id"] == nepal.id
    assert json.loads(_kcat(settings, "alerts.nepal")[0]["payload"])["story_id"] == nepal.id

    status["code"] = 503  # the receiver is down: retried, then dead-lettered
    later = make_story("https://nepal2.example/army", cluster_id="c-nepal-2",
                       entities=[("Nepali", "nationality")])
    _send(settings, [later])
    _run_alerter(settings, "alerter")
    assert len([r for r in site.requests if r.method == "POST"]) == 3  # 1 + 2 attempts
    dead = read_topic(settings, DLQ, expect=1)
    assert [r.key for r in dead] == [later.id.encode()]
    assert "webhook" in headers_of(dead[0])["x-error"]
    # the Kafka alert itself was published
    assert len(_kcat(settings, "alerts.nepal")) == 2


def _seed_story_record() -> dict[str, Any]:
    """Interfax-Ukraine's report of Zelensky's claim that 155 Chinese citizens fight for Russia:
    real published text, kept in the real-news evaluation set with its source."""
    path = Path(__file__).resolve().parents[1] / "data" / "topic-real" / "web-foreign-fighters-en.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["source"] == "https://en.interfax.com.ua/news/general/1062668.html":
            return record
    raise AssertionError("the seed story is missing from the real-news set")


def test_the_seed_story_is_tagged_with_evidence_and_alerts_once_per_cluster(
    make_settings: Callable[..., Settings],
) -> None:
    # The shipped topics, the real enricher (rules + meaning check) and the shipped default
    # subscription: the seed story, without its headline, must clear the subscription's
    # minimum score (the topic's alert_score), not only the tag threshold.
    shipped = Path(__file__).resolve().parents[2] / "deploy" / "subscriptions"
    settings = make_settings(kibana_url="http://kb", subscriptions_dir=shipped)
    enricher = Enricher.from_settings(settings)
    record = _seed_story_record()
    copies = []
    for outlet in ("interfax.example", "syndicated.example"):
        story = make_story(f"https://{outlet}/zelensky-chinese", title="", text=record["text"])
        story = story.model_copy(update={"enrichment": None})
        copies.append(enricher(story))
    first, second = copies
    assert first.enrichment and second.enrichment
    [tag] = [t for t in first.enrichment.topics if t.name == "foreign-fighters"]
    subscription = load_subscriptions(settings.subscriptions_dir)[0]
    assert tag.score >= subscription.filters.minimum_score, tag  # a calibrated probability
    assert any("155 Chinese citizens" in e.text for e in tag.evidence), tag.evidence
    assert second.enrichment.cluster_id == first.id  # the copy joins the first story's cluster

    _send(settings, copies)
    _run_alerter(settings, "alerter")
    alerts = _kcat(settings, "alerts.foreign-fighters")
    payloads = [json.loads(a["payload"]) for a in alerts]
    assert [p["event"] for p in payloads] == ["new", "update"]
    # one key (the copy the alerter read first: the two may sit on different partitions)
    assert len({a["key"] for a in alerts}) == 1
    assert payloads[0]["story_id"] in {first.id, second.id}
    assert set(payloads[1]["cluster_story_ids"]) == {first.id, second.id}
    assert any("155 Chinese citizens" in e["text"] for e in payloads[0]["topics"][0]["evidence"])


def test_start_up_replay_reads_only_the_state_window_and_never_fails_on_time(
    make_settings: Callable[..., Settings], tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    import time

    from kafka import KafkaConsumer, KafkaProducer

    from processors.alerter import AlertState, AlertTopicReader

    settings = make_settings(subscriptions_dir=_subscriptions(tmp_path), alert_state_days=7)
    subs = load_subscriptions(settings.subscriptions_dir)
    ensure_topics(settings, [TopicSpec(s.alert_topic, partitions=1) for s in subs])
    topic = settings.topic("alerts.ff")
    now_ms = int(time.time() * 1000)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    for i, age_days in enumerate([30, 10, 2, 0.1]):
        alert = {"event": "new", "subscription": "ff", "cluster_id": f"c{i}", "story_id": f"s{i}"}
        producer.send(topic, key=f"s{i}".encode(), value=json.dumps(alert).encode(),
                      timestamp_ms=now_ms - int(age_days * 86_400_000))
    producer.flush()
    producer.close()

    reader = make_reader(settings, subs)
    try:
        assert sorted(c for _, c in reader.state.clusters) == ["c2", "c3"]
    finally:
        reader.consumer.close()

    # a replay that runs out of time is logged and the stage goes on (no exception)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    try:
        slow = AlertTopicReader(consumer, [topic], AlertState(max_age_s=365 * 86400), timeout_s=0)
        with caplog.at_level("WARNING", logger="processors.alerter"):
            read = slow.catch_up()
        assert read < 4
        assert "going on with" in caplog.text
    finally:
        consumer.close()
