"""Enrichment against extraction per story, on one core, both corpora; each processor's share.

    taskset -c 0 .venv/bin/python bench/enrich/bench_enrich.py [--corpus DIR ...] [--rounds 3]

Stories are the real article pages of the shared corpora (default: ``aeb`` and
``news4k`` in ``../shared/corpora``), their bodies extracted with trafilatura
(the fetcher's extractor) and enriched with the full enricher, the sentence
model included. The two sides are timed **interleaved**, page by page (bare
``trafilatura.extract(html, include_comments=False)`` on the page, then
``Enricher.enrich_text`` on its body), so a busy machine slows both alike;
every page is measured ``--rounds`` times (a fresh dedup window per round, so
every story is a new arrival each time) and its median is kept. The ratio
extraction / enrichment is the issue-8 target (>= 2). Results go to
bench/README.md (## Enrichment).
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import time
from pathlib import Path

import trafilatura

from pipeline.settings import load_settings
from processors.dedup import NearDuplicateIndex
from processors.enricher import Enricher
from processors.language import detect_language


def load_pages(corpus: Path, limit: int) -> list[str]:
    files = sorted((corpus / "html").glob("*.html.gz"))[:limit]
    return [gzip.decompress(f.read_bytes()).decode("utf-8", "replace") for f in files]


def bench_corpus(enricher: Enricher, corpus: Path, pages: list[str], rounds: int) -> None:
    stories: list[tuple[str, str]] = []
    for html in pages:
        meta = trafilatura.extract_metadata(html)
        text = trafilatura.extract(html, include_comments=False) or ""
        stories.append(((meta.title if meta and meta.title else ""), text))
    enricher.enrich_text("warm-up", *stories[0])
    enricher.seconds.clear()
    extract_ms: list[list[float]] = [[] for _ in pages]
    enrich_ms: list[list[float]] = [[] for _ in pages]
    for round_no in range(rounds):
        enricher.dedup = NearDuplicateIndex()
        for i, (html, (title, _)) in enumerate(zip(pages, stories, strict=True)):
            started = time.perf_counter()
            text = trafilatura.extract(html, include_comments=False) or ""
            extract_ms[i].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            enricher.enrich_text(f"{round_no}-{i}", title, text)
            enrich_ms[i].append((time.perf_counter() - started) * 1000)
    extract = [statistics.median(m) for m in extract_ms]
    enrich = [statistics.median(m) for m in enrich_ms]
    n = len(stories)
    chars = statistics.mean(len(t) for _, t in stories)
    print(f"\n{corpus.name}: {n} pages (mean body {chars:.0f} chars), {rounds} rounds, "
          f"median of the rounds per page")
    print(f"  trafilatura.extract: mean {statistics.mean(extract):.2f} ms, "
          f"median {statistics.median(extract):.2f} ms per page")
    print(f"  enrich:              mean {statistics.mean(enrich):.2f} ms, "
          f"median {statistics.median(enrich):.2f} ms, p95 {sorted(enrich)[int(n * 0.95)]:.2f} ms per story")
    print(f"  ratio extraction / enrichment: {sum(extract) / sum(enrich):.2f} (means), "
          f"{statistics.median(extract) / statistics.median(enrich):.2f} (medians), "
          f"{statistics.median(x / e for x, e in zip(extract, enrich, strict=True)):.2f} "
          f"(median of per-page ratios)")
    checked = 0
    for title, text in stories:
        full = f"{title}\n\n{text}" if title else text
        language = detect_language(full).language
        if enricher.topics.candidates(title, text, language):
            checked += 1
    print(f"  stories that reach the sentence model (a rule or trigger candidate): "
          f"{checked} of {n} ({100 * checked / n:.1f} %)")
    profiled = sum(enricher.seconds.values())
    for name, seconds in sorted(enricher.seconds.items(), key=lambda kv: -kv[1]):
        share = 100 * seconds / profiled
        print(f"    {name:<11} {share:5.1f}%  {1000 * seconds / (n * rounds):.2f} ms/story")


def main() -> int:
    shared = load_settings().shared_dir / "corpora"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, action="append",
                        help=f"corpus folder with html/ (repeatable; default {shared}/aeb and news4k)")
    parser.add_argument("--pages", type=int, default=1000, help="at most this many pages per corpus")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    corpora = args.corpus or [shared / "aeb", shared / "news4k"]
    found = [c for c in corpora if (c / "html").is_dir()]
    if not found:
        print(f"skipped: no corpus found at {', '.join(map(str, corpora))}", file=sys.stderr)
        return 0
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"CPUs allowed: {sorted(os.sched_getaffinity(0))}")
    enricher = Enricher.from_settings(load_settings(), profile=True)
    for corpus in found:
        bench_corpus(enricher, corpus, load_pages(corpus, args.pages), args.rounds)
    print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
