"""The shipped topics on the labelled evaluation set (tests/data/topic-eval)."""

from pathlib import Path

import pytest

from processors.evaluation import TopicScore, evaluate, load_labelled, report
from processors.gazetteer import demonym_forms
from processors.topics import TopicEngine

ROOT = Path(__file__).resolve().parents[2]
EVAL_DIR = ROOT / "tests" / "data" / "topic-eval"


@pytest.fixture(scope="module")
def scores() -> dict[str, TopicScore]:
    engine = TopicEngine.from_directory(ROOT / "deploy" / "topics", demonym_forms())
    return evaluate(engine, load_labelled(EVAL_DIR))


def test_the_set_is_big_enough_and_balanced() -> None:
    stories = load_labelled(EVAL_DIR / "foreign-fighters.yaml")
    positives = [s for s in stories if "foreign-fighters" in s["topics"]]
    assert len(stories) >= 60
    assert len(positives) >= 30 and len(stories) - len(positives) >= 30
    kinds = {s.get("kind") for s in stories}
    assert {"firefighters", "combat-sports", "fighter-jets", "foreign-ministers", "dual-use",
            "prisoner-swap", "foreign-workers"} <= kinds
    assert len({s["id"] for s in load_labelled(EVAL_DIR)}) == len(load_labelled(EVAL_DIR))


def test_foreign_fighters_meets_its_targets(scores: dict[str, TopicScore]) -> None:
    ff = scores["foreign-fighters"]
    assert ff.precision >= 0.9 and ff.recall >= 0.9, report(scores)


def test_every_shipped_topic_is_usable(scores: dict[str, TopicScore]) -> None:
    assert len(scores) >= 4
    for name, score in scores.items():
        assert score.tp + score.fn >= 5, f"{name}: too few labelled positives"
        assert score.precision >= 0.8 and score.recall >= 0.8, report(scores)


def test_hard_negatives_are_all_rejected(scores: dict[str, TopicScore]) -> None:
    hard = {s["id"] for s in load_labelled(EVAL_DIR) if s.get("kind")}
    assert not hard & set(scores["foreign-fighters"].false_alarms)
