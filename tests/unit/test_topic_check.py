"""The meaning check on small hand-made topics, with the real sentence model.

Invented sentences test the mechanism only (which passages are checked, what the
probability does, what is shown as evidence); quality is measured on real news in
test_topics_real_news.py.
"""

import math

import numpy as np
import pytest

from processors.sentence_model import shared
from processors.topic_check import PROBE_CLIP, Calibration, Passage, Probe, trigger_passages
from processors.topic_rules import TopicDefinitionError, parse_topic
from processors.topics import TopicEngine

ABOUT = ["Foreign mercenaries were captured while fighting in a war abroad."]
NOT_ABOUT = ["The film follows a band of mercenaries fighting across the galaxy."]
# margin-only calibration: probability 0.5 at a margin of 0.05
CALIBRATED = {"rules": {"bias": -1.0, "rule": 0.0, "about": 0.0, "margin": 20.0},
              "triggers": {"bias": -1.0, "rule": 0.0, "about": 0.0, "margin": 20.0}}


def engine(calibration: object = CALIBRATED, **check: object) -> TopicEngine:
    data = {"name": "t", "threshold": 10, "languages": ["en"], "terms": {"mercenar*": 10},
            "check": {"about": ABOUT, "not_about": NOT_ABOUT, "calibration": calibration,
                      "triggers": {"ru": ["наемник", "наёмник"]}, **check}}
    return TopicEngine([parse_topic(data, "test.yaml", {})])


@pytest.fixture(scope="module")
def checked() -> TopicEngine:
    return engine()


def test_a_look_alike_the_rules_accept_is_rejected_by_the_check(checked: TopicEngine) -> None:
    film = "The space opera follows a ragtag band of mercenaries recruited across the stars."
    assert checked.explain(None, film)["t"] >= 10  # the rules alone would tag it
    assert checked.classify(None, film, "en") == []


def test_an_on_topic_story_is_tagged_with_a_probability_and_the_deciding_passage(
    checked: TopicEngine,
) -> None:
    text = ("The weather was mild. Two Colombian mercenaries were captured by the army "
            "while fighting in Sudan's war, officials said.")
    [tag] = checked.classify(None, text, "en")
    assert 0.5 <= tag.score < 1.0 and tag.rule_score == 1.0
    assert tag.evidence[0].text.startswith("Two Colombian mercenaries")
    assert tag.evidence[0].matched == ["mercenaries"]
    assert tag.evidence[0].start == text.index("Two")


def test_the_triggers_propose_stories_in_languages_the_rules_are_not_written_for(
    checked: TopicEngine,
) -> None:
    text = "Погода была тёплой. Двое наемников из Колумбии попали в плен, воюя в Судане."
    assert checked.explain(None, text)["t"] == 0  # the English rules find nothing
    [tag] = checked.classify(None, text, "ru")
    assert tag.rule_score == 0.0 and "наемник" in tag.evidence[0].matched
    assert checked.classify(None, "Погода была тёплой весь день.", "ru") == []
    assert checked.classify(None, text, "fr") == []  # no triggers for French here


def test_an_uncalibrated_check_falls_back_to_the_rules() -> None:
    eng = engine(calibration={})
    film = "The space opera follows a ragtag band of mercenaries."
    [tag] = eng.classify(None, film, "en")
    assert tag.score == 1.0 and tag.rule_score is None
    text = "Двое наемников попали в плен."
    assert eng.classify(None, text, "ru") == []  # nothing to fall back to in Russian


def test_the_candidate_floor_keeps_weak_rule_matches_from_the_model() -> None:
    eng = engine(candidate_score=2.0)  # needs twice the threshold to be checked
    assert eng.candidates(None, "Colombian mercenaries fought in Sudan.", "en") == []
    assert eng.candidates(None, "Mercenaries, mercenaries.", "en")[0].rule_score == 2.0


def test_calibration_is_a_logistic_function_of_the_features() -> None:
    cal = Calibration(bias=-2.0, rule=1.0, about=0.0, margin=10.0)
    assert cal.probability((2.0, 0.3, 0.0, 5.0)) == pytest.approx(0.5)  # no probe weight
    assert cal.probability((2.0, 0.3, 0.1, 0.0)) > cal.probability((2.0, 0.3, 0.0, 0.0))
    assert cal.probability((100.0, 0, 0, 0)) == pytest.approx(1.0)
    with_probe = Calibration(bias=-2.0, rule=1.0, about=0.0, margin=0.0, probe=0.5)
    assert with_probe.probability((2.0, 0.3, 0.0, 2.0)) == pytest.approx(1 / (1 + math.exp(-1)))


def probe_along(direction: str, bias: float = 0.0, scale: float = 6.0) -> dict[str, object]:
    """A probe pointing at one sentence's vector (a mechanism test, not a fitted probe)."""
    vector = shared().embed([direction])[0] * scale
    return {"bias": bias, "weights": Probe(bias, vector).encoded()}


def test_a_probe_round_trips_through_the_topic_file_format() -> None:
    weights = np.array([0.5, -1.25, 3.0])
    probe = Probe.parse({"bias": -0.5, "weights": Probe(-0.5, weights).encoded()})
    assert probe.bias == -0.5 and probe.weights.tolist() == [0.5, -1.25, 3.0]
    assert probe.logits(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 10.0]])).tolist() == [0.0, PROBE_CLIP]


def test_the_probe_moves_the_verdict_and_decides_which_passage_is_evidence() -> None:
    calibration = {"rules": {"bias": -1.0, "rule": 0.0, "about": 0.0, "margin": 0.0, "probe": 1.0}}
    film = "A new film about space mercenaries opened in cinemas this week."
    sudan = "Two Colombian mercenaries were captured by the army while fighting in Sudan's war."
    text = f"{film} {sudan}"
    [tag] = engine(calibration, probe=probe_along(sudan)).classify(None, text, "en")
    assert [e.text for e in tag.evidence] == [sudan, film]
    [tag] = engine(calibration, probe=probe_along(film)).classify(None, text, "en")
    assert [e.text for e in tag.evidence] == [film, sudan]
    away = engine(calibration, probe=probe_along(sudan, scale=-6.0))
    assert away.classify(None, sudan, "en") == []  # the same story, the probe pointing away


def test_a_probe_of_the_wrong_size_is_refused_when_used() -> None:
    bad = engine(probe={"bias": 0.0, "weights": Probe(0.0, np.ones(3)).encoded()})
    with pytest.raises(ValueError, match="3 weights"):
        bad.classify(None, "Mercenaries were captured in Sudan.", "en")


def test_trigger_passages_rank_sentences_by_their_stems() -> None:
    text = "Первое предложение. Наемники и ещё наемники. Один наёмник."
    spans = [(0, 19), (20, 44), (45, 58)]
    found = trigger_passages(text, spans, ("наемник", "наёмник", "ещё"), limit=2)
    assert [p.text for p in found] == ["Наемники и ещё наемники.", "Один наёмник."]
    assert found[0] == Passage("Наемники и ещё наемники.", 20, ("наемник", "ещё"))


@pytest.mark.parametrize("check, message", [
    ({"about": ["x"]}, "'about' and 'not_about'"),
    ({"about": ["x"], "not_about": ["y"], "colour": 1}, "unknown keys"),
    ({"about": ["x"], "not_about": ["y"], "calibration": {"web": {}}}, "calibration path"),
    ({"about": ["x"], "not_about": ["y"], "calibration": {"rules": {"bias": 1}}}, "calibration rules"),
    ({"about": ["x"], "not_about": ["y"], "alert_score": 1.5}, "between 0 and 1"),
    ({"about": ["x"], "not_about": ["y"], "triggers": {"ru": []}}, "non-empty list"),
    ({"about": ["x"], "not_about": ["y"], "probe": {"bias": 0}}, "probe needs"),
    ({"about": ["x"], "not_about": ["y"], "probe": {"bias": 0, "weights": "%%"}}, "not base64"),
    ({"about": ["x"], "not_about": ["y"], "probe": {"bias": 0, "weights": "AAA="}}, "float32"),
])
def test_a_malformed_check_names_the_file_and_the_problem(check: dict, message: str) -> None:
    data = {"name": "t", "threshold": 10, "terms": {"a": 10}, "check": check}
    with pytest.raises(TopicDefinitionError, match=message) as caught:
        parse_topic(data, "bad.yaml", {})
    assert str(caught.value).startswith("bad.yaml:")
