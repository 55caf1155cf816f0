"""The one Story -> document mapping, checked against the index template."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pipeline.settings import load_settings
from pipeline.story import Content, Enrichment, Entity, Evidence, FeedEntry, FetchResult, Story, TopicTag
from processors.elastic import load_template, story_to_document, template_body


def make_story(
    link: str = "https://news.example.org/2025/05/recruits.html",
    *,
    title: str = "Colombian veterans recruited to fight in Ukraine",
    text: str = "Former Colombian soldiers said they were recruited to fight for Ukraine.",
    source: str = "Example News",
    topics: list[tuple[str, float]] | None = None,
    cluster_id: str | None = None,
    language: str = "en",
    countries: list[str] | None = None,
    entities: list[tuple[str, str]] | None = None,
    published: datetime | None = None,
) -> Story:
    """A fully enriched story, as the enricher would emit it."""
    tags = [
        TopicTag(name=name, score=score, evidence=[Evidence(text=text[:80], matched=["recruited"],
                                                            start=0)])
        for name, score in (topics if topics is not None else [("foreign-fighters", 4.5)])
    ]
    return Story.from_link(
        link,
        source=source,
        feed=FeedEntry(feed_url="https://news.example.org/rss", feed_name=source, link=link,
                       title=title, summary="Veterans abroad", country="GB"),
        fetch=FetchResult(final_url=link, status=200, bytes=1234),
        content=Content(title=title, text=text,
                        published_at=published or datetime(2025, 5, 2, 8, 30, tzinfo=UTC),
                        sources={"title": "page", "text": "page"}),
        enrichment=Enrichment(
            language=language, language_confidence=0.99,
            entities=[Entity(name=n, type=t, country="CO" if t == "nationality" else None)  # type: ignore[arg-type]
                      for n, t in (entities if entities is not None
                                   else [("Colombian", "nationality"), ("Ukraine", "place")])],
            countries=countries if countries is not None else ["CO", "UA"],
            topics=tags, content_hash="abc123", cluster_id=cluster_id,
        ),
    )


def _mapped_paths(properties: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, spec in properties.items():
        out[prefix + name] = spec
        if "properties" in spec:
            out.update(_mapped_paths(spec["properties"], prefix + name + "."))
    return out


def test_every_document_field_is_mapped_in_the_template() -> None:
    settings = load_settings({})
    mapped = _mapped_paths(load_template(settings.index_template)["template"]["mappings"]
                           ["properties"])
    doc = story_to_document(make_story())
    missing = [k for k in doc if k not in mapped]
    assert missing == []
    for tag in doc["tags"]:
        assert {"tags." + k for k in tag} <= set(mapped)


def test_template_is_strict_and_uses_only_minimal_node_analyzers() -> None:
    settings = load_settings({})
    raw = json.loads(settings.index_template.read_text())
    mappings = raw["template"]["mappings"]
    assert mappings["dynamic"] == "false"
    analyzers = {spec.get("analyzer") for spec in _mapped_paths(mappings["properties"]).values()}
    assert analyzers <= {None, "standard"}
    keywords = [p for p, s in _mapped_paths(mappings["properties"]).items()
                if s.get("type") == "keyword"]
    # a keyword over 32,766 bytes fails the whole document: every keyword is capped
    assert all("ignore_above" in _mapped_paths(mappings["properties"])[k] for k in keywords
               if k != "id")
    assert mappings["properties"]["published_at"]["type"] == "date"


def test_template_body_targets_the_alias_indices_and_adds_english_only_when_asked() -> None:
    settings = load_settings({"NEWSWATCH_INDEX_ALIAS": "x-stories"})
    plain = template_body(settings, english=False)
    assert plain["index_patterns"] == ["x-stories-*"]
    assert "_comment" not in plain
    assert "en" not in plain["template"]["mappings"]["properties"]["text"].get("fields", {})
    rich = template_body(settings, english=True)
    assert rich["template"]["mappings"]["properties"]["text"]["fields"]["en"]["analyzer"] == \
        "english"


def test_document_carries_facets_scores_and_evidence() -> None:
    story = make_story(topics=[("foreign-fighters", 4.5), ("ukraine-war", 2.0)],
                       countries=["co", "UA"])
    doc = story_to_document(story)
    assert doc["id"] == story.id
    assert doc["topics"] == ["foreign-fighters", "ukraine-war"]
    assert doc["top_score"] == 4.5
    assert doc["tags"][0]["evidence"][0]["matched"] == ["recruited"]
    assert doc["countries"] == ["CO", "UA"]
    assert doc["nationalities"] == ["Colombian"]
    assert doc["places"] == ["Ukraine"]
    assert doc["published_at"] == "2025-05-02T08:30:00+00:00"
    assert doc["source"] == "Example News"
    assert doc["host"] == "news.example.org"


def test_story_without_cluster_is_its_own_cluster() -> None:
    # search collapses on cluster_id; documents lacking it would collapse together
    story = make_story(cluster_id=None)
    assert story_to_document(story)["cluster_id"] == story.id
    assert story_to_document(make_story(cluster_id="c-9"))["cluster_id"] == "c-9"


def test_unenriched_story_maps_without_enrichment_fields() -> None:
    story = Story.from_link("https://example.org/a", feed=FeedEntry(
        feed_url="https://example.org/rss", link="https://example.org/a", title="Hello"))
    doc = story_to_document(story)
    assert doc["title"] == "Hello"
    assert doc["topics"] == []
    assert "language" not in doc
