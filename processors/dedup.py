"""Exact and near-duplicate stories: a content hash and a MinHash-LSH cluster id.

* ``content_hash``: SHA-256 of the normalised text (case, punctuation and
  whitespace ignored), so byte-different copies of the same text match.
* ``cluster_id``: the story id of the first story seen in a cluster. A story
  whose word 3-shingles are similar enough (estimated Jaccard >= threshold) to a
  story in the window joins that story's cluster; otherwise it starts its own.

The window is bounded in bytes and in age (``NEWSWATCH_DEDUP_WINDOW_MB``,
``NEWSWATCH_DEDUP_WINDOW_DAYS``), oldest forgotten first: syndicated copies
appear within hours, so a window of days is enough and memory stays flat.

Storage is a ring of slots in preallocated numpy arrays: one row of uint32
MinHash values per story, one uint32 hash per LSH band, and per band a sorted
copy of the band hashes (rebuilt every ``REBUILD_EVERY`` insertions; newer
insertions sit in a small dict until then). Per story that is about 1 KB with
128 permutations, where datasketch's ``MinHashLSH`` (a set per bucket, a bytes
key per band, a MinHash object per story) took about 7 KB. The byte bound is
turned into a slot count once, from ``entry_bytes`` (exact for the arrays, an
upper estimate measured in ``bench/memory`` for the Python objects).

Restarts and replicas: see ``processors.dedup_state``, which rebuilds and keeps
the window current from ``news.enriched``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from datasketch import MinHash

from pipeline.settings import Settings

logger = logging.getLogger(__name__)

_NON_WORD = re.compile(r"[\W_]+")

NUM_PERM = 128
# LSH bands x rows for Jaccard 0.6 over 128 permutations: datasketch's optimum
# (equal false-positive and false-negative weights), so clusters are as before.
BANDS, ROWS = 18, 7
SHINGLE = 3
# Fewer shingles than this and similarity is noise: such stories cluster by exact hash only.
MIN_SHINGLES = 8
# Pinned: sketches of different schemes cannot be compared (datasketch 2 changed the default).
SCHEME = "affine32"
# Signatures never leave the process (a restarted or other replica recomputes them
# from the text), so a fast C hash is enough; datasketch's default SHA-1 per
# shingle cost more than all the rest of the MinHash.
_HASH = zlib.crc32
# Python objects per story (id string, list and dict slots, digest int), an upper
# estimate: bench/memory/dedup_window.py measures the whole entry against it.
PYTHON_BYTES_PER_ENTRY = 420
# New band hashes wait in a dict until the sorted arrays are rebuilt
REBUILD_EVERY = 4096
# Odd 64-bit multipliers for the band hash (multiply-shift); fixed, hashes never leave the process
_BAND_MULT = np.random.default_rng(20261201).integers(1, 2**63, size=64, dtype=np.uint64) | 1


def normalise(text: str) -> str:
    """Lower-case words separated by single spaces: what "the same text" means here."""
    return _NON_WORD.sub(" ", text.casefold()).strip()


def content_hash(text: str) -> str | None:
    """32 hex digits identifying the normalised text; None for an empty text."""
    return _digest(normalise(text))


def _digest(norm: str) -> str | None:
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:32] if norm else None


def shingles(text: str, size: int = SHINGLE) -> set[bytes]:
    """The distinct word ``size``-grams of the normalised text."""
    return _shingles(normalise(text), size)


def _shingles(norm: str, size: int = SHINGLE) -> set[bytes]:
    words = norm.split()
    if len(words) < size:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(gram).encode() for gram in zip(*(words[k:] for k in range(size)), strict=False)}


def lsh_shape(num_perm: int) -> tuple[int, int]:
    """(bands, rows) for ``num_perm`` permutations at the 0.6 threshold."""
    if num_perm == NUM_PERM:
        return BANDS, ROWS
    from datasketch.lsh import _optimal_param  # the same optimum, for other sizes

    bands, rows = _optimal_param(0.6, num_perm, 0.5, 0.5)
    return int(bands), int(rows)


@dataclass(frozen=True)
class Assignment:
    cluster_id: str
    content_hash: str | None
    duplicate_of: str | None  # the story this one matched, if any
    similarity: float | None


def _digest_key(digest: str) -> int:
    # 60 bits of the content hash: collisions over a window of 10^6 stories ~1e-6
    return int(digest[:15], 16)


class NearDuplicateIndex:
    """A window of recent stories, bounded in bytes and age, for exact and near-duplicate lookup.

    Thread-safe. ``at`` arguments are Unix times (a story read back from Kafka
    passes its record's timestamp, so a restarted window ages like the old one).
    """

    def __init__(self, threshold: float = 0.6, max_bytes: int = 200 * 2**20,
                 max_age_s: float = 7 * 86400, num_perm: int = NUM_PERM,
                 clock: Callable[[], float] = time.time) -> None:
        self.threshold = threshold
        self.num_perm = num_perm
        self.bands, self.rows = lsh_shape(num_perm)
        self.max_age_s = max_age_s
        self.clock = clock
        self.entry_bytes = self.array_bytes_per_entry(num_perm) + PYTHON_BYTES_PER_ENTRY
        self.max_bytes = max_bytes
        self.capacity = max(1, max_bytes // self.entry_bytes)
        # Permutations are generated once; building them per MinHash dominates its cost.
        self._permutations = MinHash(num_perm=num_perm, scheme=SCHEME, hashfunc=_HASH).permutations
        n, b = self.capacity, self.bands
        # np.zeros maps untouched pages lazily: memory grows as the window fills
        self._sigs = np.zeros((n, num_perm), dtype=np.uint32)
        self._band = np.zeros((b, n), dtype=np.uint32)
        self._at = np.zeros(n, dtype=np.float64)
        self._has_sig = np.zeros(n, dtype=np.bool_)
        self._digest = np.zeros(n, dtype=np.uint64)  # 0: no digest
        self._ids: list[str | None] = [None] * n
        self._clusters: list[str | None] = [None] * n
        self._slot_of: dict[str, int] = {}
        self._by_hash: dict[int, int] = {}  # digest key -> slot of the first story with it
        self._head = 0  # next slot written
        self._count = 0
        self._used = 0  # slots ever written (the sorted arrays cover [0, used))
        self._sorted_vals = np.zeros((b, 0), dtype=np.uint32)
        self._sorted_slots = np.zeros((b, 0), dtype=np.int32)
        # band << 32 | hash -> slot(s) indexed since the last rebuild
        self._recent: dict[int, int | list[int]] = {}
        self._since_rebuild = 0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> NearDuplicateIndex:
        """The window sized by ``NEWSWATCH_DEDUP_WINDOW_MB`` and ``_DAYS``."""
        return cls(max_bytes=int(settings.dedup_window_mb * 2**20),
                   max_age_s=settings.dedup_window_days * 86400)

    @staticmethod
    def array_bytes_per_entry(num_perm: int = NUM_PERM) -> int:
        """Bytes of numpy storage per story: signature, band hashes, sorted bands, time, digest."""
        bands, _ = lsh_shape(num_perm)
        return 4 * num_perm + bands * (4 + 4 + 4) + 8 + 1 + 8 + 2 * 8  # + two list slots

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """The window's estimated size: ``entry_bytes`` per story held."""
        return self._count * self.entry_bytes

    def minhash(self, text: str) -> np.ndarray | None:
        """The MinHash signature (uint32) of ``text``, or None when it is too short to compare."""
        return self._minhash(normalise(text))

    def _minhash(self, norm: str) -> np.ndarray | None:
        grams = _shingles(norm)
        if len(grams) < MIN_SHINGLES:
            return None
        signature = MinHash(
            num_perm=self.num_perm, permutations=self._permutations, scheme=SCHEME,
            hashfunc=_HASH,
        )
        signature.update_batch(list(grams))
        return np.asarray(signature.hashvalues, dtype=np.uint32)

    def _band_hashes(self, sig: np.ndarray) -> np.ndarray:
        rows = sig[: self.bands * self.rows].reshape(self.bands, self.rows).astype(np.uint64)
        mixed = (rows * _BAND_MULT[: self.rows]).sum(axis=1, dtype=np.uint64)
        return (mixed >> np.uint64(32)).astype(np.uint32)

    # -- lookup ------------------------------------------------------------
    def _live(self, slot: int, cutoff: float) -> bool:
        return self._ids[slot] is not None and self._at[slot] >= cutoff

    def _candidates(self, bands: np.ndarray, cutoff: float) -> list[int]:
        found: set[int] = set()
        for k in range(self.bands):
            h = bands[k]
            vals = self._sorted_vals[k]
            lo = int(np.searchsorted(vals, h, side="left"))
            hi = int(np.searchsorted(vals, h, side="right"))
            found.update(int(s) for s in self._sorted_slots[k, lo:hi])
            recent = self._recent.get((k << 32) | int(h))
            if isinstance(recent, list):
                found.update(recent)
            elif recent is not None:
                found.add(recent)
        # a slot may have been reused since it was indexed: its band hash tells
        return [s for s in found
                if self._has_sig[s] and self._live(s, cutoff)
                and bool((self._band[:, s] == bands).any())]

    def assign(self, story_id: str, text: str, at: float | None = None) -> Assignment:
        """The cluster of ``story_id``; a redelivered story keeps the cluster it had."""
        # the text is normalised once for both the hash and the shingles
        norm = normalise(text)
        digest, signature = _digest(norm), self._minhash(norm)
        now = self.clock() if at is None else at
        with self._lock:
            cutoff = self._expire()
            slot = self._slot_of.get(story_id)
            if slot is not None:
                return Assignment(self._clusters[slot] or story_id, digest, None, None)
            if digest is not None:
                first = self._by_hash.get(_digest_key(digest))
                if first is not None and self._live(first, cutoff):
                    cluster = self._clusters[first] or story_id
                    first_id = self._ids[first]
                    self._add(story_id, cluster, digest, signature, now)
                    return Assignment(cluster, digest, first_id, 1.0)
            if signature is not None:
                bands = self._band_hashes(signature)
                candidates = self._candidates(bands, cutoff)
                if candidates:
                    sims = (self._sigs[candidates] == signature).mean(axis=1)
                    best = int(np.argmax(sims))
                    if sims[best] >= self.threshold:
                        slot = candidates[best]
                        cluster = self._clusters[slot] or story_id
                        duplicate_of = self._ids[slot]
                        self._add(story_id, cluster, digest, signature, now)
                        return Assignment(cluster, digest, duplicate_of, round(float(sims[best]), 3))
            self._add(story_id, story_id, digest, signature, now)
            return Assignment(story_id, digest, None, None)

    def remember(self, story_id: str, cluster_id: str, text: str, at: float | None = None) -> None:
        """Record a story another process already clustered (warm-up, other replicas)."""
        # the text is normalised once for both the hash and the shingles
        norm = normalise(text)
        digest, signature = _digest(norm), self._minhash(norm)
        now = self.clock() if at is None else at
        with self._lock:
            cutoff = self._expire()
            if now < cutoff or story_id in self._slot_of:
                return
            # copies share one cluster string rather than one per story
            first = self._slot_of.get(cluster_id)
            cluster = self._ids[first] if first is not None else sys.intern(cluster_id)
            self._add(story_id, cluster or cluster_id, digest, signature, now)

    # -- storage -----------------------------------------------------------
    def _expire(self) -> float:
        """Forget stories older than the age bound (oldest first); returns the cutoff."""
        cutoff = self.clock() - self.max_age_s
        while self._count:
            oldest = (self._head - self._count) % self.capacity
            if self._at[oldest] >= cutoff:
                break
            self._evict(oldest)
        return cutoff

    def _evict(self, slot: int) -> None:
        story_id = self._ids[slot]
        if story_id is not None:
            self._slot_of.pop(story_id, None)
        key = int(self._digest[slot])
        if key and self._by_hash.get(key) == slot:
            del self._by_hash[key]
        self._ids[slot] = None
        self._clusters[slot] = None
        self._has_sig[slot] = False
        self._count -= 1

    def _add(self, story_id: str, cluster: str, digest: str | None, sig: np.ndarray | None,
             at: float) -> None:
        if self._count == self.capacity:  # the byte bound: the oldest slot is reused
            self._evict(self._head)
        slot = self._head
        self._head = (self._head + 1) % self.capacity
        self._count += 1
        self._used = max(self._used, slot + 1)
        self._ids[slot] = story_id
        self._clusters[slot] = story_id if cluster == story_id else cluster
        self._slot_of[story_id] = slot
        self._at[slot] = at
        key = _digest_key(digest) if digest is not None else 0
        self._digest[slot] = key
        if key:
            self._by_hash.setdefault(key, slot)
        if sig is None:
            self._has_sig[slot] = False
            return
        self._has_sig[slot] = True
        self._sigs[slot] = sig
        bands = self._band_hashes(sig)
        self._band[:, slot] = bands
        for k in range(self.bands):
            key = (k << 32) | int(bands[k])
            known = self._recent.get(key)
            if known is None:
                self._recent[key] = slot  # most buckets hold one story: no list for it
            elif isinstance(known, list):
                known.append(slot)
            else:
                self._recent[key] = [known, slot]
        self._since_rebuild += 1
        if self._since_rebuild >= REBUILD_EVERY:
            self._rebuild()

    def _rebuild(self) -> None:
        """Sort the band hashes of every used slot; empties the dict of recent ones."""
        used = self._used
        if self._sorted_slots.shape[1] == used:  # a full ring: rewrite in place, no second copy
            slots, vals = self._sorted_slots, self._sorted_vals
        else:
            slots = np.zeros((self.bands, used), dtype=np.int32)
            vals = np.zeros((self.bands, used), dtype=np.uint32)
        for k in range(self.bands):  # one band at a time keeps the temporaries small
            order = np.argsort(self._band[k, :used], kind="stable")
            slots[k] = order
            vals[k] = self._band[k, order]
        self._sorted_slots, self._sorted_vals = slots, vals
        self._recent.clear()
        self._since_rebuild = 0
