"""Write deploy/kibana/newswatch.ndjson: data views, saved searches, visualisations, dashboards.

Run after adding a topic file to deploy/topics (a unit test fails while the
NDJSON is stale):  .venv/bin/python deploy/kibana/build_objects.py
The compose `setup` service imports the file with overwrite=true (idempotent).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
TOPICS_DIR = HERE.parent / "topics"
OUTPUT = HERE / "newswatch.ndjson"
STORIES = "newswatch-stories"  # data view ids (processors.alerter.KIBANA_DATA_VIEW_ID)
HEALTH = "newswatch-feed-health"
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"

# The saved-objects format these objects are written in, stated per object as Kibana's own
# exports do. Without typeMigrationVersion an import is validated against the type's *latest*
# schema (Kibana 9.x's `search` then requires `tabs`: see the SO_API_WORKAROUND comment in
# elastic/kibana src/platform/plugins/shared/saved_search/server/saved_objects/schema_legacy.ts);
# with it, Kibana validates the attributes against that version's schema and migrates them
# forward. The attributes follow the schemas each type registers for 8.8.0/8.9.0:
# visualization `schemas['8.8.0']` (visualizations/server/saved_objects/visualization.ts),
# search SCHEMA_SEARCH_V8_8_0 (saved_search/server/saved_objects/schema_legacy.ts), dashboard
# `schemas['8.9.0']` = schema/v1 (dashboard/server/dashboard_saved_object/). "8.8.0" is the
# last core migration version (exports of every 8.8+ Kibana carry it).
# tests/unit/test_kibana_objects.py checks every object against these rules.
CORE_MIGRATION_VERSION = "8.8.0"
TYPE_MIGRATION_VERSION = {
    "index-pattern": "8.0.0",
    "search": "8.0.0",
    "visualization": "8.5.0",
    "dashboard": "8.9.0",
}


def _source(query: str = "", *, ref: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"query": {"query": query, "language": "kuery"}, "filter": []}
    if ref:
        body["indexRefName"] = INDEX_REF
    return {"searchSourceJSON": json.dumps(body)}


def data_view(view_id: str, title: str, pattern: str, time_field: str) -> dict[str, Any]:
    return {"type": "index-pattern", "id": view_id, "managed": False, "references": [],
            "attributes": {"title": pattern, "name": title, "timeFieldName": time_field}}


def saved_search(search_id: str, title: str, query: str, columns: list[str],
                 view: str = STORIES, sort_field: str = "published_at") -> dict[str, Any]:
    return {"type": "search", "id": search_id, "managed": False,
            "references": [{"name": INDEX_REF, "type": "index-pattern", "id": view}],
            "attributes": {"title": title, "columns": columns, "sort": [[sort_field, "desc"]],
                           "kibanaSavedObjectMeta": _source(query)}}


def _terms(agg_id: str, field: str, size: int, schema: str) -> dict[str, Any]:
    return {"id": agg_id, "enabled": True, "type": "terms", "schema": schema,
            "params": {"field": field, "size": size, "order": "desc", "orderBy": "1"}}


def _date(agg_id: str, field: str) -> dict[str, Any]:
    return {"id": agg_id, "enabled": True, "type": "date_histogram", "schema": "segment",
            "params": {"field": field, "interval": "auto", "min_doc_count": 1}}


def visualization(vis_id: str, title: str, vis_type: str, aggs: list[dict[str, Any]],
                  query: str = "", view: str = STORIES) -> dict[str, Any]:
    metric = {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}}
    if aggs and aggs[0]["schema"] == "metric":
        metric, aggs = aggs[0], aggs[1:]
    params: dict[str, Any] = {"type": vis_type, "addTooltip": True, "addLegend": True}
    if vis_type == "table":
        params = {"perPage": 10, "showTotal": False, "showPartialRows": False}
    vis_state = {"title": title, "type": vis_type, "params": params, "aggs": [metric, *aggs]}
    return {"type": "visualization", "id": vis_id, "managed": False,
            "references": [{"name": INDEX_REF, "type": "index-pattern", "id": view}],
            "attributes": {"title": title, "visState": json.dumps(vis_state), "uiStateJSON": "{}",
                           "description": "", "kibanaSavedObjectMeta": _source(query)}}


def dashboard(dash_id: str, title: str, panels: list[tuple[str, str, int, int]],
              query: str = "") -> dict[str, Any]:
    """``panels``: (object type, object id, width, height), laid out left to right."""
    out, refs, x, y, row_h = [], [], 0, 0, 0
    for i, (kind, obj_id, w, h) in enumerate(panels):
        if x + w > 48:
            x, y, row_h = 0, y + row_h, 0
        ref = f"panel_{i}"
        out.append({"type": kind, "panelIndex": str(i), "panelRefName": ref,
                    "gridData": {"x": x, "y": y, "w": w, "h": h, "i": str(i)},
                    "embeddableConfig": {}})
        refs.append({"name": ref, "type": kind, "id": obj_id})
        x, row_h = x + w, max(row_h, h)
    return {"type": "dashboard", "id": dash_id, "managed": False, "references": refs,
            "attributes": {"title": title, "description": "", "timeRestore": True,
                           "timeFrom": "now-7d", "timeTo": "now",
                           "panelsJSON": json.dumps(out),
                           "optionsJSON": json.dumps({"useMargins": True, "hidePanelTitles": False}),
                           "kibanaSavedObjectMeta": _source(query, ref=False)}}


def topics() -> list[tuple[str, str]]:
    """(name, title) of every topic rule file."""
    found = []
    for path in sorted(TOPICS_DIR.glob("*.y*ml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        found.append((str(data["name"]), str(data.get("title") or data["name"])))
    return found


def build() -> list[dict[str, Any]]:
    """Every saved object, in dependency order (data views first)."""
    story_cols = ["title", "source", "topics", "top_score", "countries", "evidence"]
    objects = [
        data_view(STORIES, "News stories", "news-stories", "published_at"),
        data_view(HEALTH, "Feed health", "news-feed-health*", "@timestamp"),
        saved_search("newswatch-latest-tagged", "Latest tagged stories", "topics:*", story_cols),
    ]
    objects += [saved_search(f"newswatch-topic-{name}", f"Topic: {title}",
                             f'topics:"{name}"', story_cols) for name, title in topics()]
    objects += [
        visualization("nm-stories-by-topic", "Stories over time by topic", "histogram",
                      [_date("2", "published_at"), {**_terms("3", "topics", 10, "group")}]),
        visualization("nm-top-sources", "Top sources", "table",
                      [_terms("2", "source", 15, "bucket")]),
        visualization("nm-top-entities", "Top entities", "table",
                      [_terms("2", "entities", 20, "bucket")], query="topics:*"),
        visualization("nm-top-countries", "Countries mentioned", "pie",
                      [_terms("2", "countries", 20, "segment")], query="topics:*"),
        visualization("ff-stories-over-time", "Foreign fighters: stories over time",
                      "histogram", [_date("2", "published_at")],
                      query='topics:"foreign-fighters"'),
        visualization("ff-nationalities", "Foreign fighters: nationalities mentioned", "table",
                      [_terms("2", "nationalities", 20, "bucket")],
                      query='topics:"foreign-fighters"'),
        visualization("ff-countries", "Foreign fighters: countries", "pie",
                      [_terms("2", "countries", 20, "segment")],
                      query='topics:"foreign-fighters"'),
        visualization("fh-extraction-failures", "Extraction failures by kind", "histogram",
                      [_date("2", "@timestamp"), _terms("3", "error_kind", 10, "group")],
                      query="kind:extraction and ok:false", view=HEALTH),
        visualization("fh-feeds", "Feeds: failures and new stories per day", "table",
                      [{"id": "1", "enabled": True, "type": "max", "schema": "metric",
                        "params": {"field": "consecutive_failures"}},
                       _terms("2", "feed_name", 50, "bucket"),
                       {"id": "3", "enabled": True, "type": "max", "schema": "metric",
                        "params": {"field": "new_stories_per_day"}}],
                      query="kind:poll", view=HEALTH),
    ]
    objects += [
        dashboard("newswatch-news-monitor", "News monitor", [
            ("visualization", "nm-stories-by-topic", 48, 12),
            ("visualization", "nm-top-sources", 16, 14),
            ("visualization", "nm-top-entities", 16, 14),
            ("visualization", "nm-top-countries", 16, 14),
            ("search", "newswatch-latest-tagged", 48, 18),
            ("visualization", "fh-extraction-failures", 24, 12),
            ("visualization", "fh-feeds", 24, 12),
        ]),
        dashboard("newswatch-foreign-fighters", "Foreign fighters", [
            ("visualization", "ff-stories-over-time", 48, 12),
            ("visualization", "ff-nationalities", 24, 14),
            ("visualization", "ff-countries", 24, 14),
            ("search", "newswatch-topic-foreign-fighters", 48, 20),
        ]),
        dashboard("newswatch-feed-health", "Feed health", [
            ("visualization", "fh-extraction-failures", 48, 14),
            ("visualization", "fh-feeds", 48, 20),
        ]),
    ]
    return objects


def with_versions(obj: dict[str, Any]) -> dict[str, Any]:
    """The object with the migration fields of its format (see TYPE_MIGRATION_VERSION)."""
    return {**obj, "coreMigrationVersion": CORE_MIGRATION_VERSION,
            "typeMigrationVersion": TYPE_MIGRATION_VERSION[obj["type"]]}


def render() -> str:
    """The NDJSON text: one object per line, stable key order."""
    return "".join(json.dumps(with_versions(o), sort_keys=True, ensure_ascii=False) + "\n"
                   for o in build())


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {len(build())} objects to {OUTPUT}", file=sys.stderr)
