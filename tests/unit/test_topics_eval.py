"""The shipped topics on the labelled evaluation sets (tests/data/topic-eval).

Three sets (processors/README.md, "Evaluation"): the train set the rules were
written on (foreign-fighters.yaml, other-topics.yaml), and a held-out set
written by someone else without seeing the rules (heldout.yaml), split by id
parity: odd ids are the dev half (read and tuned on), even ids the test half
(never read; measured once, after the rules were frozen).
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


def _heldout(parity: int) -> list[dict[str, Any]]:
    return [s for s in load_labelled(EVAL_DIR / "heldout.yaml")
            if int(s["id"].rsplit("-", 1)[1]) % 2 == parity]


def _train() -> list[dict[str, Any]]:
    return [s for name in TRAIN_FILES for s in load_labelled(EVAL_DIR / name)]


@pytest.fixture(scope="module")
def engine() -> TopicEngine:
    return TopicEngine.from_directory(ROOT / "deploy" / "topics", demonym_forms())


@pytest.fixture(scope="module")
def tuned(engine: TopicEngine) -> dict[str, TopicScore]:
    """Train + dev: the stories the rules were written and tuned on."""
    return evaluate(engine, _train() + _heldout(1))


@pytest.fixture(scope="module")
def test_half(engine: TopicEngine) -> dict[str, TopicScore]:
    """The even ids of heldout.yaml, never used for tuning."""
    return evaluate(engine, _heldout(0))


def test_the_sets_are_big_enough_and_balanced() -> None:
    stories = load_labelled(EVAL_DIR / "foreign-fighters.yaml")
    positives = [s for s in stories if "foreign-fighters" in s["topics"]]
    assert len(stories) >= 60
    assert len(positives) >= 30 and len(stories) - len(positives) >= 30
    kinds = {s.get("kind") for s in stories}
    assert {"firefighters", "combat-sports", "fighter-jets", "foreign-ministers", "dual-use",
            "prisoner-swap", "foreign-workers"} <= kinds
    everything = load_labelled(EVAL_DIR)
    assert len({s["id"] for s in everything}) == len(everything)
    assert len(_train()) + len(_heldout(0)) + len(_heldout(1)) == len(everything)
    assert len(_heldout(0)) >= 50 and len(_heldout(1)) >= 50


def test_foreign_fighters_meets_its_targets_on_train_and_dev(
    tuned: dict[str, TopicScore],
) -> None:
    ff = tuned["foreign-fighters"]
    assert ff.precision >= 0.9 and ff.recall >= 0.9, report(tuned)


def test_foreign_fighters_held_out_floor(test_half: dict[str, TopicScore]) -> None:
    # The union of all sets does NOT reach recall 0.9: on the test half the rules
    # measured precision 0.92 and recall 0.46 (2026-11-27, one run after the rules
    # were frozen). These floors sit just below that measurement, so CI catches a
    # regression; raise them when the rules generalise better, never tune on this half.
    ff = test_half["foreign-fighters"]
    assert ff.precision >= 0.9 and ff.recall >= 0.44, report(test_half)


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
        if name != "foreign-fighters":
            assert score.precision >= 0.7 and score.recall >= 0.7, report(test_half)


def test_hard_negatives_are_all_rejected(tuned: dict[str, TopicScore]) -> None:
    # hard negatives carry a "kind"; heldout.yaml marks its positives kind: positive
    hard = {s["id"] for s in _train() + _heldout(1)
            if s.get("kind") and "foreign-fighters" not in (s.get("topics") or [])}
    assert not hard & set(tuned["foreign-fighters"].false_alarms)
