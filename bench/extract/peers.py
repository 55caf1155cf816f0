"""Peer comparison: bare trafilatura, ours, mcmetadata, news-please, newspaper4k, one run.

    .venv/bin/python bench/extract/peers.py [--corpora aeb news4k] [--out /tmp/newswatch-peers]

Each peer lives in its own venv, never a dependency of the project:

    python3.11 -m venv bench/extract/peers/newspaper4k/.venv
    bench/extract/peers/newspaper4k/.venv/bin/pip install newspaper4k
    (likewise news-please -> news-please, mcmetadata -> mediacloud-metadata)

A peer whose venv is missing is reported as absent. Pages are decoded once with
the pipeline's ``decode_html``; every extractor gets the HTML alone (no URL).
Body F1 by ../shared/tools/eval_extraction.py; metadata with the normalisation of
bench/fetch/extraction_quality.py; speed as CPU seconds per page of each
extractor's own process (text plus metadata where the extractor gives both).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import subprocess
import sys
import time
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

import trafilatura

from ingest.errors import IngestPermanent
from ingest.extract import decode_html, extract_content
from pipeline.settings import load_settings

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "fetch"))
from extraction_quality import metadata_right, score, share  # noqa: E402

PEERS = ("mcmetadata", "news-please", "newspaper4k")


def _ours(pages: dict[str, str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    cpu = 0.0
    for page_id, html in pages.items():
        started = time.process_time()
        try:
            content = extract_content(html)
            results[page_id] = {
                "text": content.text, "title": content.title, "authors": content.author,
                "date": content.published_at.date().isoformat() if content.published_at else None}
        except IngestPermanent:
            results[page_id] = {"text": ""}
        cpu += time.process_time() - started
    results["_meta"] = {"version": "this branch", "cpu_s": cpu}
    return results


def _bare(pages: dict[str, str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    cpu = 0.0
    for page_id, html in pages.items():
        started = time.process_time()
        text = trafilatura.extract(html, include_comments=False) or ""
        cpu += time.process_time() - started
        doc = trafilatura.bare_extraction(html, include_comments=False, with_metadata=True)
        results[page_id] = {"text": text, "title": doc.title if doc else None,
                            "authors": (doc.author or "").replace(";", ",") if doc else None,
                            "date": doc.date[:10] if doc and doc.date else None}
    # bare speed is trafilatura.extract alone (text only), the reference of the speed target
    results["_meta"] = {"version": version("trafilatura"), "cpu_s": cpu}
    return results


def _peer(name: str, pages_file: Path, out: Path) -> dict[str, Any] | None:
    python = HERE / "peers" / name / ".venv" / "bin" / "python"
    if not python.is_file():
        return None
    target = out / f"{pages_file.stem}-{name}-raw.json"
    subprocess.run([str(python), str(HERE / "peer_run.py"), name, str(pages_file), str(target)],
                   check=True, capture_output=True)
    data: dict[str, Any] = json.loads(target.read_text(encoding="utf-8"))
    return data


def _row(results: dict[str, Any], truth: dict[str, Any], tool: Path, out: Path, corpus: Path,
         name: str) -> dict[str, Any]:
    meta = results.pop("_meta")
    body = score(tool, {k: r.get("text") or "" for k, r in results.items()}, out, name, corpus)
    row: dict[str, Any] = {"version": meta["version"], "f1": round(body["f1"], 4),
                           "precision": round(body["precision"], 4),
                           "recall": round(body["recall"], 4), "empty": body["empty"],
                           "ms_per_page": round(1000 * meta["cpu_s"] / len(results), 1),
                           "errors": sum(1 for r in results.values() if r.get("error"))}
    if all("title" in t for t in truth.values()):
        rows = []
        for k, r in results.items():
            day = None
            with contextlib.suppress(TypeError, ValueError):
                day = date.fromisoformat(r["date"][:10]) if r.get("date") else None
            rows.append(metadata_right(truth[k], r.get("title"), r.get("authors"), day))
        row["metadata"] = share(rows)
    return row


def main() -> int:
    shared = load_settings().shared_dir
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora-dir", type=Path, default=shared / "corpora")
    parser.add_argument("--corpora", nargs="+", default=["aeb", "news4k"])
    parser.add_argument("--tool", type=Path, default=shared / "tools" / "eval_extraction.py")
    parser.add_argument("--out", type=Path, default=Path("/tmp/newswatch-peers"))
    args = parser.parse_args()
    if not args.tool.is_file():
        print(f"scorer not found: {args.tool}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    for name in args.corpora:
        corpus = args.corpora_dir / name
        if not (corpus / "ground-truth.json").is_file():
            print(f"corpus not found: {corpus}", file=sys.stderr)
            return 2
        truth = json.loads((corpus / "ground-truth.json").read_text(encoding="utf-8"))
        pages = {p.name.removesuffix(".html.gz"): decode_html(gzip.decompress(p.read_bytes()))[0]
                 for p in sorted((corpus / "html").glob("*.html.gz"))}
        pages_file = args.out / f"{name}.json"
        pages_file.write_text(json.dumps(pages), encoding="utf-8")
        runs: dict[str, dict[str, Any] | None] = {"bare trafilatura": _bare(pages),
                                                  "ours": _ours(pages)}
        for peer in PEERS:
            runs[peer] = _peer(peer, pages_file, args.out)
        report[name] = {label: (_row(r, truth, args.tool, args.out, corpus, label.replace(" ", "_"))
                                if r is not None else "absent") for label, r in runs.items()}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
