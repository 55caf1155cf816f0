"""Entities by gazetteer and rules: aliases merge, demonyms map to countries, ISO codes."""

from processors.entities import countries_of, extract_entities, name_key


def by_type(text: str) -> dict[str, dict[str, tuple[str | None, int]]]:
    out: dict[str, dict[str, tuple[str | None, int]]] = {}
    for e in extract_entities(text):
        out.setdefault(e.type, {})[e.name] = (e.country, e.mentions)
    return out


def test_aliases_of_one_person_merge() -> None:
    found = by_type("Volodymyr Zelensky spoke. Zelenskyy said more. Later Zelenskiy left.")
    assert found["person"] == {"Volodymyr Zelensky": (None, 3)}


def test_demonyms_map_to_their_countries() -> None:
    ents = extract_entities("North Korean soldiers and Chinese citizens were seen. Two Colombians too.")
    nat = {e.name: e.country for e in ents if e.type == "nationality"}
    assert nat == {"North Korean": "KP", "Chinese": "CN", "Colombian": "CO"}
    assert countries_of(ents) == ["KP", "CN", "CO"]


def test_places_carry_iso_codes_and_country_aliases_normalise() -> None:
    found = by_type("Shelling hit Kharkov and Pokrovsk. The Russian Federation and Russia denied it; "
                    "officials in the U.S. and Türkiye and the UK's envoy commented.")
    assert found["place"]["Kharkiv"] == ("UA", 1)
    assert found["place"]["Pokrovsk"] == ("UA", 1)
    assert found["place"]["Russia"] == ("RU", 2)
    assert found["place"]["United States"][0] == "US"
    assert found["place"]["Turkey"][0] == "TR"
    assert found["place"]["United Kingdom"][0] == "GB"


def test_longest_match_wins_and_acronyms_are_case_sensitive() -> None:
    found = by_type("The Russian Volunteer Corps and the Indian Ocean. It is said IS claimed it.")
    assert "Russian Volunteer Corps" in found["organization"]
    assert "Islamic State" in found["organization"]
    assert "nationality" not in found  # "Russian" and "Indian" were parts of longer names
    assert found["organization"]["Islamic State"][1] == 1  # "is" (the verb) is not IS


def test_unknown_people_and_organisations_by_rules() -> None:
    text = ("Sergeant Ivan Kovalenko, 34, described the unit. Kovalenko said the 47th Separate "
            "Mechanised Brigade held. Maria Ortega told reporters she was afraid.")
    found = by_type(text)
    assert found["person"]["Ivan Kovalenko"] == (None, 2)
    assert "Maria Ortega" in found["person"]
    assert any("Mechanised Brigade" in name for name in found["organization"])


def test_lowercase_words_are_not_names() -> None:
    assert extract_entities("the wagner family sold amnesty cards in georgia") == []


def test_name_key_tolerates_transliteration() -> None:
    assert name_key("Zelenskyy") == name_key("Zelenskiy") == name_key("Zelensky")
    assert name_key("Syrskyi") == name_key("Syrsky")
