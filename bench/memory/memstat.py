"""Shared by the memory benchmarks: this process's RSS and peak RSS, and synthetic stories."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path


def _status(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def rss() -> int:
    """Resident set size now, in bytes."""
    return _status("VmRSS")


def peak_rss() -> int:
    """The highest resident set size of this process so far (VmHWM), in bytes."""
    return _status("VmHWM")


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def vocabulary(shared_dir: Path) -> list[str]:
    """Words of the news4k bodies when the shared corpora are there, else made-up words."""
    truth = shared_dir / "corpora" / "news4k" / "ground-truth.json"
    if truth.is_file():
        data = json.loads(truth.read_text(encoding="utf-8"))
        words = sorted({w for item in data.values() for w in str(item.get("articleBody", "")).split()})
        if len(words) > 1000:
            return words
    return [f"word{i}" for i in range(50_000)]


def synthetic_texts(count: int, words: int, vocab: list[str], seed: int = 1) -> Iterator[str]:
    """``count`` distinct texts of ``words`` random words: no two are near-duplicates, so
    every one takes its own place in the window (the worst case for memory)."""
    rng = random.Random(seed)
    for _ in range(count):
        yield " ".join(rng.choices(vocab, k=words))


def real_bodies(shared_dir: Path) -> list[tuple[str, str]]:
    """(title, body) of the news4k pages, or [] when the corpora are absent."""
    truth = shared_dir / "corpora" / "news4k" / "ground-truth.json"
    if not truth.is_file():
        return []
    data = json.loads(truth.read_text(encoding="utf-8"))
    return [(str(v.get("title") or ""), str(v.get("articleBody") or "")) for v in data.values()
            if v.get("articleBody")]
