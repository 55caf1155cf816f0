"""deploy/compose/constraints.txt: generated from the tested venv, consistent with pyproject.toml."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO / "deploy/compose/constraints.txt"

_spec = importlib.util.spec_from_file_location("freeze_constraints",
                                               REPO / "deploy/compose/freeze_constraints.py")
assert _spec and _spec.loader
FREEZE = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(FREEZE)


def _pins(text: str) -> dict[str, Version]:
    pins = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"not an exact pin: {line!r}"
        pins[canonicalize_name(name)] = Version(version)
    return pins


def _dependencies() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(d) for d in project["dependencies"]]


def unmet(dependencies: list[Requirement], pins: dict[str, Version]) -> list[str]:
    """Each dependency that is not pinned, or pinned outside its range."""
    problems = []
    for dep in dependencies:
        pin = pins.get(canonicalize_name(dep.name))
        if pin is None:
            problems.append(f"{dep.name}: not pinned")
        elif not dep.specifier.contains(pin, prereleases=True):
            problems.append(f"{dep.name}: {pin} not in {dep.specifier}")
    return problems


def test_every_dependency_is_pinned_within_its_range() -> None:
    pins = _pins(CONSTRAINTS.read_text())
    assert len(pins) > len(_dependencies())  # transitive dependencies are pinned too
    assert unmet(_dependencies(), pins) == []


def test_the_check_catches_a_missing_pin_and_a_pin_out_of_range() -> None:
    pins = _pins(CONSTRAINTS.read_text())
    pins.pop("trafilatura")
    pins["elasticsearch"] = Version("9.3.0")
    assert unmet(_dependencies(), pins) == [
        "trafilatura: not pinned", "elasticsearch: 9.3.0 not in <9.3,>=9.2",
    ]


def test_constraints_are_the_tested_environment() -> None:
    # what `make constraints` writes from this venv (make venv installs with the same file)
    assert CONSTRAINTS.read_text() == FREEZE.render(FREEZE.runtime_pins()), \
        "stale: run make constraints (and rebuild the image)"
