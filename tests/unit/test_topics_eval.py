"""The shipped topics on the labelled evaluation sets (tests/data/topic-eval).

Four sets (processors/README.md, "Evaluation"): the train set the first rules were
written on (foreign-fighters.yaml, other-topics.yaml); heldout.yaml, written by
someone else without seeing the rules and split by id parity — odd ids are dev1
(read and tuned on), even ids the test half (never read; measured once, after the
rules were frozen); and dev2.yaml, a second independent set written by another
person (120 texts, labelled for foreign-fighters only), read and tuned on.
"""

from pathlib import Path
from typing import Any

import pytest

from processors.evaluation import TopicScore, evaluate, load_labelled, report
from processors.gazetteer import demonym_forms
from processors.topics import TopicEngine

ROOT = Path(__file__).resolve().parents[2]
EVAL_DIR = ROOT / "tests" / "data" / "topic-eval"
TRAIN_FILES = ("foreign-fighters.yaml", "other-topics.yaml")
FF = "foreign-fighters"


def _heldout(parity: int) -> list[dict[str, Any]]:
    return [s for s in load_labelled(EVAL_DIR / "heldout.yaml")
            if int(s["id"].rsplit("-", 1)[1]) % 2 == parity]


def _train() -> list[dict[str, Any]]:
    return [s for name in TRAIN_FILES for s in load_labelled(EVAL_DIR / name)]


def _dev2() -> list[dict[str, Any]]:
    return load_labelled(EVAL_DIR / "dev2.yaml")


def _hard_negatives(stories: list[dict[str, Any]]) -> set[str]:
    # hard negatives carry a "kind"; heldout.yaml and dev2.yaml mark positives kind: positive
    return {s["id"] for s in stories if s.get("kind") and FF not in (s.get("topics") or [])}


@pytest.fixture(scope="module")
def engine() -> TopicEngine:
    return TopicEngine.from_directory(ROOT / "deploy" / "topics", demonym_forms())


@pytest.fixture(scope="module")
def tuned(engine: TopicEngine) -> dict[str, TopicScore]:
    """Train + dev1: the stories every topic's rules were written and tuned on."""
    return evaluate(engine, _train() + _heldout(1))


@pytest.fixture(scope="module")
def per_set(engine: TopicEngine) -> dict[str, dict[str, TopicScore]]:
    return {"train": evaluate(engine, _train()), "dev1": evaluate(engine, _heldout(1)),
            "dev2": evaluate(engine, _dev2())}


@pytest.fixture(scope="module")
def test_half(engine: TopicEngine) -> dict[str, TopicScore]:
    """The even ids of heldout.yaml, never used for tuning."""
    return evaluate(engine, _heldout(0))


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


@pytest.mark.parametrize("name", ["train", "dev1", "dev2"])
def test_foreign_fighters_meets_its_targets_on_every_tuning_set(
    per_set: dict[str, dict[str, TopicScore]], name: str,
) -> None:
    ff = per_set[name][FF]
    assert ff.precision >= 0.9 and ff.recall >= 0.9, report(per_set[name])


def test_foreign_fighters_held_out_floor(test_half: dict[str, TopicScore]) -> None:
    # Measured once on the test half after the rules were frozen (2026-11-27, second
    # round): precision 0.86 (18 of 21 tags right), recall 0.75 (18 of 24 positives).
    # The first round's rules measured 0.92 / 0.46. These floors sit just below the
    # measurement — one more false alarm or one more miss fails — so CI catches a
    # regression; never tune on this half.
    ff = test_half[FF]
    assert ff.precision >= 0.85 and ff.recall >= 0.74, report(test_half)


def test_every_shipped_topic_is_usable(
    tuned: dict[str, TopicScore], test_half: dict[str, TopicScore]
) -> None:
    assert len(tuned) >= 4
    for name, score in tuned.items():
        assert score.tp + score.fn >= 5, f"{name}: too few labelled positives"
        assert score.precision >= 0.9 and score.recall >= 0.9, report(tuned)
    # test half, 3-4 positives per topic (measured 2026-11-27: drone strikes P 0.75 / R 1.00,
    # private military companies 1.00 / 1.00, sanctions evasion 1.00 / 0.75)
    for name, score in test_half.items():
        if name != FF:
            assert score.precision >= 0.7 and score.recall >= 0.7, report(test_half)


def test_hard_negatives_are_all_rejected(per_set: dict[str, dict[str, TopicScore]]) -> None:
    # every hard-negative kind of train, dev1 and dev2 (firefighters, combat sports, fighter
    # jets, foreign ministers, prisoner swaps, own soldiers, peacekeepers, exercises, ...)
    for name, stories in (("train", _train()), ("dev1", _heldout(1)), ("dev2", _dev2())):
        assert not _hard_negatives(stories) & set(per_set[name][FF].false_alarms), name
