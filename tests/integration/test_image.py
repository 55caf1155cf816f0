"""The image built from deploy/Dockerfile, run with podman: help, setup, one stage on the real services.

The containers use the host network to reach the native Kafka and Elasticsearch,
with the test's own topic prefix and index alias.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from kafka import KafkaAdminClient

from pipeline.kafka_io import ARTICLES, ENRICHED
from pipeline.settings import Settings
from pipeline.story import Story
from tests.support.containers import inspect, podman
from tests.support.kafka import produce, read_topic
from tests.unit.test_es_document import make_story

pytestmark = pytest.mark.integration


def _env(settings: Settings) -> list[str]:
    pairs = {
        "NEWSWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "NEWSWATCH_ELASTICSEARCH_URL": settings.elasticsearch_url,
        "NEWSWATCH_TOPIC_PREFIX": settings.topic_prefix,
        "NEWSWATCH_INDEX_ALIAS": settings.index_alias,
        "NEWSWATCH_PARTITIONS": "1",
    }
    return [arg for k, v in pairs.items() for arg in ("-e", f"{k}={v}")]


def test_help_without_a_network(newswatch_image: str) -> None:
    result = podman("run", "--rm", "--network", "none", newswatch_image, "--help")
    assert "Usage: newswatch" in result.stdout
    for command in ("run", "setup", "search", "alerts", "dlq"):
        assert f"  {command} " in result.stdout, command
    config = inspect(newswatch_image)["Config"]
    assert config["User"] == "newswatch"
    assert config["Entrypoint"] == ["newswatch"]


def test_setup_and_a_stage_run_as_the_image_user_on_the_real_services(
    newswatch_image: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(create_topics=False)
    setup = podman("run", "--rm", "--network", "host", *_env(settings), newswatch_image, "setup",
                   timeout=300, check=False)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "created index" in setup.stdout
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        topics = set(admin.list_topics())
    finally:
        admin.close()
    assert {settings.topic(ARTICLES), settings.topic(ENRICHED),
            settings.topic("alerts.foreign-fighters")} <= topics
    alias = httpx.get(f"{settings.elasticsearch_url}/_alias/{settings.index_alias}", timeout=10)
    assert alias.status_code == 200, alias.text

    name = f"newswatch-test-enricher-{uuid.uuid4().hex[:8]}"
    podman("run", "-d", "--name", name, "--network", "host", *_env(settings), newswatch_image,
           "run", "enricher")
    try:
        # the data paths the Dockerfile sets, read by the image's own user
        deadline = time.monotonic() + 300
        while podman("exec", name, "test", "-f", "/tmp/newswatch-ready/enricher",
                     check=False).returncode != 0:
            state = inspect(name)["State"]
            assert state["Running"], podman("logs", name).stderr[-3000:]
            assert time.monotonic() < deadline, "enricher not ready after 300 s"
            time.sleep(2)
        assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
        env = dict(line.split("=", 1) for line in
                   podman("exec", name, "printenv").stdout.splitlines() if "=" in line)
        assert env["NEWSWATCH_TOPICS_DIR"] == "/app/deploy/topics"
        assert podman("exec", name, "test", "-r", "/app/deploy/topics/foreign-fighters.yaml",
                      check=False).returncode == 0
        # the shipped data files cannot be changed from inside
        assert podman("exec", name, "touch", "/app/deploy/topics/x", check=False).returncode != 0

        story = make_story("https://news.example.org/2026/12/recruits.html")
        produce(settings, ARTICLES, [(story.id.encode(), story.to_bytes())])
        records = read_topic(settings, ENRICHED, expect=1, timeout=120)
        assert [r.key for r in records] == [story.id.encode()]
        enriched = Story.from_bytes(records[0].value)
        assert enriched.enrichment is not None
        assert enriched.enrichment.language == "en"

        podman("stop", "-t", "60", name, timeout=90)
        assert inspect(name)["State"]["ExitCode"] == 0, podman("logs", name).stderr[-3000:]
    finally:
        podman("rm", "-f", name, check=False)
