"""Extraction quality on the dev corpora (aeb, news4k): ours vs bare trafilatura.

    .venv/bin/python bench/fetch/extraction_quality.py [--corpora aeb news4k]
        [--choices] [--signals] [--speed] [--out /tmp/newswatch-extract]

Everything runs in one process on the same pages. "bare" is
``trafilatura.extract(html_bytes, include_comments=False)``; "ours" is the
fetcher's path (``decode_html`` + ``article_text``; ``extract_content`` for the
metadata). Body predictions are scored by ../shared/tools/eval_extraction.py.

- ``--choices``: each extraction choice switched on one after the other, with its
  effect on each corpus (the rule: a choice stays only if it lowers neither).
- metadata (corpora whose ground truth has ``title``/``authors``/``date``, i.e.
  news4k): share of pages right. Normalisation, the same for every extractor:
  date = same calendar day as written on the page; title = equal after Unicode
  NFKC, curly quotes and dashes made plain, whitespace collapsed (case kept);
  authors = the same set of names, compared case-, accent- and spacing-folded
  (ground truth "A, B"; a page with no author in the ground truth is right when
  nothing is found). ``--signals`` adds each signal's presence and accuracy.
- ``--speed``: pages/s of bare ``trafilatura.extract`` and of our full
  ``extract_content`` (text + metadata), alternating page by page, CPU time of
  this process (other jobs on the machine shift wall time, not CPU time).

Prints JSON; exits 2 with a message when the corpora or the scorer are absent.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import subprocess
import sys
import time
import unicodedata
from datetime import date
from pathlib import Path
from typing import Any

import trafilatura

from ingest.choose import fold
from ingest.errors import IngestPermanent
from ingest.extract import Choices, article_text, decode_html, extract_content, parse_html
from ingest.signals import page_signals
from pipeline.settings import load_settings

# cumulative: each row adds one choice to the row above; "ours" is the last one
CHOICES: list[tuple[str, Choices]] = [
    ("+ favor_precision", Choices(rescue=False, jsonld_body=False, min_chars=0,
                                  drop_headline=False)),
    ("+ short-result rescue", Choices(jsonld_body=False, min_chars=0, drop_headline=False)),
    ("+ JSON-LD articleBody", Choices(min_chars=0, drop_headline=False)),
    ("+ 100-char floor", Choices(drop_headline=False)),
    ("+ headline line dropped (= ours)", Choices()),
]
# the choice the issue found costing on news: measured on top of bare, then dropped
PRUNE_XPATH = (
    "//*[contains(translate(@class,'COMMENT','comment'),'comment')"
    " or contains(translate(@id,'COMMENT','comment'),'comment')]"
)
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                         "\u2013": "-", "\u2014": "-", "\u00a0": " "})


def load_pages(corpus: Path) -> dict[str, bytes]:
    return {p.name.removesuffix(".html.gz"): gzip.decompress(p.read_bytes())
            for p in sorted((corpus / "html").glob("*.html.gz"))}


def score(tool: Path, preds: dict[str, str], out: Path, name: str, corpus: Path) -> dict[str, Any]:
    target = out / f"{corpus.name}-{name.replace(' ', '_').replace('/', '')}.json"
    target.write_text(json.dumps(preds), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(tool), str(target), "--json", "--n-bootstrap", "200",
         "--ground-truth", str(corpus / "ground-truth.json"), "--seed", "0"],
        check=True, capture_output=True, text=True,
    )
    report: dict[str, Any] = json.loads(result.stdout)
    report["empty"] = sum(1 for text in preds.values() if not text)
    return report


def title_key(text: str | None) -> str:
    return " ".join(unicodedata.normalize("NFKC", text or "").translate(_QUOTES).split())


def authors_key(text: str | None) -> frozenset[str]:
    return frozenset(fold(name) for name in (text or "").split(",") if fold(name))


def metadata_right(truth: dict[str, Any], title: str | None, authors: str | None,
                   published: date | None) -> dict[str, bool | None]:
    day = None if truth.get("date") in (None, "", "NaT") else date.fromisoformat(truth["date"])
    return {
        "title": title_key(title) == title_key(truth.get("title")),
        "authors": authors_key(authors) == authors_key(truth.get("authors")),
        "date": None if day is None else published == day,  # None: not scored
    }


def share(rows: list[dict[str, bool | None]]) -> dict[str, float]:
    out = {}
    for key in ("title", "authors", "date"):
        scored = [r[key] for r in rows if r[key] is not None]
        out[key] = round(sum(bool(v) for v in scored) / max(1, len(scored)), 4)
    return out


def run_corpus(corpus: Path, tool: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    truth = json.loads((corpus / "ground-truth.json").read_text(encoding="utf-8"))
    pages = load_pages(corpus)
    html = {k: decode_html(raw)[0] for k, raw in pages.items()}
    bare = {k: trafilatura.extract(raw, include_comments=False) or "" for k, raw in pages.items()}
    report: dict[str, Any] = {"pages": len(pages), "bare": score(tool, bare, out, "bare", corpus)}
    if args.choices:
        pruned = {k: trafilatura.extract(raw, include_comments=False, prune_xpath=PRUNE_XPATH) or ""
                  for k, raw in pages.items()}
        report["bare + comment prune_xpath (dropped)"] = score(tool, pruned, out, "prune", corpus)
        for name, choices in CHOICES:
            preds = {k: article_text(h, choices=choices) for k, h in html.items()}
            report[name] = score(tool, preds, out, name, corpus)
    ours = {k: article_text(h) for k, h in html.items()}
    report["ours"] = score(tool, ours, out, "ours", corpus)
    # the rule "no page bare trafilatura extracts comes out empty"
    report["ours_empty_where_bare_is_not"] = sorted(k for k in pages if bare[k] and not ours[k])
    if all("title" in t for t in truth.values()):
        report["metadata"] = metadata(truth, html, pages, args)
    return report


def metadata(truth: dict[str, Any], html: dict[str, str], pages: dict[str, bytes],
             args: argparse.Namespace) -> dict[str, Any]:
    ours, bare, signal_rows = [], [], []
    for k, page in html.items():
        try:
            content = extract_content(page)
            published = content.published_at.date() if content.published_at else None
            ours.append(metadata_right(truth[k], content.title, content.author, published))
        except IngestPermanent:
            ours.append(metadata_right(truth[k], None, None, None))
        if args.choices:
            doc = trafilatura.bare_extraction(pages[k], include_comments=False, with_metadata=True)
            day = date.fromisoformat(doc.date[:10]) if doc is not None and doc.date else None
            # trafilatura separates several authors with "; "
            bare.append(metadata_right(truth[k], doc.title if doc else None,
                                       (doc.author or "").replace(";", ",") if doc else None, day))
        if args.signals:
            signal_rows.append(_signal_row(truth[k], page))
    result: dict[str, Any] = {"ours": share(ours)}
    if bare:
        result["bare trafilatura (with_metadata)"] = share(bare)
    if signal_rows:
        result["signals"] = _signal_table(signal_rows, len(html))
    return result


def _signal_row(truth: dict[str, Any], page: str) -> dict[str, dict[str, bool]]:
    from ingest.choose import parse_date

    tree = parse_html(page)
    row: dict[str, dict[str, bool]] = {"title": {}, "authors": {}, "date": {}}
    if tree is None:
        return row
    signals = page_signals(tree, walk=True)
    for source, value in signals.title:
        row["title"].setdefault(source, bool(metadata_right(truth, value, None, None)["title"]))
    for source, names in signals.authors:
        row["authors"].setdefault(source, bool(metadata_right(truth, None, ", ".join(names),
                                                              None)["authors"]))
    for source, raw in signals.date:
        parsed = parse_date(raw)
        if parsed is not None:
            right = metadata_right(truth, None, None, parsed.date())["date"]
            row["date"].setdefault(source, bool(right))
    return row


def _signal_table(rows: list[dict[str, dict[str, bool]]], n: int) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for field in ("title", "authors", "date"):
        for source in sorted({s for r in rows for s in r[field]}):
            hits = [r[field][source] for r in rows if source in r[field]]
            table[f"{field} {source}"] = {"present": round(len(hits) / n, 3),
                                          "right_when_present": round(sum(hits) / len(hits), 3)}
    return table


def speed(corpora: list[Path], rounds: int) -> dict[str, Any]:
    pages = [raw for corpus in corpora for raw in load_pages(corpus).values()]
    bare_s = ours_s = 0.0
    for _ in range(rounds):
        for raw in pages:
            started = time.process_time()
            trafilatura.extract(raw, include_comments=False)
            bare_s += time.process_time() - started
            started = time.process_time()
            with contextlib.suppress(IngestPermanent):
                extract_content(decode_html(raw)[0])
            ours_s += time.process_time() - started
    n = len(pages) * rounds
    return {"pages": n, "bare_pages_per_s": round(n / bare_s, 2),
            "ours_pages_per_s": round(n / ours_s, 2), "ratio": round(bare_s / ours_s, 3)}


def main() -> int:
    shared = load_settings().shared_dir
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora-dir", type=Path, default=shared / "corpora")
    parser.add_argument("--corpora", nargs="+", default=["aeb", "news4k"])
    parser.add_argument("--tool", type=Path, default=shared / "tools" / "eval_extraction.py")
    parser.add_argument("--out", type=Path, default=Path("/tmp/newswatch-extract"))
    parser.add_argument("--choices", action="store_true", help="measure each choice's effect")
    parser.add_argument("--signals", action="store_true", help="accuracy of each metadata signal")
    parser.add_argument("--speed", type=int, default=0, metavar="ROUNDS",
                        help="also time bare vs ours over ROUNDS passes")
    args = parser.parse_args()
    corpora = [args.corpora_dir / name for name in args.corpora]
    missing = [str(c) for c in corpora if not (c / "ground-truth.json").is_file()]
    if missing or not args.tool.is_file():
        print(f"corpus or tool not found ({', '.join(missing) or args.tool})", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {c.name: run_corpus(c, args.tool, args.out, args) for c in corpora}
    if args.speed:
        report["speed"] = speed(corpora, args.speed)
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
