"""Keyphrases for facets: the multi-word phrases a story is about.

A RAKE-style heuristic: candidates are runs of up to four content words
between stop words and punctuation; a candidate scores by how often it occurs,
how long it is and whether it appears in the headline or the lead. It is
measured against YAKE in processors/README.md (similar picks, far faster).
English stop words ship in ``processors/data/stopwords_en.txt``; for other
languages only punctuation splits phrases, so phrases there are less tidy.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from importlib import resources

from processors.text import normalise_word

# Phrases break at punctuation as well as at stop words.
_CHUNK = re.compile(r"[^\W\d_][\w'\u2019-]*|[.,;:!?()\"“”«»\[\]—\u2013]|\d[\w.,]*")
MAX_WORDS = 4
LEAD_CHARS = 600


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    raw = resources.files("processors").joinpath("data", "stopwords_en.txt").read_text("utf-8")
    return frozenset(raw.split())


def _candidates(text: str, stop: frozenset[str]) -> list[tuple[str, ...]]:
    phrases: list[tuple[str, ...]] = []
    current: list[str] = []
    for piece in _CHUNK.findall(text):
        word = normalise_word(piece)
        breaks = not piece[0].isalpha() or word in stop or len(word) < 3
        if breaks:
            if current:
                phrases.append(tuple(current[:MAX_WORDS]))
            current = []
        else:
            current.append(word)
    if current:
        phrases.append(tuple(current[:MAX_WORDS]))
    return phrases


def _ngrams(runs: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    # every 1..MAX_WORDS-gram of every run, so a phrase repeated inside longer runs is counted
    return [run[i : i + n] for run in runs for n in range(1, MAX_WORDS + 1)
            for i in range(len(run) - n + 1)]


def extract_keyphrases(title: str | None, text: str, limit: int = 8,
                       language: str | None = "en") -> list[str]:
    """Up to ``limit`` lower-case keyphrases of the story, best first."""
    stop = _stopwords() if language in (None, "en") else frozenset()
    counts = Counter(_ngrams(_candidates(text, stop)))
    head = set(_ngrams(_candidates(title or "", stop) + _candidates(text[:LEAD_CHARS], stop)))
    scores: dict[tuple[str, ...], float] = {}
    for phrase, count in counts.items():
        if count < 2 and phrase not in head:
            continue  # mentioned once, outside the headline and lead: noise, not a facet
        # repeated multi-word phrases carry the story; single words are often generic
        score = count * (1.0 + 0.6 * (len(phrase) - 1))
        if phrase in head:
            score *= 1.5
        scores[phrase] = score
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], -len(kv[0]), kv[0]))
    out: list[str] = []
    for phrase, _ in ranked:
        joined = " ".join(phrase)
        # "online adverts" already covers "adverts" and "online adverts promised"
        if any(f" {joined} " in f" {c} " or f" {c} " in f" {joined} " for c in out):
            continue
        out.append(joined)
        if len(out) >= limit:
            break
    return out
