"""Elasticsearch: the client, the index bootstrap, and the one Story -> document mapping.

Stories live in indices ``<alias>-000001``, ``<alias>-000002``... that all
carry the read alias ``settings.index_alias``; exactly one of them is the
write index. ``newswatch index rollover`` (or ILM, on a full distribution)
starts a new one. The template file is plain data
(``deploy/elasticsearch/index-template.json``); only analyzers the node
actually has are added to it here.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from elasticsearch import ApiError, Elasticsearch, NotFoundError

from pipeline.settings import Settings
from pipeline.story import Story
from pipeline.urls import host_of

logger = logging.getLogger(__name__)

FIRST_GENERATION = "000001"
# Full-text fields that get an ``en`` sub-field when the node has the english analyzer.
TEXT_FIELDS = ("title", "summary", "text")
# Evidence snippets are for display; a handful per tag is plenty and bounds the document.
MAX_EVIDENCE = 10
MAX_EVIDENCE_CHARS = 500


def make_client(settings: Settings, **options: Any) -> Elasticsearch:
    """A client for ``settings.elasticsearch_url`` (basic auth when a username is set)."""
    auth = None
    if settings.elasticsearch_username:
        auth = (settings.elasticsearch_username, settings.elasticsearch_password or "")
    defaults: dict[str, Any] = {"request_timeout": 30, "retry_on_timeout": True, "max_retries": 3}
    defaults.update(options)
    return Elasticsearch(settings.elasticsearch_url, basic_auth=auth, **defaults)


def feed_health_index(settings: Settings) -> str:
    """The feed-health index: ``news-feed-health`` next to ``news-stories``."""
    return f"{settings.index_alias.removesuffix('-stories')}-feed-health"


def feed_health_template_path(settings: Settings) -> Path:
    """The feed-health template file, next to the stories template."""
    return settings.index_template.with_name("feed-health-template.json")


def first_index_name(alias: str) -> str:
    """The first backing index of ``alias``; ``_rollover`` increments the suffix."""
    return f"{alias}-{FIRST_GENERATION}"


def load_template(path: Path) -> dict[str, Any]:
    """The template file without its ``_comment`` keys (ES rejects unknown top-level keys)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_comment")}


def has_analyzer(es: Elasticsearch, name: str) -> bool:
    """Whether the node knows the analyzer ``name`` (the minimal test node lacks ``english``)."""
    try:
        es.indices.analyze(analyzer=name, text="probe")
    except ApiError as exc:
        if exc.meta.status == 400:
            return False
        raise
    return True


def template_body(settings: Settings, *, english: bool) -> dict[str, Any]:
    """The composable template for ``<alias>-*``, with english sub-fields if available."""
    body = copy.deepcopy(load_template(settings.index_template))
    body["index_patterns"] = [f"{settings.index_alias}-*"]
    body.setdefault("_meta", {})["english_subfields"] = english
    if english:
        props = body["template"]["mappings"]["properties"]
        for name in TEXT_FIELDS:
            props[name].setdefault("fields", {})["en"] = {"type": "text", "analyzer": "english"}
    return body


def _installed_template(es: Elasticsearch, name: str) -> dict[str, Any] | None:
    try:
        found = es.indices.get_index_template(name=name)
    except NotFoundError:
        return None
    templates = found.get("index_templates") or []
    return dict(templates[0]["index_template"]) if templates else None


def bootstrap_index(settings: Settings, es: Elasticsearch | None = None) -> Iterator[str]:
    """Install/upgrade the template and create the first index + write alias; idempotent.

    Yields one human-readable line per step (``newswatch setup`` prints them).
    """
    es = es or make_client(settings)
    alias = settings.index_alias
    english = has_analyzer(es, "english")
    yield "analyzers: standard" + (" + english" if english else " (english not on this node)")

    body = template_body(settings, english=english)
    installed = _installed_template(es, alias)
    wanted_version = int(body.get("version", 0))
    upgrade = installed is not None and (
        int(installed.get("version", 0)) < wanted_version
        or (installed.get("_meta") or {}).get("english_subfields") != english
    )
    if installed is None or upgrade:
        es.indices.put_index_template(name=alias, **body)
        yield f"template {alias} v{wanted_version} {'upgraded' if upgrade else 'installed'}"
    else:
        yield f"template {alias} v{installed.get('version', 0)} up to date"
    yield from bootstrap_feed_health(settings, es)

    if es.indices.exists_alias(name=alias):
        if upgrade:
            yield from _upgrade_mapping(es, alias, body)
        write = write_index(es, alias)
        yield f"alias {alias} exists (write index {write})"
        return
    if es.indices.exists(index=alias):
        # A write before setup auto-created a concrete index under the alias name.
        raise RuntimeError(
            f"{alias} is a concrete index, not an alias: delete it (or reindex it) and rerun setup"
        )
    index = first_index_name(alias)
    try:
        es.indices.create(index=index, aliases={alias: {"is_write_index": True}})
        yield f"created index {index} with write alias {alias}"
    except ApiError as exc:
        if exc.error != "resource_already_exists_exception":
            raise
        # A concurrent setup created it between our check and create.
        yield f"index {index} already exists"


def bootstrap_feed_health(settings: Settings, es: Elasticsearch) -> Iterator[str]:
    """Install the feed-health template (its index is created by the first write)."""
    name = feed_health_index(settings)
    body = load_template(feed_health_template_path(settings))
    body["index_patterns"] = [f"{name}*"]
    installed = _installed_template(es, name)
    if installed is not None and int(installed.get("version", 0)) >= int(body["version"]):
        yield f"template {name} v{installed.get('version')} up to date"
        return
    es.indices.put_index_template(name=name, **body)
    yield f"template {name} v{body['version']} installed"


def _upgrade_mapping(es: Elasticsearch, alias: str, body: dict[str, Any]) -> Iterator[str]:
    """Apply a new template's mapping to existing indices when ES accepts it (additive changes)."""
    mappings = body["template"]["mappings"]
    try:
        es.indices.put_mapping(index=alias, properties=mappings["properties"])
        yield f"mapping of existing {alias} indices updated in place"
    except ApiError as exc:
        # Incompatible change (e.g. a field's type): only new indices get it.
        yield (
            f"mapping change not applicable in place ({exc.error}); run `newswatch index "
            f"rollover` so the next index uses it, and replay news.enriched to re-index old stories"
        )


def write_index(es: Elasticsearch, alias: str) -> str | None:
    """The concrete index that writes through ``alias`` go to."""
    found = es.indices.get_alias(name=alias)
    for index, info in found.items():
        if info["aliases"][alias].get("is_write_index"):
            return str(index)
    return next(iter(found), None) if len(found) == 1 else None


def rollover(settings: Settings, conditions: dict[str, Any] | None = None,
             es: Elasticsearch | None = None) -> dict[str, Any]:
    """Start a new write index behind the alias (when ``conditions`` are met, if given)."""
    es = es or make_client(settings)
    kwargs: dict[str, Any] = {"alias": settings.index_alias}
    if conditions:
        kwargs["conditions"] = conditions
    return dict(es.indices.rollover(**kwargs))


# -- the document ---------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def story_to_document(story: Story) -> dict[str, Any]:
    """The Elasticsearch document of ``story``: the ONE mapping, checked against the template."""
    feed, fetch, content = story.feed, story.fetch, story.content
    enrichment = story.enrichment
    entities = enrichment.entities if enrichment else []
    tags = enrichment.topics if enrichment else []

    def names(kind: str) -> list[str]:
        return _unique([e.name for e in entities if e.type == kind])

    doc: dict[str, Any] = {
        "id": story.id,
        "schema_version": story.schema_version,
        "url": story.url,
        "final_url": fetch.final_url if fetch else None,
        "host": host_of(story.url),
        "source": story.source or (feed.feed_name if feed else None) or host_of(story.url),
        "feed_url": feed.feed_url if feed else None,
        "feed_name": feed.feed_name if feed else None,
        "feed_country": feed.country if feed else None,
        "title": story.title,
        "summary": (content.description if content and content.description else None)
        or (feed.summary if feed else None),
        "text": story.text or None,
        "author": (content.author if content and content.author else None)
        or (feed.author if feed else None),
        "word_count": len(story.text.split()),
        "language": (enrichment.language if enrichment else None)
        or (content.language if content else None),
        "language_confidence": enrichment.language_confidence if enrichment else None,
        "published_at": _iso(story.published_at),
        "discovered_at": _iso(feed.discovered_at) if feed else None,
        "fetched_at": _iso(fetch.fetched_at) if fetch else None,
        "indexed_at": _iso(datetime.now(UTC)),
        "http_status": fetch.status if fetch else None,
        "topics": _unique([t.name for t in tags]),
        "top_score": max((t.score for t in tags), default=None),
        "tags": [
            {
                "name": t.name,
                "score": t.score,
                "evidence": [
                    {"text": e.text[:MAX_EVIDENCE_CHARS], "matched": e.matched, "start": e.start}
                    for e in t.evidence[:MAX_EVIDENCE]
                ],
            }
            for t in tags
        ],
        # flat "[topic] snippet" lines: a column for Kibana tables, searchable as text
        "evidence": [
            f"[{t.name}] {e.text[:MAX_EVIDENCE_CHARS]}" for t in tags for e in t.evidence[:3]
        ],
        "entities": _unique([e.name for e in entities]),
        "persons": names("person"),
        "organizations": names("organization"),
        "places": names("place"),
        "nationalities": names("nationality"),
        "entity_details": [e.model_dump(exclude_none=True) for e in entities],
        "countries": _unique([c.upper() for c in (enrichment.countries if enrichment else [])]),
        "keyphrases": _unique(enrichment.keyphrases) if enrichment else [],
        "content_hash": enrichment.content_hash if enrichment else None,
        # Every document has a cluster: search collapses on this field, and documents
        # without a value would all collapse into one group.
        "cluster_id": (enrichment.cluster_id if enrichment else None) or story.id,
        "content_sources": dict(content.sources) if content else {},
    }
    return {k: v for k, v in doc.items() if v is not None}
