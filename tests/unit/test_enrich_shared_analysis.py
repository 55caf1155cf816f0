"""The enricher's shared per-story analysis gives exactly what each processor finds on its own."""

import json
from pathlib import Path

from processors.entities import _gazetteer_hits, _matcher, entities_of, extract_entities
from processors.gazetteer import demonym_forms
from processors.text import AnalysedText, Token, sentence_spans, tokenize
from processors.topic_rules import Hit, MatcherSet, PhraseMatcher, _match_end
from processors.topics import Segment, TopicEngine

TOPICS = Path(__file__).resolve().parents[2] / "deploy" / "topics"
REAL = Path(__file__).resolve().parents[1] / "data" / "topic-real" / "web-foreign-fighters-en.jsonl"

STORIES = [
    ("Ukraine's army", "North Korean soldiers fought for Russia's army in Kursk.\n\nZelensky said so."),
    ("Colombian mercenaries captured in Sudan", "Two Colombians, ex-soldiers, were held by the RSF."),
    ("", "Nepali men said they signed contracts with the Russian army. U.S. officials agreed."),
    ("Talks in North", "Korea and Japan met. Kenyan recruits from Nakuru joined a unit."),
]


def test_full_tokens_are_the_tokens_of_the_full_text() -> None:
    for title, text in STORIES:
        analysed = AnalysedText.of(title, text)
        assert analysed.full == (f"{title}\n\n{text}" if title else text)
        assert analysed.full_tokens == tokenize(analysed.full)
        assert analysed.text_sentences == sentence_spans(text)


def test_entities_from_the_shared_analysis_equal_extract_entities() -> None:
    for title, text in STORIES:
        analysed = AnalysedText.of(title, text)
        assert entities_of(analysed) == extract_entities(analysed.full)


def test_segment_countries_from_the_story_matches_equal_the_segment_scan() -> None:
    for title, text in STORIES:
        analysed = AnalysedText.of(title, text)
        for field in (["title"] if title else []) + ["text"]:
            shared = Segment.of_analysed(field, analysed)
            alone = Segment.of(field, shared.text)
            assert [shared.countries(i) for i in range(len(shared.sentences))] == [
                alone.countries(i) for i in range(len(alone.sentences))]
            assert _gazetteer_hits(shared.text, shared.tokens) == _gazetteer_hits(alone.text, alone.tokens)


def _plain_find(matcher: PhraseMatcher, tokens: list[Token]) -> list[Hit]:
    """The matcher's search without its per-word filing: every candidate tried in order."""
    hits: list[Hit] = []
    for i, tok in enumerate(tokens):
        unique = dict((pattern, keys) for keys, pattern in matcher._exact.get(tok.norm, ()))
        for length in (1, 2, 3):
            unique.update((pattern, keys) for first, keys, pattern in
                          matcher._prefix.get(tok.norm[:length], ()) if first.ok(tok.norm))
        for pattern, keys in unique.items():
            end = _match_end(pattern, tokens, 1, i + 1)
            for key in keys if end is not None else ():
                if Hit(key, i, end) not in hits:
                    hits.append(Hit(key, i, end))
    return hits


def test_the_matchers_find_what_trying_every_candidate_finds() -> None:
    engine = TopicEngine.from_directory(TOPICS, demonym_forms())
    matchers = [c.matcher for c in engine.topics] + [_matcher()[0]]
    texts = [t for title, text in STORIES for t in (title, text)] + [
        "Colombian fighters fought hard for them; Kenyan fighters for hire fight for the army",
        "foreign fighters foreign fighters signed one-year contracts with the Russian army",
    ] + [json.loads(line)["text"] for line in REAL.read_text(encoding="utf-8").splitlines()[:12]]
    for text in texts:
        tokens = tokenize(text)
        expected = [_plain_find(m, tokens) for m in matchers]
        assert [m.find(tokens) for m in matchers] == expected
        assert MatcherSet(matchers).find(tokens) == expected


def test_classify_with_the_shared_analysis_equals_classify_alone() -> None:
    engine = TopicEngine.from_directory(TOPICS, demonym_forms())
    for title, text in STORIES:
        analysed = AnalysedText.of(title, text)
        assert engine.candidates(title, text, "en", analysed) == engine.candidates(title, text, "en")
