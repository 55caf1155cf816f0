"""The indexer and the index template on the real Elasticsearch node."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from elastic_transport import ConnectionError as TransportConnectionError
from elasticsearch import Elasticsearch

from pipeline.kafka_io import DLQ, ENRICHED, make_consumer, make_producer
from pipeline.settings import Settings
from pipeline.stage import StageRunner
from processors.elastic import bootstrap_index, make_client, rollover, story_to_document
from processors.indexer import ElasticsearchSink
from tests.support.kafka import headers_of, produce, read_topic
from tests.unit.test_es_document import make_story

pytestmark = pytest.mark.integration


@pytest.fixture
def es_settings(make_settings: Callable[..., Settings]) -> Iterator[Settings]:
    """Settings with the index bootstrapped; the test's indices and template removed after."""
    settings = make_settings()
    list(bootstrap_index(settings))
    yield settings
    es = make_client(settings)
    es.indices.delete(index=f"{settings.index_alias}-*", ignore_unavailable=True)
    es.indices.delete_index_template(name=settings.index_alias)


def _index_stories(settings: Settings, stories: list, group: str = "indexer") -> None:  # type: ignore[type-arg]
    produce(settings, ENRICHED, [(s.id.encode(), s.to_bytes()) for s in stories])
    producer = make_producer(settings)
    runner = StageRunner(
        "indexer", lambda s: s, settings.topic(ENRICHED),
        ElasticsearchSink(settings, make_client(settings)),
        settings=settings, consumer=make_consumer(settings, group),
        producer=producer,
    )
    runner.run(idle_exit_after=15)  # group joins can take seconds
    make_client(settings).indices.refresh(index=settings.index_alias)


def _count(es: Elasticsearch, settings: Settings, **query: object) -> int:
    return int(es.count(index=settings.index_alias, query=query or {"match_all": {}})["count"])


def test_template_loads_and_the_mapping_is_explicit(es_settings: Settings) -> None:
    es = make_client(es_settings)
    lines = list(bootstrap_index(es_settings))  # second run: nothing to do
    assert any("up to date" in line for line in lines)
    assert any("exists" in line for line in lines)
    indices = es.indices.get_alias(name=es_settings.index_alias)
    assert list(indices) == [f"{es_settings.index_alias}-000001"]
    mapping = es.indices.get_mapping(index=es_settings.index_alias)
    props = next(iter(mapping.values()))["mappings"]
    assert props["dynamic"] == "false"
    assert props["properties"]["published_at"]["type"] == "date"
    assert props["properties"]["countries"]["type"] == "keyword"


def test_indexing_is_idempotent_and_keeps_facets(es_settings: Settings) -> None:
    es = make_client(es_settings)
    stories = [make_story(f"https://n{i}.example/story", cluster_id="c1") for i in range(3)]
    _index_stories(es_settings, stories)
    assert _count(es, es_settings) == 3
    # redelivery of the whole topic (a new consumer group): still three documents
    _index_stories(es_settings, stories, group="replay")
    assert _count(es, es_settings) == 3
    doc = es.get(index=es_settings.index_alias, id=stories[0].id)["_source"]
    assert doc == {**story_to_document(stories[0]), "indexed_at": doc["indexed_at"]}
    assert _count(es, es_settings, term={"countries": "UA"}) == 3
    assert _count(es, es_settings, term={"topics": "foreign-fighters"}) == 3
    # unmapped extra fields are kept in _source but never searchable (dynamic: false)
    assert _count(es, es_settings, term={"tags.evidence.text": "recruited"}) == 0


def test_a_story_stays_single_across_a_rollover(es_settings: Settings) -> None:
    es = make_client(es_settings)
    story = make_story("https://one.example/story")
    _index_stories(es_settings, [story])
    result = rollover(es_settings)
    assert result["rolled_over"] is True
    _index_stories(es_settings, [story.model_copy(update={"source": "Updated"})], group="again")
    hits = es.search(index=es_settings.index_alias, query={"ids": {"values": [story.id]}})
    assert hits["hits"]["total"]["value"] == 1
    assert hits["hits"]["hits"][0]["_index"] == f"{es_settings.index_alias}-000001"
    assert hits["hits"]["hits"][0]["_source"]["source"] == "Updated"
    # a new story goes to the new write index
    fresh = make_story("https://two.example/story")
    _index_stories(es_settings, [fresh], group="fresh")
    assert es.get(index=es_settings.index_alias + "-000002", id=fresh.id)["found"]


def test_a_document_elasticsearch_rejects_is_dead_lettered_and_the_rest_indexed(
    es_settings: Settings,
) -> None:
    es = make_client(es_settings)
    good = make_story("https://good.example/a")
    bad = make_story("https://bad.example/b")
    assert bad.fetch is not None
    # an HTTP status beyond the integer range: a mapping failure for that document only
    bad = bad.model_copy(update={"fetch": bad.fetch.model_copy(update={"status": 10**12})})
    _index_stories(es_settings, [good, bad])
    assert _count(es, es_settings) == 1
    dead = read_topic(es_settings, DLQ, expect=1)
    assert [r.key for r in dead] == [bad.id.encode()]
    headers = headers_of(dead[0])
    assert headers["x-stage"] == "indexer"
    assert "rejected" in headers["x-error"]


def test_elasticsearch_unreachable_raises_instead_of_losing_the_batch(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(create_topics=False, elasticsearch_url="http://127.0.0.1:9",
                             max_attempts=2)
    sink = ElasticsearchSink(settings, make_client(settings, max_retries=0))
    sink.emit(make_story(), record=None)  # type: ignore[arg-type]
    with pytest.raises(TransportConnectionError):
        sink.flush()


def test_feed_health_events_are_indexed_once_for_kibana(es_settings: Settings) -> None:
    import json
    import threading

    from processors.elastic import feed_health_index
    from processors.indexer import index_feed_health

    events = [
        {"kind": "poll", "feed_url": "https://a.example/rss", "feed_name": "A", "last_status": 200,
         "consecutive_failures": 0, "new_stories_per_day": 12.5, "@timestamp": "2025-05-02T08:00:00Z"},
        {"kind": "extraction", "feed_url": "https://a.example/rss", "ok": False,
         "error_kind": "no_text", "@timestamp": "2025-05-02T08:01:00Z"},
    ]
    produce(es_settings, "news.feed-health",
            [(b"https://a.example/rss", json.dumps(e).encode()) for e in events]
            + [(b"x", b"not json")])
    es = make_client(es_settings)
    index_feed_health(es_settings, es, threading.Event(), idle_exit_after=10)
    index = feed_health_index(es_settings)
    try:
        es.indices.refresh(index=index)
        assert es.count(index=index)["count"] == 2
        assert es.count(index=index, query={"term": {"error_kind": "no_text"}})["count"] == 1
        mapping = es.indices.get_mapping(index=index)[index]["mappings"]
        assert mapping["properties"]["@timestamp"]["type"] == "date"
    finally:
        es.indices.delete(index=index, ignore_unavailable=True)
        es.indices.delete_index_template(name=index)


def test_rollover_command_respects_conditions(es_settings: Settings) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    env["NEWSWATCH_INDEX_ALIAS"] = es_settings.index_alias
    cmd = [str(Path(sys.executable).with_name("newswatch")), "index", "rollover"]
    waiting = subprocess.run([*cmd, "--max-docs", "1000"], env=env, capture_output=True,
                             text=True, check=False, timeout=60)
    assert waiting.returncode == 0, waiting.stderr
    assert "not rolled over" in waiting.stdout
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"-> {es_settings.index_alias}-000002" in done.stdout
    assert list(bootstrap_index(es_settings))[-1].endswith(f"{es_settings.index_alias}-000002)")
