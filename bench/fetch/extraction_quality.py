"""Extraction quality on the article-extraction benchmark: ours vs bare trafilatura.

    .venv/bin/python bench/fetch/extraction_quality.py [--corpus ../shared/corpora/aeb]
        [--tool ../shared/tools/eval_extraction.py] [--out /tmp/aeb]

Both extractors run in the same process on the same pages: "bare" is
``trafilatura.extract(html_bytes, include_comments=False)``; "ours" is the
fetcher's path (``ingest.extract.decode_html`` + ``article_text``). Each
prediction file is scored by the shared evaluation tool; prints both F1 scores
as JSON. Exits 2 with a message when the corpus is absent.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
from pathlib import Path

import trafilatura

from ingest.extract import article_text, decode_html
from pipeline.settings import load_settings


def predictions(corpus: Path) -> tuple[dict[str, str], dict[str, str]]:
    """``(bare, ours)`` page id -> extracted text."""
    bare: dict[str, str] = {}
    ours: dict[str, str] = {}
    for path in sorted((corpus / "html").glob("*.html.gz")):
        page_id = path.name.removesuffix(".html.gz")
        raw = gzip.decompress(path.read_bytes())
        bare[page_id] = trafilatura.extract(raw, include_comments=False) or ""
        html, _ = decode_html(raw)
        ours[page_id] = article_text(html)
    return bare, ours


def score(tool: Path, preds: dict[str, str], out: Path, name: str, corpus: Path) -> dict[str, float]:
    target = out / f"{name}.json"
    target.write_text(json.dumps(preds), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(tool), str(target), "--json",
         "--ground-truth", str(corpus / "ground-truth.json"), "--seed", "0"],
        check=True, capture_output=True, text=True,
    )
    return json.loads(result.stdout)


def main() -> int:
    shared = load_settings().shared_dir
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=shared / "corpora" / "aeb")
    parser.add_argument("--tool", type=Path, default=shared / "tools" / "eval_extraction.py")
    parser.add_argument("--out", type=Path, default=Path("/tmp/newswatch-aeb"))
    args = parser.parse_args()
    if not (args.corpus / "ground-truth.json").is_file() or not args.tool.is_file():
        print(f"corpus or tool not found ({args.corpus}, {args.tool})", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    bare, ours = predictions(args.corpus)
    report = {name: score(args.tool, preds, args.out, name, args.corpus)
              for name, preds in (("bare", bare), ("ours", ours))}
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
