"""The package layers: ``pipeline`` is the ground (Kafka, settings, the story), ``ingest``
and ``processors`` stand on it side by side. A lower module must be usable without the
ones above it, so an upward import is a defect even when it happens to work."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# what each package may not import; pipeline/cli.py is the entry point that registers the
# packages' commands and stages by name, the one place above every layer
FORBIDDEN = {"pipeline": ("ingest", "processors"), "ingest": ("processors",),
             "processors": ("ingest",)}
ENTRY_POINTS = {REPO / "pipeline" / "cli.py"}


def imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_a_layer_above_or_beside_it(package: str) -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_packages(path) & set(FORBIDDEN[package]))
        for path in sorted((REPO / package).rglob("*.py")) if path not in ENTRY_POINTS
    }
    assert {p: bad for p, bad in offenders.items() if bad} == {}


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import json\nfrom processors.topics import TopicEngine\n"
                      "def f():\n    from ingest import fetch\n", encoding="utf-8")
    assert imported_packages(module) == {"json", "processors", "ingest"}
