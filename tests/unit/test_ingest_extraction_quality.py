"""Extraction quality on ../shared/corpora/aeb: the pipeline's extraction is at least
as good as bare ``trafilatura.extract(include_comments=False)`` in the same run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ours_scores_at_least_bare_trafilatura(shared_dir: Path, tmp_path: Path) -> None:
    corpus = shared_dir / "corpora" / "aeb"
    tool = shared_dir / "tools" / "eval_extraction.py"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fetch" / "extraction_quality.py"),
         "--corpus", str(corpus), "--tool", str(tool), "--out", str(tmp_path)],
        capture_output=True, text=True, check=True, cwd=REPO,
    )
    report = json.loads(result.stdout)
    bare, ours = report["bare"], report["ours"]
    print(f"F1 bare {bare['f1']:.4f}  ours {ours['f1']:.4f}")
    assert bare["n_pages"] == ours["n_pages"] == 181
    assert ours["f1"] >= bare["f1"]
    assert bare["f1"] > 0.9  # the scorer really scored text (not two empty prediction sets)
