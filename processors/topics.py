"""The topic engine: score a story against every YAML topic and keep the evidence.

Scoring follows Europe Media Monitor's categories: each matched term or
satisfied proximity group adds its weight (negative weights subtract), words
inside an exclusion phrase count for nothing, and a story is tagged when the
sum reaches the topic's threshold. A tag's ``score`` is that sum divided by the
threshold (1.0 = just tagged; comparable across topics); its evidence is the
sentences that contributed most, with the words that matched.
"""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.story import Evidence, TopicTag
from processors.text import Token, sentence_spans, snippet, tokenize
from processors.topic_rules import Group, Hit, PhraseMatcher, TopicDefinition, load_topics

logger = logging.getLogger(__name__)

MAX_EVIDENCE = 3


@dataclass
class Segment:
    """A tokenised part of the story: the headline or the body."""

    field: str  # "title" | "text"
    text: str
    tokens: list[Token]
    sentences: list[tuple[int, int]]
    _starts: list[int]
    _countries: list[frozenset[str]] | None = None

    @classmethod
    def of(cls, field: str, text: str) -> Segment:
        sentences = sentence_spans(text)
        return cls(field, text, tokenize(text), sentences, [s for s, _ in sentences])

    def sentence_of(self, token_index: int) -> int:
        pos = self.tokens[token_index].start
        return max(0, bisect.bisect_right(self._starts, pos) - 1)

    def countries(self, sentence: int) -> frozenset[str]:
        """ISO codes of the countries a sentence names (places, nationalities, institutions)."""
        if self._countries is None:
            # the entity gazetteer, imported here: only groups with min_countries need it
            from processors.entities import _gazetteer_hits

            found: list[set[str]] = [set() for _ in self.sentences]
            for start, _, entry in _gazetteer_hits(self.text, self.tokens):
                if entry.country:
                    found[self.sentence_of(start)].add(entry.country)
            self._countries = [frozenset(f) for f in found]
        return self._countries[sentence] if sentence < len(self._countries) else frozenset()


@dataclass
class _Occurrence:
    rule: str
    weight: float
    segment: Segment
    hits: tuple[Hit, ...]


class _CompiledTopic:
    def __init__(self, topic: TopicDefinition) -> None:
        self.topic = topic
        patterns = [("x", p) for p in topic.exclude]
        patterns += [(f"t:{term}", p) for term, (_, ps) in topic.terms.items() for p in ps]
        for gi, group in enumerate(topic.groups):
            for li, lst in enumerate(group.lists):
                patterns += [(f"g:{gi}:{li}", p) for p in lst]
        self.matcher = PhraseMatcher(patterns)
        self.negative = {f"t:{term}" for term, (weight, _) in topic.terms.items() if weight < 0}
        self.supporting = {g.name for g in topic.groups if g.supporting}

    def occurrences(self, segment: Segment) -> list[_Occurrence]:
        hits = self.matcher.find(segment.tokens)
        masked = {i for h in hits if h.key == "x" for i in range(h.start, h.end)}
        # exclusions take words away from positive rules only: "battle forest fires" stops
        # "battle" counting as fighting, while "forest fires" still counts against the topic
        live = [h for h in hits if h.key != "x" and (
            h.key in self.negative or not masked.intersection(range(h.start, h.end)))]
        found: list[_Occurrence] = []
        by_key: dict[str, list[Hit]] = defaultdict(list)
        for hit in live:
            by_key[hit.key].append(hit)
        for term, (weight, _) in self.topic.terms.items():
            found.extend(_Occurrence(term, weight, segment, (h,)) for h in by_key.get(f"t:{term}", []))
        for gi, group in enumerate(self.topic.groups):
            lists = [by_key.get(f"g:{gi}:{li}", []) for li in range(len(group.lists))]
            if not all(lists):
                continue
            # a sentence-wide group counts once per sentence: "Canadian and Australian
            # crews battle ..." is one sentence about fighting, not two
            done: set[int] = set()
            for anchor in lists[0]:
                sentence = segment.sentence_of(anchor.start)
                if sentence in done or not _enough_countries(group, segment, sentence):
                    continue
                partners = []
                for other in lists[1:]:
                    partner = _nearest(anchor, other, group.within, segment)
                    if partner is None:
                        break
                    partners.append(partner)
                else:
                    if group.within is None:
                        done.add(sentence)
                    found.append(_Occurrence(group.name, group.weight, segment, (anchor, *partners)))
        return found


def _enough_countries(group: Group, segment: Segment, sentence: int) -> bool:
    if not group.min_countries and not group.outside:
        return True
    named = segment.countries(sentence)
    if len(named) < group.min_countries:
        return False
    return not group.outside or bool(named - group.outside)


def _nearest(anchor: Hit, candidates: list[Hit], within: int | None, seg: Segment) -> Hit | None:
    best: Hit | None = None
    best_gap = None
    for hit in candidates:
        if hit.start < anchor.end and anchor.start < hit.end:
            continue  # the same words cannot satisfy two lists
        gap = max(hit.start, anchor.start) - min(hit.end, anchor.end)
        if within is None:
            if seg.sentence_of(hit.start) != seg.sentence_of(anchor.start):
                continue
        elif gap > within:
            continue
        if best_gap is None or gap < best_gap:
            best, best_gap = hit, gap
    return best


class TopicEngine:
    """All topics of a directory, compiled once; ``classify`` is a pure function of the text."""

    def __init__(self, topics: list[TopicDefinition]) -> None:
        self.topics = [_CompiledTopic(t) for t in topics]

    @classmethod
    def from_directory(cls, directory: Path, demonyms: Mapping[str, str]) -> TopicEngine:
        """Load every topic file of ``directory``; a malformed file fails with its name."""
        topics = load_topics(directory, demonyms)
        logger.info("loaded %d topics from %s: %s", len(topics), directory,
                    ", ".join(t.name for t in topics))
        return cls(topics)

    @property
    def names(self) -> list[str]:
        return [c.topic.name for c in self.topics]

    def classify(self, title: str | None, text: str, language: str | None = None) -> list[TopicTag]:
        """The topics whose threshold ``title`` + ``text`` reach, best first, with evidence."""
        segments = [Segment.of("title", title)] if title else []
        segments.append(Segment.of("text", text))
        tags = []
        for compiled in self.topics:
            topic = compiled.topic
            if topic.languages and language and language not in topic.languages:
                continue
            tag = self._score(compiled, segments)
            if tag is not None:
                tags.append(tag)
        tags.sort(key=lambda t: -t.score)
        return tags

    def explain(self, title: str | None, text: str) -> dict[str, float]:
        """Raw score of every topic (tagged or not): for tuning rules and the evaluation."""
        segments = [Segment.of("title", title)] if title else []
        segments.append(Segment.of("text", text))
        return {c.topic.name: self._raw(c, segments)[0] for c in self.topics}

    def _raw(
        self, compiled: _CompiledTopic, segments: list[Segment]
    ) -> tuple[float, list[tuple[_Occurrence, float]]]:
        topic = compiled.topic
        per_rule: dict[str, list[tuple[_Occurrence, float]]] = defaultdict(list)
        for segment in segments:
            factor = topic.title_weight if segment.field == "title" else 1.0
            for occ in compiled.occurrences(segment):
                per_rule[occ.rule].append((occ, occ.weight * factor))
        counted: list[tuple[_Occurrence, float]] = []
        for items in per_rule.values():
            # the strongest occurrences of a rule count, up to max_per_rule
            items.sort(key=lambda item: -abs(item[1]))
            counted.extend(items[: topic.max_per_rule])
        if compiled.supporting and not any(
            value > 0 and occ.rule not in compiled.supporting for occ, value in counted
        ):
            counted = [(occ, value) for occ, value in counted if occ.rule not in compiled.supporting]
        return sum(v for _, v in counted), counted

    def _score(self, compiled: _CompiledTopic, segments: list[Segment]) -> TopicTag | None:
        topic = compiled.topic
        total, counted = self._raw(compiled, segments)
        if total < topic.threshold:
            return None
        if topic.require_any and not any(o.rule in topic.require_any for o, _ in counted):
            return None
        return TopicTag(
            name=topic.name,
            score=round(total / topic.threshold, 3),
            evidence=_evidence(counted),
        )


def _evidence(counted: list[tuple[_Occurrence, float]]) -> list[Evidence]:
    # Group the positive contributions by sentence; the strongest sentences are the evidence.
    sentences: dict[tuple[str, int], tuple[Segment, float, list[str]]] = {}
    for occ, value in counted:
        if value <= 0:
            continue
        seg = occ.segment
        idx = seg.sentence_of(occ.hits[0].start)
        _, score, words = sentences.get((seg.field, idx), (seg, 0.0, []))
        for hit in occ.hits:
            surface = seg.text[seg.tokens[hit.start].start : seg.tokens[hit.end - 1].end]
            if surface not in words:
                words.append(surface)
        sentences[(seg.field, idx)] = (seg, score + value, words)
    best = sorted(sentences.items(), key=lambda kv: -kv[1][1])[:MAX_EVIDENCE]
    evidence = []
    for (field, idx), (seg, _, words) in best:
        start, end = seg.sentences[idx]
        evidence.append(
            # start is the offset in the body text; None marks the headline
            Evidence(text=snippet(seg.text, start, end), matched=words,
                     start=start if field == "text" else None)
        )
    return evidence
