"""The topic engine: score a story against every YAML topic and keep the evidence.

Scoring follows Europe Media Monitor's categories: each matched term or
satisfied proximity group adds its weight (negative weights subtract), words
inside an exclusion phrase count for nothing, and a story is tagged when the
sum reaches the topic's threshold. Without a meaning check a tag's ``score``
is that sum divided by the threshold (1.0 = just tagged). A topic with a
``check`` (``processors/topic_check.py``) uses the rules to propose candidates
only: the candidate's best sentences must also pass the sentence-model check,
and the tag's ``score`` is then the calibrated probability (0..1) with
``rule_score`` beside it. Either way the evidence is the sentences that decided,
with the words that matched.
"""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.story import Evidence, TopicTag
from processors.text import AnalysedText, Token, sentence_spans, snippet, tokenize
from processors.topic_check import CompiledCheck, Passage, Verdict, trigger_passages
from processors.topic_rules import Group, Hit, MatcherSet, PhraseMatcher, TopicDefinition, load_topics

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
    # the story's shared analysis (the gazetteer's matches are found once, in its full text)
    # and where this segment's tokens start in its full tokens
    analysed: AnalysedText | None = None
    token_offset: int = 0
    # every topic's matcher hits in this segment, found in one pass (TopicEngine._hits)
    hits: list[list[Hit]] | None = None

    @classmethod
    def of(cls, field: str, text: str) -> Segment:
        sentences = sentence_spans(text)
        return cls(field, text, tokenize(text), sentences, [s for s, _ in sentences])

    @classmethod
    def of_analysed(cls, field: str, analysed: AnalysedText) -> Segment:
        if field == "title":
            text, tokens, sentences, offset = (analysed.title, analysed.title_tokens,
                                               analysed.title_sentences, 0)
        else:
            text, tokens, sentences, offset = (analysed.text, analysed.text_tokens,
                                               analysed.text_sentences, len(analysed.title_tokens))
        return cls(field, text, tokens, sentences, [s for s, _ in sentences],
                   analysed=analysed, token_offset=offset)

    def sentence_of(self, token_index: int) -> int:
        pos = self.tokens[token_index].start
        return max(0, bisect.bisect_right(self._starts, pos) - 1)

    def countries(self, sentence: int) -> frozenset[str]:
        """ISO codes of the countries a sentence names (places, nationalities, institutions)."""
        if self._countries is None:
            # the entity gazetteer, imported here: only groups with min_countries need it
            from processors.entities import _gazetteer_hits, gazetteer_matches

            raw = None
            if self.analysed is not None:
                # the story's matches that lie inside this segment are the segment's own
                low, high = self.token_offset, self.token_offset + len(self.tokens)
                raw = [Hit(h.key, h.start - low, h.end - low)
                       for h in gazetteer_matches(self.analysed) if low <= h.start and h.end <= high]
            found: list[set[str]] = [set() for _ in self.sentences]
            for start, _, entry in _gazetteer_hits(self.text, self.tokens, raw):
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


Embed = Callable[[list[str]], np.ndarray]


class _CompiledTopic:
    def __init__(self, topic: TopicDefinition, embed: Embed) -> None:
        self.topic = topic
        self.check = CompiledCheck(topic.check, embed) if topic.check else None
        patterns = [("x", p) for p in topic.exclude]
        patterns += [(f"t:{term}", p) for term, (_, ps) in topic.terms.items() for p in ps]
        for gi, group in enumerate(topic.groups):
            for li, lst in enumerate(group.lists):
                patterns += [(f"g:{gi}:{li}", p) for p in lst]
        self.matcher = PhraseMatcher(patterns)
        self.negative = {f"t:{term}" for term, (weight, _) in topic.terms.items() if weight < 0}
        self.supporting = {g.name for g in topic.groups if g.supporting}

    def occurrences(self, segment: Segment, hits: list[Hit] | None = None) -> list[_Occurrence]:
        """The rules' occurrences in ``segment``; ``hits`` = this topic's matcher hits, if found."""
        if hits is None:
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


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the cheap first pass found for one topic: the input of the meaning check."""

    topic: str
    path: str  # "rules" (the topic's own languages) or "triggers" (other languages)
    rule_score: float  # rule sum / threshold; 0 on the triggers path
    passages: list[Passage]


def _lazy_model_embed(texts: list[str]) -> np.ndarray:
    # imported on first use: engines without checks (and their tests) never load the model
    from processors.sentence_model import shared

    return shared().embed(texts)


class TopicEngine:
    """All topics of a directory, compiled once; ``classify`` is a pure function of the text."""

    def __init__(self, topics: list[TopicDefinition], embed: Embed | None = None) -> None:
        self.topics = [_CompiledTopic(t, embed or _lazy_model_embed) for t in topics]
        self._index = {id(c): i for i, c in enumerate(self.topics)}
        self._matchers = MatcherSet(c.matcher for c in self.topics)

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

    def warm_up(self) -> None:
        """Embed every check's descriptions now (loading the model), not on the first story."""
        for compiled in self.topics:
            if compiled.check is not None:
                compiled.check.features([Passage("warm-up", None)], 0.0)

    def definition(self, name: str) -> TopicDefinition:
        return next(c.topic for c in self.topics if c.topic.name == name)

    def classify(self, title: str | None, text: str, language: str | None = None,
                 analysed: AnalysedText | None = None) -> list[TopicTag]:
        """The topics ``title`` + ``text`` are about, best first, with evidence; ``analysed`` is
        the story's shared analysis of the same ``title`` and ``text``, when there is one."""
        segments = _segments(title, text, analysed)
        tags = []
        for compiled in self.topics:
            tag = self._tag(compiled, segments, language)
            if tag is not None:
                tags.append(tag)
        tags.sort(key=lambda t: -t.score)
        return tags

    def candidates(self, title: str | None, text: str, language: str | None = None,
                   analysed: AnalysedText | None = None) -> list[Candidate]:
        """Every topic's first-pass candidate (for calibration and evaluation), checked or not."""
        segments = _segments(title, text, analysed)
        found = []
        for compiled in self.topics:
            if compiled.check is not None:
                cand = self._candidate(compiled, segments, language)
                if cand is not None:
                    found.append(cand)
        return found

    def compiled_check(self, name: str) -> CompiledCheck | None:
        return next(c.check for c in self.topics if c.topic.name == name)

    def explain(self, title: str | None, text: str) -> dict[str, float]:
        """Raw rule score of every topic (tagged or not): for tuning rules and the evaluation."""
        segments = _segments(title, text)
        return {c.topic.name: self._raw(c, segments)[0] for c in self.topics}

    def _rules_apply(self, topic: TopicDefinition, language: str | None) -> bool:
        return not (topic.languages and language and language not in topic.languages)

    def _candidate(self, compiled: _CompiledTopic, segments: list[Segment],
                   language: str | None) -> Candidate | None:
        topic, check = compiled.topic, compiled.topic.check
        assert check is not None
        if not self._rules_apply(topic, language):
            stems = check.triggers.get(language or "")
            if not stems:
                return None
            passages = []
            for seg in segments:
                found = trigger_passages(seg.text, seg.sentences, stems, check.passages)
                in_title = seg.field == "title"
                passages += [Passage(p.text, None, p.matched) for p in found] if in_title else found
            if not passages:
                return None
            return Candidate(topic.name, "triggers", 0.0, passages[: check.passages + 1])
        total, counted = self._raw(compiled, segments)
        if total < check.candidate_score * topic.threshold or not _required(topic, counted):
            return None
        passages = [_passage(seg, idx, words) for seg, idx, words, _ in _ranked_sentences(counted)]
        headline = [p for p in passages if p.start is None]
        body = [p for p in passages if p.start is not None][: check.passages]
        if not headline and segments[0].field == "title":
            headline = [Passage(segments[0].text, None)]  # the headline is always checked
        return Candidate(topic.name, "rules", round(total / topic.threshold, 3), headline + body)

    def _tag(self, compiled: _CompiledTopic, segments: list[Segment],
             language: str | None) -> TopicTag | None:
        topic = compiled.topic
        if compiled.check is not None:
            cand = self._candidate(compiled, segments, language)
            if cand is None:
                return None
            verdict = compiled.check.judge(cand.passages, cand.rule_score, cand.path)
            if verdict is not None:
                return _checked_tag(topic, cand, verdict)
            if cand.path != "rules":
                return None
            # an uncalibrated check (a new topic) falls back to the rules alone
        if not self._rules_apply(topic, language):
            return None
        total, counted = self._raw(compiled, segments)
        if total < topic.threshold or not _required(topic, counted):
            return None
        return TopicTag(name=topic.name, score=round(total / topic.threshold, 3),
                        evidence=_evidence(counted))

    def _hits(self, segment: Segment) -> list[list[Hit]]:
        """Every topic's matcher hits in ``segment``, found in one pass and kept on it."""
        if segment.hits is None:
            segment.hits = self._matchers.find(segment.tokens)
        return segment.hits

    def _raw(
        self, compiled: _CompiledTopic, segments: list[Segment]
    ) -> tuple[float, list[tuple[_Occurrence, float]]]:
        topic = compiled.topic
        per_rule: dict[str, list[tuple[_Occurrence, float]]] = defaultdict(list)
        for segment in segments:
            factor = topic.title_weight if segment.field == "title" else 1.0
            for occ in compiled.occurrences(segment, self._hits(segment)[self._index[id(compiled)]]):
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


def _segments(title: str | None, text: str, analysed: AnalysedText | None = None) -> list[Segment]:
    if analysed is not None:
        assert analysed.title == (title or "") and analysed.text == text
        return ([Segment.of_analysed("title", analysed)] if title else []) + [
            Segment.of_analysed("text", analysed)]
    segments = [Segment.of("title", title)] if title else []
    segments.append(Segment.of("text", text))
    return segments


def _required(topic: TopicDefinition, counted: list[tuple[_Occurrence, float]]) -> bool:
    return not topic.require_any or any(o.rule in topic.require_any for o, _ in counted)


def _checked_tag(topic: TopicDefinition, cand: Candidate, verdict: Verdict) -> TopicTag | None:
    assert topic.check is not None
    if verdict.probability < topic.check.tag_probability:
        return None
    evidence = [
        Evidence(text=snippet(p.text, 0, len(p.text)), matched=list(p.matched), start=p.start)
        for p, _ in verdict.ranked[:MAX_EVIDENCE]
    ]
    return TopicTag(name=topic.name, score=round(verdict.probability, 3),
                    rule_score=cand.rule_score, evidence=evidence)


def _ranked_sentences(
    counted: list[tuple[_Occurrence, float]],
) -> list[tuple[Segment, int, list[str], float]]:
    """The sentences the positive contributions fall in, strongest first, with their words."""
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
    best = sorted(sentences.items(), key=lambda kv: -kv[1][1])
    return [(seg, idx, words, score) for (_, idx), (seg, score, words) in best]


def _passage(seg: Segment, idx: int, words: list[str]) -> Passage:
    start, end = seg.sentences[idx]
    return Passage(seg.text[start:end], start if seg.field == "text" else None, tuple(words))


def _evidence(counted: list[tuple[_Occurrence, float]]) -> list[Evidence]:
    evidence = []
    for seg, idx, words, _ in _ranked_sentences(counted)[:MAX_EVIDENCE]:
        start, end = seg.sentences[idx]
        evidence.append(
            # start is the offset in the body text; None marks the headline
            Evidence(text=snippet(seg.text, start, end), matched=words,
                     start=start if seg.field == "text" else None)
        )
    return evidence
