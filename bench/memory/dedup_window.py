"""Memory of a full near-duplicate window: bytes per story and peak RSS.

    python bench/memory/dedup_window.py                       # the default 200 MiB window
    python bench/memory/dedup_window.py --window-mb 50 --num-perm 64
    python bench/memory/dedup_window.py --baseline --stories 20000   # datasketch MinHashLSH, as before

Fills the window with distinct synthetic stories (no two near-duplicates, the
worst case) until it is full plus 5 % (so eviction runs), and reports the RSS
the window added per story, against the ``entry_bytes`` the byte bound uses.
Story length changes the time, not the memory (the signature has a fixed size).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from memstat import mib, peak_rss, rss, synthetic_texts, vocabulary

from pipeline.settings import load_settings
from processors.dedup import NUM_PERM, NearDuplicateIndex


def baseline(stories: int, texts: list[str]) -> None:
    """The storage used before (datasketch MinHash objects in a MinHashLSH), for comparison."""
    from datasketch import MinHash, MinHashLSH

    from processors.dedup import _HASH, SCHEME, shingles

    lsh = MinHashLSH(threshold=0.6, num_perm=NUM_PERM)
    perms = MinHash(num_perm=NUM_PERM, scheme=SCHEME, hashfunc=_HASH).permutations
    kept = {}
    gc.collect()
    before = rss()
    for i, text in enumerate(texts):
        m = MinHash(num_perm=NUM_PERM, permutations=perms, scheme=SCHEME, hashfunc=_HASH)
        m.update_batch(list(shingles(text)))
        kept[f"{i:032x}"] = (f"{i:032x}", None, m)
        lsh.insert(f"{i:032x}", m)
    gc.collect()
    added = rss() - before
    print(f"datasketch baseline: {stories:,} stories, RSS +{mib(added)}, "
          f"{added / stories:,.0f} bytes/story; at 200,000 stories: {mib(added / stories * 200_000)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window-mb", type=float, default=load_settings().dedup_window_mb)
    parser.add_argument("--num-perm", type=int, default=NUM_PERM)
    parser.add_argument("--stories", type=int, default=None, help="default: capacity + 5 %%")
    parser.add_argument("--words", type=int, default=120, help="words per synthetic story")
    parser.add_argument("--baseline", action="store_true", help="measure datasketch's MinHashLSH")
    args = parser.parse_args()

    vocab = vocabulary(load_settings().shared_dir)
    if args.baseline:
        stories = args.stories or 20_000
        baseline(stories, list(synthetic_texts(stories, args.words, vocab)))
        return
    gc.collect()
    start_rss = rss()
    index = NearDuplicateIndex(max_bytes=int(args.window_mb * 2**20), num_perm=args.num_perm)
    stories = args.stories or int(index.capacity * 1.05)
    started = time.monotonic()
    for i, text in enumerate(synthetic_texts(stories, args.words, vocab)):
        index.assign(f"{i:032x}", text)
    elapsed = time.monotonic() - started
    gc.collect()
    added = rss() - start_rss
    print(f"window {args.window_mb:g} MiB, {args.num_perm} permutations "
          f"({index.bands} bands x {index.rows} rows): capacity {index.capacity:,} stories")
    print(f"filled with {stories:,} stories ({args.words} words) in {elapsed:.0f} s "
          f"({elapsed / stories * 1000:.2f} ms/story); held {len(index):,}")
    print(f"RSS added by the window: {mib(added)} = {added / len(index):,.0f} bytes/story "
          f"(bound used: entry_bytes {index.entry_bytes:,}, estimate {mib(index.nbytes)})")
    print(f"process RSS {mib(rss())}, peak {mib(peak_rss())} (interpreter + numpy + datasketch "
          f"at start: {mib(start_rss)})")


if __name__ == "__main__":
    main()
