"""The topic engine on small hand-made definitions: every rule kind, evidence, errors."""

from pathlib import Path

import pytest
import yaml

from processors.gazetteer import demonym_forms
from processors.topic_rules import TopicDefinitionError, load_topics, parse_topic
from processors.topics import TopicEngine

DEMONYMS = {"Colombian": "CO", "Colombians": "CO", "Russian": "RU"}


def engine(**definition: object) -> TopicEngine:
    data = {"name": "t", "threshold": 10, **definition}
    return TopicEngine([parse_topic(data, "test.yaml", DEMONYMS)])


def test_weighted_terms_add_up_to_the_threshold() -> None:
    eng = engine(terms={"mercenar*": 5, "recruited": 5})
    assert eng.classify(None, "A mercenary was recruited.") != []
    assert eng.classify(None, "A mercenary was seen.") == []  # 5 < 10
    assert eng.explain(None, "Mercenaries and more mercenaries.")["t"] == 10  # prefix, counted twice


def test_max_per_rule_caps_a_repeated_word() -> None:
    eng = engine(terms={"war": 4}, max_per_rule=2)
    assert eng.explain(None, "war war war war war")["t"] == 8


def test_title_weight_multiplies_headline_matches() -> None:
    eng = engine(terms={"mercenary": 8}, title_weight=1.5)
    assert eng.explain("Mercenary held", "Nothing here.")["t"] == 12
    assert eng.explain(None, "Mercenary held.")["t"] == 8


def test_proximity_group_needs_both_lists_within_the_distance() -> None:
    eng = engine(groups=[{"name": "g", "weight": 10, "within": 3,
                          "all": [["@nat nationals"], ["fight* for"]]}],
                 classes={"nat": {"from": "demonyms", "except": ["RU"]}})
    assert eng.classify(None, "Colombian nationals were fighting for the army.")
    # too far apart: five words in between
    assert not eng.classify(None, "Colombian nationals one two three four five fighting for it.")
    # the excluded demonym does not count
    assert not eng.classify(None, "Russian nationals were fighting for the army.")


def test_sentence_groups_do_not_cross_sentences() -> None:
    eng = engine(groups=[{"name": "g", "weight": 10, "within": "sentence",
                          "all": [["volunteers"], ["front"]]}])
    assert eng.classify(None, "Volunteers went to the front line.")
    assert not eng.classify(None, "Volunteers arrived. The front line moved.")


def test_exclusions_mask_their_words_and_negative_weights_subtract() -> None:
    eng = engine(terms={"fighter*": 10, "ufc": -10}, exclude=["fighter jet*", "fire fighter*"])
    assert eng.classify(None, "A fighter was captured.")
    assert not eng.classify(None, "A fighter jet was delivered.")
    assert not eng.classify(None, "Fire fighters were sent abroad.")
    assert not eng.classify(None, "The fighter won his UFC bout.")


def test_gaps_skip_a_few_words_and_classes_compose() -> None:
    eng = engine(classes={"serve": ["joined", "sign* ~2 contract* with"],
                          "army": ["army", "unit"],
                          "membership": ["@serve ~2 @army"]},
                 terms={"@membership": 10})
    [tag] = eng.classify(None, "They signed one-year contracts with the Russian army.")
    assert tag.evidence[0].matched == ["signed one-year contracts with the Russian army"]
    assert eng.classify(None, "He joined a Ukrainian unit.")
    assert eng.classify(None, "He joined the army.")  # a gap may be empty
    # too many words in between
    assert not eng.classify(None, "He joined a small and poorly equipped unit.")


def test_plural_demonym_class() -> None:
    eng = engine(classes={"people": {"from": "demonyms", "forms": "plural"}},
                 terms={"@people": 10})
    assert eng.classify(None, "Two Colombians were held.")
    assert not eng.classify(None, "A Colombian ship was held.")


def test_require_any_needs_a_group_to_fire() -> None:
    eng = engine(terms={"mercenary": 10}, require_any=["g"],
                 groups=[{"name": "g", "weight": 1, "within": 5, "all": [["mercenary"], ["paid"]]}])
    assert not eng.classify(None, "A mercenary.")
    assert eng.classify(None, "A mercenary was paid.")


def test_tag_carries_relative_score_and_sentence_evidence() -> None:
    eng = engine(terms={"mercenar*": 6, "recruit*": 6})
    text = "Officials met on Monday. Mercenaries were recruited online. The weather was fine."
    [tag] = eng.classify(None, text)
    assert tag.name == "t"
    assert tag.score == 1.2
    assert tag.evidence[0].text == "Mercenaries were recruited online."
    assert tag.evidence[0].start == text.index("Mercenaries")
    assert set(tag.evidence[0].matched) == {"Mercenaries", "recruited"}
    [headline] = eng.classify("Mercenaries recruited", "Nothing.")
    assert headline.evidence[0].start is None  # the passage is the headline


def test_one_word_class_entries_are_one_set_lookup() -> None:
    # "@nat @who" would be every demonym times every noun; one-word entries fold into a set
    topic = parse_topic({"name": "t", "threshold": 10,
                         "classes": {"nat": {"from": "demonyms"},
                                     "who": ["men", "volunteers", "ex soldiers"]},
                         "terms": {"@nat @who": 10}}, "t.yaml", DEMONYMS)
    assert len(topic.terms["@nat @who"][1]) == 2  # {demonyms} x ({men, volunteers} | ex soldiers)
    eng = TopicEngine([topic])
    assert eng.classify(None, "Colombian men and Colombian ex-soldiers.")
    assert eng.explain(None, "Russian volunteers.")["t"] == 10
    assert eng.explain(None, "Russian students.")["t"] == 0


def test_country_class_names_countries() -> None:
    eng = engine(classes={"land": {"from": "countries", "except": ["RU"]}},
                 terms={"men from @land": 10})
    assert eng.classify(None, "Men from Nepal and men from Sri Lanka.")
    assert not eng.classify(None, "Men from Russia.")


def test_min_countries_needs_two_countries_in_the_sentence() -> None:
    # a nationality in another country's war, not a country's own people in its own war
    eng = engine(groups=[{"name": "g", "weight": 10, "within": "sentence", "min_countries": 2,
                          "all": [["@nat men"], ["fought"]]}],
                 classes={"nat": {"from": "demonyms"}})
    assert eng.classify(None, "Colombian men fought for the Russian army.")
    assert not eng.classify(None, "Colombian men fought in the jungle.")
    assert not eng.classify(None, "Colombian men arrived in Moscow. They fought.")


def test_outside_needs_a_country_beyond_the_war() -> None:
    # "Ecuadorian citizens ... a Ukrainian brigade" names a third country; Ukrainian citizens
    # joining their own army against Russia do not
    eng = engine(groups=[{"name": "g", "weight": 10, "within": "sentence", "min_countries": 2,
                          "outside": ["RU", "UA"], "all": [["citizens"], ["joined"]]}])
    assert eng.classify(None, "Citizens of Ecuador joined a Ukrainian brigade.")
    assert not eng.classify(None, "Ukrainian citizens joined the army to fight Russia.")


def test_negative_groups_subtract() -> None:
    eng = engine(terms={"volunteers": 12},
                 groups=[{"name": "history", "weight": -20, "within": "sentence",
                          "all": [["memorial"], ["1936"]]}])
    assert eng.classify(None, "Volunteers arrived.")
    assert not eng.classify(None, "A memorial to the volunteers of 1936.")


def test_place_class_names_towns_of_a_country() -> None:
    eng = engine(classes={"town": {"from": "places", "except": ["UA"]}},
                 terms={"man from @town": 10})
    assert eng.classify(None, "A man from Nakuru was captured.")
    assert eng.classify(None, "A man from Kathmandu was captured.")
    assert not eng.classify(None, "A man from Kharkiv was captured.")


def test_sentence_groups_count_once_per_sentence() -> None:
    eng = engine(groups=[{"name": "g", "weight": 6, "within": "sentence",
                          "all": [["@nat"], ["battle"]]}],
                 classes={"nat": {"from": "demonyms"}})
    assert eng.explain(None, "Colombian and Russian crews battle on.")["t"] == 6
    assert eng.explain(None, "Colombian crews battle on. Russian crews battle on.")["t"] == 12


def test_supporting_groups_never_tag_alone() -> None:
    eng = engine(terms={"mercenar*": 4},
                 groups=[{"name": "weak", "weight": 10, "within": "sentence", "supporting": True,
                          "all": [["colombian"], ["fought"]]}])
    assert not eng.classify(None, "A Colombian fought.")
    assert eng.explain(None, "A Colombian fought.")["t"] == 0
    assert eng.explain(None, "A Colombian mercenary fought.")["t"] == 14


def test_exclusions_do_not_mask_negative_terms() -> None:
    # "battle forest fires" takes "battle" away from the topic; "forest fires" still subtracts
    eng = engine(terms={"battle": 10, "volunteers": 10, "forest fire*": -10},
                 exclude=["battl* ~3 fires"])
    assert eng.explain(None, "Volunteers battle forest fires.")["t"] == 0
    assert eng.explain(None, "Volunteers joined the battle.")["t"] == 20


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"threshold": 1, "terms": {"a": 1}}, "'name' and 'threshold' are required"),
        ({"name": "x", "threshold": 1}, "needs terms or groups"),
        ({"name": "x", "threshold": 1, "terms": {"@nope": 1}}, "unknown class"),
        ({"name": "x", "threshold": 1, "terms": {"a*": 1}}, "too short"),
        ({"name": "x", "threshold": 1, "terms": {"a": 1}, "colour": 1}, "unknown keys"),
        ({"name": "x", "threshold": 1, "groups": [{"all": [["a"]]}]}, "two or more lists"),
        ({"name": "x", "threshold": 1, "terms": {"a": 1}, "require_any": ["g"]}, "unknown groups"),
        ({"name": "x", "threshold": 1, "terms": {"~2 a": 1}}, "begin and end with a word"),
        ({"name": "x", "threshold": 1, "terms": {"a ~2": 1}}, "begin and end with a word"),
        ({"name": "x", "threshold": 1, "terms": {"a ~9 b": 1}}, "must be ~1 to ~5"),
        ({"name": "x", "threshold": 1, "terms": {"@c": 1}, "classes": {"c": {"from": "towns"}}},
         "'from' must be one of"),
    ],
)
def test_malformed_definitions_fail_with_the_file_name(definition: dict, message: str) -> None:
    with pytest.raises(TopicDefinitionError, match=message) as info:
        parse_topic(definition, "bad.yaml", DEMONYMS)
    assert str(info.value).startswith("bad.yaml: ")


def test_adding_a_topic_is_adding_a_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"name": "a", "threshold": 1, "terms": {"x": 1}}))
    (tmp_path / "_notes.yaml").write_text("not: a topic")
    assert [t.name for t in load_topics(tmp_path, DEMONYMS)] == ["a"]
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"name": "a", "threshold": 1, "terms": {"y": 1}}))
    with pytest.raises(TopicDefinitionError, match="duplicate topic names"):
        load_topics(tmp_path, DEMONYMS)
    (tmp_path / "b.yaml").write_text("name: [unclosed")
    with pytest.raises(TopicDefinitionError, match="invalid YAML"):
        load_topics(tmp_path, DEMONYMS)


def test_shipped_topics_load() -> None:
    root = Path(__file__).resolve().parents[2] / "deploy" / "topics"
    topics = load_topics(root, demonym_forms())
    assert "foreign-fighters" in [t.name for t in topics]
