"""Exact and near-duplicate stories: a content hash and a MinHash-LSH cluster id.

* ``content_hash``: SHA-256 of the normalised text (case, punctuation and
  whitespace ignored), so byte-different copies of the same text match.
* ``cluster_id``: the story id of the first story seen in a cluster. A story
  whose word 3-shingles are similar enough (estimated Jaccard >= threshold) to a
  story in the window joins that story's cluster; otherwise it starts its own.

The window is bounded (``capacity`` stories, oldest forgotten first): syndicated
copies appear within hours, so a window of days is enough and memory stays flat.
Restarts and replicas: see ``processors.dedup_state``, which rebuilds and keeps
the window current from ``news.enriched``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass

from datasketch import MinHash, MinHashLSH

logger = logging.getLogger(__name__)

_NON_WORD = re.compile(r"[\W_]+")

NUM_PERM = 128
SHINGLE = 3
# Fewer shingles than this and similarity is noise: such stories cluster by exact hash only.
MIN_SHINGLES = 8
# Pinned: sketches of different schemes cannot be compared (datasketch 2 changed the default).
SCHEME = "affine32"
# Signatures never leave the process (a restarted or other replica recomputes them
# from the text), so a fast C hash is enough; datasketch's default SHA-1 per
# shingle cost more than all the rest of the MinHash.
_HASH = zlib.crc32


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


@dataclass(frozen=True)
class Assignment:
    cluster_id: str
    content_hash: str | None
    duplicate_of: str | None  # the story this one matched, if any
    similarity: float | None


class NearDuplicateIndex:
    """A bounded, thread-safe window of recent stories for exact and near-duplicate lookup."""

    def __init__(self, threshold: float = 0.6, capacity: int = 200_000, num_perm: int = NUM_PERM):
        self.threshold = threshold
        self.capacity = capacity
        self.num_perm = num_perm
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        # Permutations are generated once; building them per MinHash dominates its cost.
        self._permutations = MinHash(num_perm=num_perm, scheme=SCHEME, hashfunc=_HASH).permutations
        self._stories: OrderedDict[str, tuple[str, str | None, MinHash | None]] = OrderedDict()
        self._by_hash: dict[str, str] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._stories)

    def minhash(self, text: str) -> MinHash | None:
        """The MinHash signature of ``text``, or None when it is too short to compare."""
        return self._minhash(normalise(text))

    def _minhash(self, norm: str) -> MinHash | None:
        grams = _shingles(norm)
        if len(grams) < MIN_SHINGLES:
            return None
        signature = MinHash(
            num_perm=self.num_perm, permutations=self._permutations, scheme=SCHEME,
            hashfunc=_HASH,
        )
        signature.update_batch(list(grams))
        return signature

    def assign(self, story_id: str, text: str) -> Assignment:
        """The cluster of ``story_id``; a redelivered story keeps the cluster it had."""
        # the text is normalised once for both the hash and the shingles
        norm = normalise(text)
        digest, signature = _digest(norm), self._minhash(norm)
        with self._lock:
            known = self._stories.get(story_id)
            if known is not None:
                return Assignment(known[0], digest, None, None)
            if digest is not None and digest in self._by_hash:
                first = self._by_hash[digest]
                cluster = self._stories[first][0] if first in self._stories else first
                self._add(story_id, cluster, digest, signature)
                return Assignment(cluster, digest, first, 1.0)
            best_id, best_sim = None, 0.0
            if signature is not None:
                for candidate in self._lsh.query(signature):
                    other = self._stories.get(candidate)
                    if other is None or other[2] is None:
                        continue
                    sim = float(signature.jaccard(other[2]))
                    if sim > best_sim:
                        best_id, best_sim = candidate, sim
            if best_id is not None and best_sim >= self.threshold:
                cluster = self._stories[best_id][0]
                self._add(story_id, cluster, digest, signature)
                return Assignment(cluster, digest, best_id, round(best_sim, 3))
            self._add(story_id, story_id, digest, signature)
            return Assignment(story_id, digest, None, None)

    def remember(self, story_id: str, cluster_id: str, text: str) -> None:
        """Record a story another process already clustered (warm-up, other replicas)."""
        # the text is normalised once for both the hash and the shingles
        norm = normalise(text)
        digest, signature = _digest(norm), self._minhash(norm)
        with self._lock:
            if story_id not in self._stories:
                self._add(story_id, cluster_id, digest, signature)

    def _add(self, story_id: str, cluster: str, digest: str | None, sig: MinHash | None) -> None:
        self._stories[story_id] = (cluster, digest, sig)
        if digest is not None:
            self._by_hash.setdefault(digest, story_id)
        if sig is not None:
            self._lsh.insert(story_id, sig)
        while len(self._stories) > self.capacity:
            old_id, (_, old_digest, old_sig) = self._stories.popitem(last=False)
            if old_sig is not None:
                self._lsh.remove(old_id)
            if old_digest is not None and self._by_hash.get(old_digest) == old_id:
                del self._by_hash[old_digest]

