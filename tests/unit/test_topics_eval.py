"""The shipped topics' RULES (the first pass) on the invented development sets.

These sets are invented wire copy: since issue 8 they are a regression suite for the
rule engine alone (every topic's ``check`` is switched off here), never the quality
measure. Quality is measured on real published news, with the meaning check, in
test_topics_real_news.py.

Three files (processors/README.md, "Evaluation"): the train set the first rules were
written on (foreign-fighters.yaml, other-topics.yaml); heldout.yaml, written by
someone else without seeing the rules (its odd ids were tuned on in round 2, its even
ids were the round-2 test half and, once measured, became development data in round 3);
and dev2.yaml, a second independent set (120 texts, labelled for foreign-fighters only).
All three are tuned on now. The unseen measure is the sealed set in tests/data/topic-test
(test2.yaml, 100 texts written by someone who saw neither the rules nor the other sets),
evaluated once after round 3 was frozen: foreign-fighters precision 0.98, recall 0.90.
``test_foreign_fighters_meets_the_goal_on_the_sealed_set`` holds that line: the
issue's goal of 0.9 on both, so one more miss there fails CI. Do not tune on it;
write a new sealed set before the next round.
"""

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from processors.evaluation import TopicScore, evaluate, load_labelled, report
from processors.gazetteer import demonym_forms
from processors.topic_rules import load_topics
from processors.topics import TopicEngine

ROOT = Path(__file__).resolve().parents[2]
EVAL_DIR = ROOT / "tests" / "data" / "topic-eval"
TRAIN_FILES = ("foreign-fighters.yaml", "other-topics.yaml")
FF = "foreign-fighters"


def _heldout(parity: int | None = None) -> list[dict[str, Any]]:
    return [s for s in load_labelled(EVAL_DIR / "heldout.yaml")
            if parity is None or int(s["id"].rsplit("-", 1)[1]) % 2 == parity]


def _train() -> list[dict[str, Any]]:
    return [s for name in TRAIN_FILES for s in load_labelled(EVAL_DIR / name)]


def _dev2() -> list[dict[str, Any]]:
    return load_labelled(EVAL_DIR / "dev2.yaml")


def _hard_negatives(stories: list[dict[str, Any]]) -> set[str]:
    # hard negatives carry a "kind"; heldout.yaml and dev2.yaml mark positives kind: positive
    return {s["id"] for s in stories if s.get("kind") and FF not in (s.get("topics") or [])}


def rules_only() -> TopicEngine:
    """The shipped topics without their meaning check: what the first pass proposes."""
    topics = load_topics(ROOT / "deploy" / "topics", demonym_forms())
    return TopicEngine([dataclasses.replace(t, check=None) for t in topics])


@pytest.fixture(scope="module")
def engine() -> TopicEngine:
    return rules_only()


@pytest.fixture(scope="module")
def tuned(engine: TopicEngine) -> dict[str, TopicScore]:
    """Train + all of heldout.yaml: the stories every topic has labels on."""
    return evaluate(engine, _train() + _heldout())


@pytest.fixture(scope="module")
def per_set(engine: TopicEngine) -> dict[str, dict[str, TopicScore]]:
    return {"train": evaluate(engine, _train()), "heldout": evaluate(engine, _heldout()),
            "dev2": evaluate(engine, _dev2())}


def test_the_sets_are_big_enough_and_balanced() -> None:
    stories = load_labelled(EVAL_DIR / "foreign-fighters.yaml")
    positives = [s for s in stories if FF in s["topics"]]
    assert len(stories) >= 60
    assert len(positives) >= 30 and len(stories) - len(positives) >= 30
    kinds = {s.get("kind") for s in stories}
    assert {"firefighters", "combat-sports", "fighter-jets", "foreign-ministers", "dual-use",
            "prisoner-swap", "foreign-workers"} <= kinds
    dev2 = _dev2()
    assert len(dev2) >= 100 and len([s for s in dev2 if FF in (s.get("topics") or [])]) >= 50
    assert len({s.get("kind") for s in dev2} - {"positive"}) >= 15  # hard-negative kinds
    everything = load_labelled(EVAL_DIR)
    assert len({s["id"] for s in everything}) == len(everything)
    assert len(_train()) + len(_heldout(0)) + len(_heldout(1)) + len(dev2) == len(everything)
    assert len(_heldout(0)) >= 50 and len(_heldout(1)) >= 50


@pytest.mark.parametrize("name", ["train", "heldout", "dev2"])
def test_foreign_fighters_meets_its_targets_on_every_development_file(
    per_set: dict[str, dict[str, TopicScore]], name: str,
) -> None:
    # round 3 measured 1.00 / 1.00 on each file; 0.9 is the target, not a frozen floor
    ff = per_set[name][FF]
    assert ff.precision >= 0.9 and ff.recall >= 0.9, report(per_set[name])


def test_every_shipped_topic_is_usable(tuned: dict[str, TopicScore]) -> None:
    assert len(tuned) >= 4
    for name, score in tuned.items():
        assert score.tp + score.fn >= 5, f"{name}: too few labelled positives"
        # all of heldout is tuned on for foreign-fighters only; the other topics' rules did
        # not change in round 3 (train + heldout: drone strikes 0.94 / 1.00, sanctions
        # evasion 1.00 / 0.94, private military companies 1.00 / 1.00)
        assert score.precision >= 0.9 and score.recall >= 0.9, report(tuned)


def test_hard_negatives_are_all_rejected(per_set: dict[str, dict[str, TopicScore]]) -> None:
    # every hard-negative kind of train, heldout and dev2 (firefighters, combat sports, fighter
    # jets, foreign ministers, prisoner swaps, own soldiers, peacekeepers, exercises,
    # historical memorials, foreign workers and students, ...)
    for name, stories in (("train", _train()), ("heldout", _heldout()), ("dev2", _dev2())):
        assert not _hard_negatives(stories) & set(per_set[name][FF].false_alarms), name


def test_foreign_fighters_meets_the_goal_on_the_sealed_set() -> None:
    engine = rules_only()
    sealed = load_labelled(ROOT / "tests" / "data" / "topic-test" / "test2.yaml")
    assert len(sealed) == 100 and sum(FF in (s["topics"] or []) for s in sealed) == 50
    score = evaluate(engine, sealed)[FF]
    assert score.precision >= 0.9 and score.recall >= 0.9, report({FF: score})
