"""Tokens and sentences with character offsets, shared by the enrichment processors.

A regular-expression tokenizer is enough here: the topic rules and the
gazetteer match lower-cased word sequences, and every processor must agree on
what a "word" is so that distances ("within 10 words") mean the same thing.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# A word, with an optional possessive "'s" kept inside the span (so "Ukraine's
# army" is two tokens, not three) but dropped from the normalised form.
_WORD = re.compile(r"\w+(?:['\u2019]s\b)?")
# Sentence ends: terminal punctuation (optionally closed by a quote or bracket)
# followed by space and anything but a lower-case letter; or a blank line, or a
# line starting a list. "Not lower case" rather than "upper case" so that
# Cyrillic, Greek and Arabic (which has no case) split too. No model is needed
# for news prose, and abbreviations such as "U.S. officials" rarely matter for
# evidence snippets.
_SENTENCE_END = re.compile(
    r"(?P<stop>(?<=[.!?…؟。])[\"'”\u2019)\]»]?\s+)"
    r"|\n\s*\n|\n(?=\s*[-•*])"
)


@dataclass(frozen=True, slots=True)
class Token:
    """A word: its normalised form (casefolded, no possessive) and its span."""

    norm: str
    start: int
    end: int


def normalise_word(word: str) -> str:
    """Casefold and drop a possessive, the form every matcher compares."""
    word = unicodedata.normalize("NFC", word).casefold()
    if word.endswith(("'s", "\u2019s")):
        word = word[:-2]
    return word


def tokenize(text: str) -> list[Token]:
    """The words of ``text`` with their character spans."""
    return [Token(normalise_word(m.group()), m.start(), m.end()) for m in _WORD.finditer(text)]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences of ``text``, whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if match.group("stop") and text[match.end() : match.end() + 1].islower():
            continue  # "e.g. this", "U.S. officials", "5 p.m. yesterday": no new sentence
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    trimmed = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            trimmed.append((s, e))
    return trimmed


def snippet(text: str, start: int, end: int, limit: int = 320) -> str:
    """``text[start:end]`` on one line, cut to about ``limit`` characters."""
    piece = " ".join(text[start:end].split())
    if len(piece) <= limit:
        return piece
    return piece[: limit - 1].rsplit(" ", 1)[0] + "…"
