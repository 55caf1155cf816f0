"""Search the stories index: a query string, facet filters, highlights, collapsed clusters."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from elasticsearch import Elasticsearch

from pipeline.settings import Settings
from processors.elastic import make_client

# `title.en`/`text.en` exist only where bootstrap found the english analyzer;
# simple_query_string ignores fields that are not mapped.
SEARCH_FIELDS = ["title^3", "title.en^2", "summary^2", "summary.en", "text", "text.en"]
RELATIVE = re.compile(r"^(\d+)([smhdwMy])$")


class SearchError(ValueError):
    """A search request that cannot be run as given (bad date, bad limit)."""


@dataclass
class Filters:
    topics: list[str] = field(default_factory=list)
    entities: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    since: str | None = None
    until: str | None = None


@dataclass
class Hit:
    id: str
    title: str | None
    title_highlight: str | None  # the title with the matched words marked, when they are in it
    url: str
    source: str | None
    published_at: str | None
    language: str | None
    topics: list[dict[str, Any]]
    countries: list[str]
    cluster_id: str | None
    copies: int
    snippets: list[str]
    score: float | None


@dataclass
class SearchResult:
    total: int  # matching stories
    clusters: int  # distinct clusters among them (what the hits are collapsed to)
    hits: list[Hit]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def date_bound(value: str) -> str:
    """``7d``/``12h`` -> ES date math ``now-7d``; dates and ``now...`` pass through."""
    value = value.strip()
    match = RELATIVE.match(value)
    if match:
        return f"now-{match.group(1)}{match.group(2)}"
    if value.startswith("now") or re.match(r"^\d{4}-\d{2}(-\d{2})?([T ][\d:.]+)?(Z|[+-][\d:]+)?$",
                                           value):
        return value
    raise SearchError(f"not a date or a relative time like 7d/24h: {value!r}")


def build_query(text: str | None, filters: Filters) -> dict[str, Any]:
    """The bool query for ``text`` and ``filters`` (exposed for tests and the docs)."""
    must: list[dict[str, Any]] = []
    if text and text.strip():
        must.append({"simple_query_string": {
            "query": text, "fields": SEARCH_FIELDS, "default_operator": "and",
        }})
    flt: list[dict[str, Any]] = []

    def any_of(name: str, values: list[str], *, upper: bool = False) -> None:
        if values:
            # Keywords are case-sensitive; analysts type "wagner group" for "Wagner Group".
            flt.append({"bool": {"minimum_should_match": 1, "should": [
                {"term": {name: {"value": v.upper() if upper else v, "case_insensitive": True}}}
                for v in values
            ]}})

    any_of("topics", filters.topics)
    any_of("entities", filters.entities)
    any_of("countries", filters.countries, upper=True)
    any_of("language", filters.languages)
    any_of("source", filters.sources)
    if filters.since or filters.until:
        bounds: dict[str, str] = {}
        if filters.since:
            bounds["gte"] = date_bound(filters.since)
        if filters.until:
            bounds["lte"] = date_bound(filters.until)
        flt.append({"range": {"published_at": bounds}})
    return {"bool": {"must": must or [{"match_all": {}}], "filter": flt}}


def _hit(raw: dict[str, Any]) -> Hit:
    src = raw.get("_source", {})
    hl = raw.get("highlight", {})
    snippets = hl.get("text") or hl.get("text.en") or hl.get("summary") or []
    copies_total = (raw.get("inner_hits", {}).get("copies", {}).get("hits", {}).get("total", {}))
    return Hit(
        id=src.get("id", raw["_id"]),
        title=src.get("title"),
        title_highlight=(hl.get("title") or [None])[0],
        url=src.get("url", ""),
        source=src.get("source"),
        published_at=src.get("published_at"),
        language=src.get("language"),
        topics=[{"name": t.get("name"), "score": t.get("score")} for t in src.get("tags", [])],
        countries=src.get("countries", []),
        cluster_id=src.get("cluster_id"),
        copies=int(copies_total.get("value", 1)) if copies_total else 1,
        snippets=list(snippets),
        score=raw.get("_score"),
    )


def search(settings: Settings, text: str | None, filters: Filters | None = None, *,
           limit: int = 20, collapse: bool = True, tags: tuple[str, str] = ("<em>", "</em>"),
           es: Elasticsearch | None = None) -> SearchResult:
    """Run a search on the stories alias; near-duplicate clusters collapse to their best hit."""
    if not 1 <= limit <= 1000:
        raise SearchError(f"limit must be between 1 and 1000, got {limit}")
    es = es or make_client(settings)
    filters = filters or Filters()
    body: dict[str, Any] = {
        "query": build_query(text, filters),
        "size": limit,
        "track_total_hits": True,
        "source": {"excludes": ["text", "entity_details", "content_sources"]},
        "highlight": {
            "pre_tags": [tags[0]], "post_tags": [tags[1]],
            "fields": {
                "title": {"number_of_fragments": 0},
                "text": {"fragment_size": 160, "number_of_fragments": 2},
                "text.en": {"fragment_size": 160, "number_of_fragments": 2},
                "summary": {"fragment_size": 160, "number_of_fragments": 1},
            },
        },
        "aggs": {"clusters": {"cardinality": {"field": "cluster_id"}}},
        "sort": (["_score", {"published_at": {"order": "desc", "unmapped_type": "date"}}]
                 if text and text.strip()
                 else [{"published_at": {"order": "desc", "unmapped_type": "date"}}, "_score"]),
    }
    if collapse:
        body["collapse"] = {"field": "cluster_id",
                            "inner_hits": {"name": "copies", "size": 0, "_source": False}}
    found = es.search(index=settings.index_alias, **body)
    return SearchResult(
        total=int(found["hits"]["total"]["value"]),
        clusters=int(found.get("aggregations", {}).get("clusters", {}).get("value", 0)),
        hits=[_hit(h) for h in found["hits"]["hits"]],
    )
