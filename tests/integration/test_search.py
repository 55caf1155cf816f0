"""`newswatch search` on the real node: filters, highlights, collapsed clusters, output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from elasticsearch import helpers

from pipeline.settings import Settings
from processors.elastic import bootstrap_index, make_client, story_to_document
from processors.search import Filters, search
from tests.unit.test_es_document import make_story

pytestmark = pytest.mark.integration
NEWSWATCH = Path(sys.executable).with_name("newswatch")
NOW = datetime.now(UTC)


@pytest.fixture
def corpus(make_settings: Callable[..., Settings]) -> Iterator[Settings]:
    """Five stories: one cluster of three copies, and two singletons."""
    settings = make_settings(create_topics=False)
    list(bootstrap_index(settings))
    stories = [
        make_story(f"https://outlet{i}.example/recruits", cluster_id="cluster-recruits",
                   source=f"Outlet {i}", published=NOW - timedelta(hours=i + 1),
                   title=f"Colombian veterans recruited for Ukraine ({i})")
        for i in range(3)
    ] + [
        make_story("https://nepal.example/army", title="Nepali men join Russian army",
                   text="Families in Nepal say men were lured to join the Russian army.",
                   source="Kathmandu Daily", countries=["NP", "RU"], topics=[("foreign-fighters", 3.0)],
                   entities=[("Nepali", "nationality")], published=NOW - timedelta(days=2)),
        make_story("https://weather.example/storm", title="Storm hits the coast",
                   text="A storm hit the coast on Monday; no recruitment involved.",
                   source="Weather Desk", countries=["GB"], topics=[], entities=[],
                   published=NOW - timedelta(days=40), language="en"),
    ]
    es = make_client(settings)
    helpers.bulk(es, ({"_index": settings.index_alias, "_id": s.id,
                       "_source": story_to_document(s)} for s in stories), refresh=True)
    yield settings
    es.indices.delete(index=f"{settings.index_alias}-*", ignore_unavailable=True)
    es.indices.delete_index_template(name=settings.index_alias)


def test_clusters_collapse_to_one_hit_with_a_copy_count(corpus: Settings) -> None:
    result = search(corpus, "recruited")
    assert result.total == 3
    assert result.clusters == 1
    assert len(result.hits) == 1
    assert result.hits[0].copies == 3
    expanded = search(corpus, "recruited", collapse=False)
    assert len(expanded.hits) == 3


def test_highlights_mark_the_matched_words(corpus: Settings) -> None:
    hit = search(corpus, "lured", tags=("[", "]")).hits[0]
    assert hit.title == "Nepali men join Russian army"
    assert any("[lured]" in s for s in hit.snippets)


def test_filters(corpus: Settings) -> None:
    def ids(**kw: object) -> set[str]:
        return {h.url for h in search(corpus, None, Filters(**kw), collapse=False).hits}  # type: ignore[arg-type]

    assert ids(countries=["np"]) == {"https://nepal.example/army"}
    assert ids(entities=["nepali"]) == {"https://nepal.example/army"}
    assert ids(sources=["Weather Desk"]) == {"https://weather.example/storm"}
    assert len(ids(topics=["foreign-fighters"])) == 4
    assert ids(topics=["foreign-fighters"], since="1d") == {
        f"https://outlet{i}.example/recruits" for i in range(3)}
    assert ids(until="30d") == {"https://weather.example/storm"}
    assert ids(languages=["fr"]) == set()


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    env["NEWSWATCH_INDEX_ALIAS"] = settings.index_alias
    env["NEWSWATCH_ELASTICSEARCH_URL"] = settings.elasticsearch_url
    return subprocess.run([str(NEWSWATCH), "search", *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_cli_table_and_json(corpus: Settings) -> None:
    table = _cli(corpus, "recruited", "--topic", "foreign-fighters")
    assert table.returncode == 0, table.stderr
    assert "3 stories in 1 clusters" in table.stdout
    assert "(+2 similar)" in table.stdout
    assert "«recruited»" in table.stdout
    as_json = _cli(corpus, "army", "--country", "NP", "--json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["total"] == 1
    assert data["hits"][0]["url"] == "https://nepal.example/army"
    assert "<em>army</em>" in " ".join(data["hits"][0]["snippets"] + [data["hits"][0]["title"]])


def test_cli_rejects_a_bad_date_with_a_clear_message(corpus: Settings) -> None:
    bad = _cli(corpus, "x", "--since", "last tuesday")
    assert bad.returncode == 2
    assert "relative time" in bad.stderr
    assert "Traceback" not in bad.stderr
