"""Tokens and sentences with character offsets, shared by the enrichment processors.

A regular-expression tokenizer is enough here: the topic rules and the
gazetteer match lower-cased word sequences, and every processor must agree on
what a "word" is so that distances ("within 10 words") mean the same thing.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property

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


# News vocabulary repeats, so each distinct surface form is normalised once (bounded memory).
MAX_CACHED_WORDS = 200_000
_normalised: dict[str, str] = {}


def normalise_word(word: str) -> str:
    """Casefold and drop a possessive, the form every matcher compares."""
    norm = _normalised.get(word)
    if norm is None:
        norm = unicodedata.normalize("NFC", word).casefold()
        if norm.endswith(("'s", "\u2019s")):
            norm = norm[:-2]
        if len(_normalised) >= MAX_CACHED_WORDS:
            _normalised.clear()
        _normalised[word] = norm
    return norm


def tokenize(text: str) -> list[Token]:
    """The words of ``text`` with their character spans."""
    cached = _normalised
    tokens = []
    for match in _WORD.finditer(text):
        word = match.group()
        norm = cached.get(word)
        start, end = match.span()
        tokens.append(Token(normalise_word(word) if norm is None else norm, start, end))
    return tokens


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


@dataclass(frozen=True)
class AnalysedText:
    """A story's headline and body, tokenised and split into sentences once for every processor.

    ``full`` is what entities and language read (headline, blank line, body); its tokens are the
    headline's followed by the body's, shifted: a word cannot span the blank line, so they are
    exactly ``tokenize(full)``. Processors may keep per-story results here (``cache``).
    """

    title: str
    text: str
    title_tokens: list[Token]
    text_tokens: list[Token]
    title_sentences: list[tuple[int, int]]
    text_sentences: list[tuple[int, int]]

    @classmethod
    def of(cls, title: str | None, text: str) -> AnalysedText:
        title = title or ""
        return cls(title, text, tokenize(title) if title else [], tokenize(text),
                   sentence_spans(title) if title else [], sentence_spans(text))

    @cached_property
    def full(self) -> str:
        return f"{self.title}\n\n{self.text}" if self.title else self.text

    @property
    def body_offset(self) -> int:
        """Where the body starts in ``full``."""
        return len(self.title) + 2 if self.title else 0

    @cached_property
    def full_tokens(self) -> list[Token]:
        if not self.title:
            return self.text_tokens
        shift = self.body_offset
        return self.title_tokens + [Token(t.norm, t.start + shift, t.end + shift) for t in self.text_tokens]

    @cached_property
    def cache(self) -> dict[str, object]:
        return {}
