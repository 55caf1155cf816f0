"""deploy/kibana saved objects: parse, references resolve, fields exist, up to date, import call."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeline.settings import load_settings
from tests.support.site import LocalSite, Response

REPO = Path(__file__).resolve().parents[2]
KIBANA = REPO / "deploy" / "kibana"
VIEW_TEMPLATES = {
    "newswatch-stories": REPO / "deploy/elasticsearch/index-template.json",
    "newswatch-feed-health": REPO / "deploy/elasticsearch/feed-health-template.json",
}


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _objects() -> list[dict[str, Any]]:
    lines = (KIBANA / "newswatch.ndjson").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _fields(template: Path) -> set[str]:
    def walk(props: dict[str, Any], prefix: str = "") -> set[str]:
        out = set()
        for name, spec in props.items():
            out.add(prefix + name)
            out |= {f"{prefix}{name}.{sub}" for sub in spec.get("fields", {})}
            out |= walk(spec.get("properties", {}), f"{prefix}{name}.")
        return out

    return walk(json.loads(template.read_text())["template"]["mappings"]["properties"])


def _kql_fields(query: str) -> set[str]:
    return set(re.findall(r"([A-Za-z_@][\w.@]*)\s*:", query))


def test_ndjson_is_current_with_the_topic_files() -> None:
    builder = _load(KIBANA / "build_objects.py", "build_objects")
    assert (KIBANA / "newswatch.ndjson").read_text() == builder.render(), \
        "stale: run .venv/bin/python deploy/kibana/build_objects.py"


def test_every_reference_resolves_and_ids_are_unique() -> None:
    objects = _objects()
    keys = [(o["type"], o["id"]) for o in objects]
    assert len(keys) == len(set(keys))
    known = set(keys)
    for obj in objects:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in known, (obj["id"], ref)
        if obj["type"] == "dashboard":
            panels = json.loads(obj["attributes"]["panelsJSON"])
            names = {r["name"] for r in obj["references"]}
            assert panels and all(p["panelRefName"] in names for p in panels)


def test_every_field_used_exists_in_the_index_template() -> None:
    objects = _objects()
    views = {o["id"]: o for o in objects if o["type"] == "index-pattern"}
    assert views["newswatch-stories"]["attributes"]["timeFieldName"] == "published_at"
    used = 0
    for obj in objects:
        refs = [r["id"] for r in obj["references"] if r["type"] == "index-pattern"]
        if not refs:
            continue
        fields = _fields(VIEW_TEMPLATES[refs[0]])
        attrs = obj["attributes"]
        wanted = set(attrs.get("columns", [])) | {s[0] for s in attrs.get("sort", [])}
        source = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])
        wanted |= _kql_fields(source["query"]["query"])
        if "visState" in attrs:
            for agg in json.loads(attrs["visState"])["aggs"]:
                if "field" in agg["params"]:
                    wanted.add(agg["params"]["field"])
        missing = wanted - fields
        assert not missing, (obj["id"], missing)
        used += len(wanted)
    for view in views.values():
        view_id = view["id"]
        assert view["attributes"]["timeFieldName"] in _fields(VIEW_TEMPLATES[view_id])
    assert used > 20  # the check really looked at the objects


def test_the_field_check_catches_an_unmapped_field() -> None:
    fields = _fields(VIEW_TEMPLATES["newswatch-stories"])
    assert "nationalities" in fields
    assert "title.raw" in fields
    assert "nationality" not in fields
    assert _kql_fields('topics:"foreign-fighters" and not countries:UA') == {"topics", "countries"}


def test_a_saved_search_per_shipped_topic_and_the_dashboards() -> None:
    objects = _objects()
    searches = {o["id"] for o in objects if o["type"] == "search"}
    topic_files = sorted((REPO / "deploy/topics").glob("*.y*ml"))
    assert topic_files
    import yaml

    for path in topic_files:
        name = yaml.safe_load(path.read_text())["name"]
        assert f"newswatch-topic-{name}" in searches
    titles = {o["attributes"]["title"] for o in objects if o["type"] == "dashboard"}
    assert {"News monitor", "Foreign fighters", "Feed health"} <= titles


def test_alert_links_use_the_shipped_data_view() -> None:
    from processors.alerter import KIBANA_DATA_VIEW_ID

    ids = {o["id"] for o in _objects() if o["type"] == "index-pattern"}
    assert KIBANA_DATA_VIEW_ID in ids
    assert load_settings({}).index_alias == "news-stories"


def test_setup_imports_each_file_with_overwrite(site: LocalSite, tmp_path: Path) -> None:
    setup = _load(REPO / "deploy/compose/setup.py", "compose_setup")
    site.add_handler("/api/saved_objects/_import",
                     lambda req: Response(200, b'{"success": true, "successCount": 16}',
                                          {"Content-Type": "application/json"}))
    lines = setup.import_saved_objects(site.url(""), ("elastic", "pw"), KIBANA)
    assert lines == ["kibana: newswatch.ndjson: 16 objects"]
    post = next(r for r in site.requests if r.method == "POST")
    assert post.path == "/api/saved_objects/_import?overwrite=true"
    assert post.headers["kbn-xsrf"]
    assert b'filename="newswatch.ndjson"' in post.body
    assert b'"newswatch-stories"' in post.body


def test_setup_import_fails_loudly_on_kibana_errors(site: LocalSite) -> None:
    import pytest

    setup = _load(REPO / "deploy/compose/setup.py", "compose_setup")
    site.add_handler("/api/saved_objects/_import",
                     lambda req: Response(200, b'{"success": false, "errors": [{"id": "x"}]}',
                                          {"Content-Type": "application/json"}))
    with pytest.raises(RuntimeError, match="reported errors"):
        setup.import_saved_objects(site.url(""), ("elastic", "pw"), KIBANA)


# --- The saved-objects format of the Kibana in deploy/versions.env --------------------------
# What Kibana's import API checks, from its sources (elastic/kibana, read for this test):
# - the import envelope (core-saved-objects-server SavedObject; import-export-server-internal
#   src/import/lib/create_saved_objects.ts): type, id, attributes, references [{name, type, id}],
#   optional managed, coreMigrationVersion, typeMigrationVersion;
# - each type's attribute schema at the version the object declares (an object without
#   typeMigrationVersion is validated against the latest schema: see deploy/kibana/build_objects.py):
#   visualization `schemas['8.8.0']` (visualizations/server/saved_objects/visualization.ts),
#   search SCHEMA_SEARCH_V8_8_0 (saved_search/server/saved_objects/schema_legacy.ts),
#   dashboard `schemas['8.9.0']` = schema/v1/v1.ts (unknowns: 'forbid'),
#   index-pattern (data_views/server/saved_objects/data_views.ts; migrations up to 8.0.0).
# @kbn/config-schema objects forbid unknown keys unless a schema says otherwise.
# Checked for Kibana 9.2 (KIBANA image = ELASTICSEARCH_VERSION); a bump must re-check them.
KIBANA_MINOR = "9.2"
ENVELOPE_REQUIRED = {"type", "id", "attributes", "references"}
ENVELOPE_OPTIONAL = {"managed", "coreMigrationVersion", "typeMigrationVersion", "namespaces",
                     "originId", "updated_at", "created_at", "version"}
# type -> (required attributes, optional attributes, highest legacy version of that schema)
ATTRIBUTES: dict[str, tuple[set[str], set[str], str]] = {
    "index-pattern": ({"title"}, {"name", "timeFieldName", "fields", "fieldFormatMap",
                                  "fieldAttrs", "runtimeFieldMap", "sourceFilters", "type",
                                  "typeMeta", "allowNoIndex", "allowHidden"}, "8.0.0"),
    "search": ({"title", "kibanaSavedObjectMeta"},
               {"description", "columns", "sort", "grid", "rowHeight", "rowsPerPage", "hideChart",
                "breakdownField", "isTextBasedQuery", "usesAdHocDataView", "timeRestore",
                "timeRange", "refreshInterval", "viewMode", "hideAggregatedPreview", "hits",
                "version"}, "8.8.0"),
    "visualization": ({"title"}, {"description", "version", "kibanaSavedObjectMeta",
                                  "uiStateJSON", "visState", "savedSearchRefName"}, "8.8.0"),
    "dashboard": ({"title"}, {"description", "kibanaSavedObjectMeta", "timeRestore", "timeFrom",
                              "timeTo", "refreshInterval", "controlGroupInput", "panelsJSON",
                              "optionsJSON", "hits", "version"}, "8.9.0"),
}


def _semver(text: str) -> tuple[int, ...]:
    assert re.fullmatch(r"\d+\.\d+\.\d+", text), text
    return tuple(int(p) for p in text.split("."))


def saved_object_problems(obj: dict[str, Any]) -> list[str]:
    """What Kibana's import would reject or mis-migrate in one saved object."""
    problems = []
    keys = set(obj)
    problems += [f"missing {k}" for k in sorted(ENVELOPE_REQUIRED - keys)]
    problems += [f"unknown key {k}" for k in sorted(keys - ENVELOPE_REQUIRED - ENVELOPE_OPTIONAL)]
    kind = obj.get("type")
    if kind not in ATTRIBUTES:
        return [*problems, f"type {kind!r} not checked"]
    required, optional, ceiling = ATTRIBUTES[kind]
    if obj.get("coreMigrationVersion") != "8.8.0":
        problems.append("coreMigrationVersion must be 8.8.0")
    version = obj.get("typeMigrationVersion")
    if not isinstance(version, str):
        problems.append("no typeMigrationVersion: validated against the latest schema")
    elif _semver(version) > _semver(ceiling):
        problems.append(f"typeMigrationVersion {version} is newer than the {ceiling} schema")
    attrs = obj.get("attributes", {})
    problems += [f"attribute {k} missing" for k in sorted(required - set(attrs))]
    problems += [f"attribute {k} unknown" for k in sorted(set(attrs) - required - optional)]
    for key in ("visState", "uiStateJSON", "panelsJSON", "optionsJSON"):
        if key in attrs:
            assert isinstance(attrs[key], str), (obj["id"], key)
            json.loads(attrs[key])  # stored as JSON text
    meta = attrs.get("kibanaSavedObjectMeta")
    if meta is not None and set(meta) != {"searchSourceJSON"}:
        problems.append("kibanaSavedObjectMeta holds only searchSourceJSON")
    if meta is not None:
        source = json.loads(meta["searchSourceJSON"])
        ref = source.get("indexRefName")
        if ref and ref not in {r["name"] for r in obj.get("references", [])}:
            problems.append(f"indexRefName {ref} has no reference")
    for ref in obj.get("references", []):
        if set(ref) != {"name", "type", "id"}:
            problems.append(f"reference {ref} is not {{name, type, id}}")
    if kind == "dashboard":
        for panel in json.loads(attrs.get("panelsJSON", "[]")):
            missing = {"type", "panelIndex", "gridData", "panelRefName"} - set(panel)
            if missing or set(panel["gridData"]) != {"x", "y", "w", "h", "i"}:
                problems.append(f"panel {panel.get('panelIndex')}: {sorted(missing)} / gridData")
            elif panel["gridData"]["x"] + panel["gridData"]["w"] > 48:
                problems.append(f"panel {panel['panelIndex']} wider than the 48-column grid")
    return problems


def test_every_saved_object_follows_the_format_of_the_shipped_kibana() -> None:
    versions = dict(line.split("=", 1) for line in (REPO / "deploy/versions.env").read_text()
                    .splitlines() if re.match(r"^[A-Z_]+=", line))
    assert versions["ELASTICSEARCH_VERSION"].startswith(KIBANA_MINOR + "."), \
        "the Kibana image changed: re-check ATTRIBUTES against that version's sources"
    objects = _objects()
    assert {o["type"] for o in objects} == set(ATTRIBUTES)
    for obj in objects:
        assert saved_object_problems(obj) == [], obj["id"]


def test_the_format_check_catches_what_kibana_rejects() -> None:
    objects = {o["id"]: o for o in _objects()}
    dash = dict(objects["newswatch-news-monitor"])
    dash["attributes"] = {**dash["attributes"], "panels": []}
    assert saved_object_problems(dash) == ["attribute panels unknown"]
    search = {k: v for k, v in objects["newswatch-latest-tagged"].items()
              if k != "typeMigrationVersion"}
    assert saved_object_problems(search) == [
        "no typeMigrationVersion: validated against the latest schema"]
    vis = {**objects["nm-top-sources"], "typeMigrationVersion": "10.1.0", "extra": 1}
    assert saved_object_problems(vis) == [
        "unknown key extra", "typeMigrationVersion 10.1.0 is newer than the 8.8.0 schema"]
