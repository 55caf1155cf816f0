"""Extraction quality on both dev corpora (../shared/corpora/aeb and news4k), scored by
../shared/tools/eval_extraction.py in the same run as bare
``trafilatura.extract(include_comments=False)``.

Floors sit just below the figures measured when the choices were made
(bench/README.md); a change that costs quality on either corpus fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

# measured 2026-12-01: aeb 0.9712 (bare 0.9598), news4k 0.9372 (bare 0.9177)
F1_FLOOR = {"aeb": 0.968, "news4k": 0.934}
# gain over bare trafilatura in the same run: the target +0.01 on both
# (measured +0.011 and +0.020)
GAIN_FLOOR = {"aeb": 0.010, "news4k": 0.010}
PAGES = {"aeb": 181, "news4k": 421}
# news4k metadata, share of pages right (measured: title 0.919, authors 0.865, date 0.835;
# the targets 0.90 / 0.85 / 0.95: title and authors reached, date not, see bench/README.md)
METADATA_FLOOR = {"title": 0.91, "authors": 0.85, "date": 0.82}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from pipeline.settings import load_settings

    shared = load_settings().shared_dir
    corpora = shared / "corpora"
    tool = shared / "tools" / "eval_extraction.py"
    absent = [str(p) for p in (corpora / "aeb", corpora / "news4k", tool) if not p.exists()]
    if absent:
        pytest.skip(f"extraction corpora or scorer not found: {', '.join(absent)} "
                    "(set NEWSWATCH_SHARED_DIR to the folder holding corpora/ and tools/)")
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fetch" / "extraction_quality.py"),
         "--corpora-dir", str(corpora), "--tool", str(tool),
         "--out", str(tmp_path_factory.mktemp("extraction"))],
        capture_output=True, text=True, check=True, cwd=REPO,
    )
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.mark.parametrize("corpus", ["aeb", "news4k"])
def test_body_f1_beats_bare_trafilatura(report: dict[str, Any], corpus: str) -> None:
    bare, ours = report[corpus]["bare"], report[corpus]["ours"]
    print(f"{corpus}: F1 bare {bare['f1']:.4f}  ours {ours['f1']:.4f}")
    assert bare["n_pages"] == ours["n_pages"] == PAGES[corpus]
    assert bare["f1"] > 0.85  # the scorer really scored text (not two empty prediction sets)
    assert ours["f1"] >= bare["f1"] + GAIN_FLOOR[corpus]
    assert ours["f1"] >= F1_FLOOR[corpus]


@pytest.mark.parametrize("corpus", ["aeb", "news4k"])
def test_no_page_bare_trafilatura_extracts_comes_out_empty(report: dict[str, Any],
                                                           corpus: str) -> None:
    assert report[corpus]["ours_empty_where_bare_is_not"] == []


def test_news4k_metadata(report: dict[str, Any]) -> None:
    ours = report["news4k"]["metadata"]["ours"]
    print(f"news4k metadata: {ours}")
    for field, floor in METADATA_FLOOR.items():
        assert ours[field] >= floor, field
