"""The shipped topics on REAL published news: the quality measure CI holds (issue 8).

tests/data/topic-real holds real text only, each record with its source: the aeb and
news4k article bodies (labels here, bodies read from ../shared/corpora: "general"
stories with the real base rate) and real articles about the shipped topics and the
same wars without them (positives and hard negatives, from stored public pages, in
English and five other languages). ``split_of`` (a hash of the source, fixed before
any tuning) puts half in dev, half in test.

Round 1 chose every check's calibration, thresholds and descriptions on dev and read
test once (commit ab14907): test is still the measure of the three topics that later
rounds did not touch. Each later round refitted foreign-fighters on everything before
it, froze the check, and was then measured once on records collected after the freeze
by people who had not seen the rules (round 2: 06ada1d, round-2/; round 3: 2a01f3f,
round-3/, which no tuning script reads). Figures: processors/README.md.
"""

from collections import Counter
from pathlib import Path

import pytest
import yaml

from pipeline.settings import load_settings
from processors.evaluation import TOPIC_NAMES, RealScore, RealStory, evaluate_real, load_real, real_report
from processors.gazetteer import demonym_forms
from processors.topics import TopicEngine

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "tests" / "data" / "topic-real"
FF = "foreign-fighters"
# Issue 8's targets for foreign-fighters are precision and recall 0.95 and at most 1 false
# alarm per 1,000 general stories. Measured once on the round-3 set after the round-3
# freeze (2a01f3f): precision 0.97 (90 of 93), recall 0.90 (90 of 100), 0 false alarms in
# 357 general stories. Precision meets its target; recall does not. These floors hold the
# measured level (one more false alarm and one more miss still pass) so that a change can
# only keep or raise it. Raise recall's floor to the target when it is met.
FLOORS = {FF: {"precision": 0.95, "recall": 0.89, "false_alarms_per_1000": 3.0}}
# the other topics: issue 8's targets, asserted for the topics not marked experimental
OTHER_TARGETS = {"recall": 0.9, "false_alarms_per_1000": 2.0}


@pytest.fixture(scope="module")
def engine() -> TopicEngine:
    return TopicEngine.from_directory(ROOT / "deploy" / "topics", demonym_forms())


@pytest.fixture(scope="module")
def test_split() -> list[RealStory]:
    corpora = load_settings().shared_dir / "corpora"
    if not corpora.is_dir():
        pytest.skip(f"shared corpora not found at {corpora} (set NEWSWATCH_SHARED_DIR): "
                    "the general stories' bodies live there")
    return [s for s in load_real(REAL, corpora) if s.split == "test"]


# the newest measured round. Since the round-4 freeze (17ba2db) round 3 is tuning data too,
# so until round 4's records are in and read these floors guard against regressions on it;
# they no longer measure unseen text (processors/README.md, "Round 4").
MEASURE = "round-3"


@pytest.fixture(scope="module")
def held_out() -> list[RealStory]:
    # carries its own general stories: needs no shared corpora
    return [s for s in load_real(REAL, None) if s.split == MEASURE]


@pytest.fixture(scope="module")
def english(engine: TopicEngine, test_split: list[RealStory]) -> dict[str, RealScore]:
    return evaluate_real(engine, test_split, languages=("en",))


@pytest.fixture(scope="module")
def held_out_english(engine: TopicEngine, held_out: list[RealStory]) -> dict[str, RealScore]:
    return evaluate_real(engine, held_out, languages=("en",))


def test_the_real_set_is_real_sourced_and_big_enough() -> None:
    stories = load_real(REAL, None)  # the web records, without the shared corpora
    assert all(s.source.startswith(("http://", "https://", "github:")) for s in stories)
    assert len({s.source for s in stories}) == len(stories), "one record per source"
    assert all(set(s.labels) == set(TOPIC_NAMES) for s in stories)
    ff_en = [s for s in stories if s.labels[FF] and s.language == "en"]
    assert len(ff_en) >= 50
    per_language = Counter(s.language for s in stories if s.labels[FF])
    assert sum(n for lang, n in per_language.items() if lang != "en") >= 30, per_language
    round_one = Counter(s.split for s in stories if s.split in ("dev", "test"))
    assert min(round_one.values()) >= 0.35 * sum(round_one.values()), round_one


def test_the_held_out_set_is_new_text_and_big_enough(held_out: list[RealStory]) -> None:
    tuning = {s.source for s in load_real(REAL, None) if s.split != MEASURE}
    assert not tuning & {s.source for s in held_out}, "a held-out record is also tuning data"
    texts = [s.text[:200] for s in held_out]
    assert len(set(texts)) == len(texts), "one record per story"
    assert sum(s.labels[FF] for s in held_out if s.language == "en") >= 90
    assert sum(s.labels[FF] for s in held_out if s.language != "en") >= 90
    assert sum(s.kind == "general" for s in held_out) >= 350


def test_the_general_stories_carry_the_real_base_rate(test_split: list[RealStory]) -> None:
    general = [s for s in test_split if s.kind == "general"]
    assert len(general) >= 250  # about half of the 602 aeb + news4k bodies
    assert sum(s.labels[FF] for s in general) <= 3  # nearly all unrelated, as in real news


def test_foreign_fighters_holds_its_measured_level_on_held_out_english_news(
    held_out_english: dict[str, RealScore],
) -> None:
    score = held_out_english[FF]
    assert score.tp + score.fn >= 90 and score.general >= 350, real_report(held_out_english)
    for measure, target in FLOORS[FF].items():
        value = getattr(score, measure)
        ok = value <= target if measure == "false_alarms_per_1000" else value >= target
        assert ok, f"{FF} {measure} {value:.3f} misses {target}\n{real_report(held_out_english)}"


def test_every_non_experimental_topic_meets_its_targets(
    engine: TopicEngine, english: dict[str, RealScore], held_out_english: dict[str, RealScore],
) -> None:
    # recall on round 1's test split (later rounds did not touch these topics, and their
    # sets were gathered for foreign-fighters); false alarms on its and round 3's general
    # stories (round 2's general stories are tuning data of foreign-fighters only, but the
    # rounds keep one measure per topic: test, then round 3)
    for name, score in english.items():
        if name == FF or engine.definition(name).experimental:
            continue
        assert score.recall >= OTHER_TARGETS["recall"], real_report(english)
        for scores in (english, held_out_english):
            assert scores[name].false_alarms_per_1000 <= OTHER_TARGETS["false_alarms_per_1000"], \
                real_report(scores)


def test_foreign_fighters_beyond_english(engine: TopicEngine, held_out: list[RealStory]) -> None:
    # ar, de, es, fr, it, pt, ru, tr, uk: trigger stems propose, the same multilingual
    # check decides. Measured once after the round-3 freeze: precision 0.81 (95 of 118),
    # recall 0.92 (95 of 103); the floors hold that level (one more false alarm and one
    # more miss pass).
    others = tuple(sorted({s.language for s in held_out} - {"en"}))
    scores = evaluate_real(engine, held_out, languages=others)[FF]
    assert scores.tp + scores.fn >= 80, real_report({FF: scores})
    assert scores.precision >= 0.79 and scores.recall >= 0.91, real_report({FF: scores})


def test_default_subscriptions_alert_only_on_calibrated_non_experimental_topics(
    engine: TopicEngine,
) -> None:
    for path in sorted((ROOT / "deploy" / "subscriptions").glob("*.yaml")):
        sub = yaml.safe_load(path.read_text(encoding="utf-8"))
        for name in sub["topics"]:
            topic = engine.definition(name)
            assert not topic.experimental, f"{path.name}: {name} is experimental"
            assert topic.check is not None and "rules" in topic.check.calibration, name
            assert sub["filters"]["minimum_score"] >= topic.check.alert_score, path.name
