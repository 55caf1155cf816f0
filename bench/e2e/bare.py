"""Bare ``trafilatura.extract`` on the benchmark's pages, in 1 and N processes.

The yardstick of issue 11: what extraction alone does with the same pages on the same
machine in the same run, so the pipeline's rate and CPU per story read as ratios to it
(the machine is shared, absolute times are not comparable between runs).
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.e2e.procstat import cpu_of


@dataclass(frozen=True)
class BareResult:
    processes: int
    pages: int
    extracted: int  # pages with a non-empty text
    wall_s: float
    cpu_s: float
    extracted_names: frozenset[str]  # file names of the pages with a text

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_ms_per_page(self) -> float:
        return 1000 * self.cpu_s / self.pages if self.pages else 0.0


def _worker(paths: list[Path], start: Any, ready: Any, out: Any) -> None:
    import gzip
    import os

    import trafilatura

    pages = [gzip.decompress(p.read_bytes()) for p in paths]
    trafilatura.extract(pages[0], include_comments=False)  # imports and caches warmed up
    ready.put(os.getpid())
    start.wait()
    began, cpu0 = time.time(), cpu_of(os.getpid())
    extracted = [p.name for p, html in zip(paths, pages, strict=True)
                 if trafilatura.extract(html, include_comments=False)]
    ended, cpu1 = time.time(), cpu_of(os.getpid())
    assert cpu0 and cpu1
    out.put((began, ended, cpu1.total_s - cpu0.total_s, extracted))


def bare_extract(paths: list[Path], processes: int) -> BareResult:
    """Extract every page once, the pages split evenly over ``processes`` processes."""
    context = multiprocessing.get_context("spawn")
    start, ready, out = context.Event(), context.Queue(), context.Queue()
    shares = [paths[k::processes] for k in range(processes)]
    workers = [context.Process(target=_worker, args=(share, start, ready, out))
               for share in shares if share]
    for worker in workers:
        worker.start()
    for _ in workers:  # each has read its pages and warmed up: the clock starts for all at once
        ready.get(timeout=600)
    start.set()
    results = [out.get(timeout=3600) for _ in workers]
    for worker in workers:
        worker.join()
    wall = max(r[1] for r in results) - min(r[0] for r in results)
    names = frozenset(name for r in results for name in r[3])
    return BareResult(processes, len(paths), len(names), wall, sum(r[2] for r in results), names)

