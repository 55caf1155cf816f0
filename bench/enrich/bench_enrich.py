"""Enricher throughput on one core, each processor's share, and trafilatura for comparison.

    .venv/bin/python bench/enrich/bench_enrich.py [--corpus ../shared/corpora/aeb] [--rounds 3]

Stories are the real article pages of the AEB corpus, extracted once with
trafilatura (the fetcher's extractor); the same pages' extraction time is the
"fetch + extraction" side of the comparison (network time not included, so the
comparison favours extraction). Results go to bench/README.md (## Enrichment).
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from pathlib import Path

import trafilatura

from pipeline.settings import load_settings
from processors.enricher import Enricher


def load_pages(corpus: Path, limit: int) -> list[str]:
    files = sorted((corpus / "html").glob("*.html.gz"))[:limit]
    return [gzip.decompress(f.read_bytes()).decode("utf-8", "replace") for f in files]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=load_settings().shared_dir / "corpora" / "aeb")
    parser.add_argument("--pages", type=int, default=181)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not (args.corpus / "html").is_dir():
        print(f"skipped: corpus not found at {args.corpus}", file=sys.stderr)
        return 0
    pages = load_pages(args.corpus, args.pages)

    extract_ms: list[float] = []
    stories: list[tuple[str, str]] = []
    for html in pages:
        started = time.perf_counter()
        text = trafilatura.extract(html, include_comments=False) or ""
        extract_ms.append((time.perf_counter() - started) * 1000)
        meta = trafilatura.extract_metadata(html)
        stories.append(((meta.title if meta and meta.title else ""), text))

    enricher = Enricher.from_settings(load_settings(), profile=True)
    enricher.enrich_text("warm-up", *stories[0])  # first call builds the gazetteer matcher
    enricher.seconds.clear()
    per_story_ms: list[float] = []
    started_all = time.perf_counter()
    for round_no in range(args.rounds):
        for i, (title, text) in enumerate(stories):
            started = time.perf_counter()
            # a fresh id per round: every story goes through dedup as a new arrival
            enricher.enrich_text(f"{round_no}-{i}", title, text)
            per_story_ms.append((time.perf_counter() - started) * 1000)
    total_s = time.perf_counter() - started_all
    n = len(per_story_ms)
    chars = statistics.mean(len(t) for _, t in stories)

    print(f"pages: {len(stories)} (mean body {chars:.0f} chars), rounds: {args.rounds}")
    print(f"trafilatura.extract: mean {statistics.mean(extract_ms):.1f} ms, "
          f"median {statistics.median(extract_ms):.1f} ms per page")
    print(f"enrich: {n / total_s:.0f} stories/s on one core; mean {statistics.mean(per_story_ms):.2f} ms, "
          f"median {statistics.median(per_story_ms):.2f} ms, "
          f"p95 {sorted(per_story_ms)[int(n * 0.95)]:.2f} ms per story")
    checked = sum(1 for title, text in stories if enricher.topics.candidates(title, text, "en"))
    print(f"stories the meaning check's sentence model ran on (a rule candidate for a topic): "
          f"{checked} of {len(stories)} ({100 * checked / len(stories):.1f} %)")
    profiled = sum(enricher.seconds.values())
    for name, seconds in sorted(enricher.seconds.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<11} {100 * seconds / profiled:5.1f}%  {1000 * seconds / n:.2f} ms/story")
    return 0


if __name__ == "__main__":
    sys.exit(main())
