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
