"""The composed enricher and ``newswatch enrich`` on the walking-skeleton story."""

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.settings import load_settings
from pipeline.story import Content, FeedEntry, Story
from processors.cli_enrich import run_enrich
from processors.enricher import Enricher
from processors.keyphrases import extract_keyphrases

TITLE = "Two Colombians captured fighting for Russia near Pokrovsk"
TEXT = (
    "Two Colombian nationals were captured while fighting for Russia near Pokrovsk, Ukraine's "
    "military intelligence (HUR) said on Tuesday. The men told interrogators they had been "
    "recruited through online adverts promising $2,000 a month. President Volodymyr Zelenskyy "
    "said foreign mercenaries would face trial. Zelensky added that North Korean soldiers and "
    "Chinese citizens had also been captured in the Kursk region. Colombian President Gustavo "
    "Petro said Bogota would seek their return."
)


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher.from_settings(load_settings({}))


def skeleton_story() -> Story:
    return Story.from_link(
        "https://news.test/colombians", content=Content(title=TITLE, text=TEXT, language="en")
    )


def test_walking_skeleton_story_is_fully_enriched(enricher: Enricher) -> None:
    story = enricher(skeleton_story())
    e = story.enrichment
    assert e is not None
    assert e.language == "en" and e.language_confidence and e.language_confidence > 0.9
    people = {x.name for x in e.entities if x.type == "person"}
    assert people == {"Volodymyr Zelensky", "Gustavo Petro"}
    places = {x.name: x.country for x in e.entities if x.type == "place"}
    assert places["Pokrovsk"] == "UA" and places["Kursk"] == "RU" and places["Bogota"] == "CO"
    # CN and KP are named only by nationality
    assert {"CO", "RU", "UA", "KP", "CN"} <= set(e.countries)
    [tag] = [t for t in e.topics if t.name == "foreign-fighters"]
    # tagged by the meaning check: a probability, with the rules' part beside it
    assert 0.5 <= tag.score <= 1.0 and tag.rule_score is not None and tag.rule_score >= 1.0
    # the evidence names the captured Colombians (the headline or the first sentence)
    assert any(w.startswith("Colombian") for ev in tag.evidence for w in ev.matched)
    assert all(ev.text in (TITLE, *TEXT.split(". ")) or ev.text in TEXT for ev in tag.evidence)
    assert e.content_hash and e.cluster_id == story.id
    assert "online adverts" in " ".join(e.keyphrases)


def test_a_story_without_text_is_enriched_from_headline_and_summary(enricher: Enricher) -> None:
    story = Story.from_link(
        "https://news.test/summary-only",
        feed=FeedEntry(feed_url="https://news.test/rss", link="https://news.test/summary-only",
                       title="Nepali men recruited to fight for Russia",
                       summary="The bodies of three Nepali men killed fighting for Russia were "
                               "repatriated to Kathmandu.", language="en"),
    )
    e = enricher(story).enrichment
    assert e is not None and e.language == "en"
    assert "NP" in e.countries
    assert [t.name for t in e.topics] == ["foreign-fighters"]


def test_a_story_with_nothing_passes_through_with_an_empty_enrichment(enricher: Enricher) -> None:
    e = enricher(Story.from_link("https://news.test/empty")).enrichment
    assert e is not None
    assert e.language is None and e.entities == [] and e.topics == [] and e.content_hash is None


def test_keyphrases_prefer_repeated_multiword_phrases() -> None:
    text = ("Online adverts lured recruits. The online adverts promised money. "
            "Recruiters placed online adverts on social media.")
    phrases = extract_keyphrases("Online adverts lure recruits", text)
    assert phrases[0] == "online adverts"
    assert "the" not in phrases


def test_enrich_lines_reports_and_skips_malformed_lines(enricher: Enricher) -> None:
    lines = "\n".join([
        json.dumps({"id": "s1", "title": TITLE, "text": TEXT}),
        "{not json",
        json.dumps({"title": "no id"}),
        json.dumps(["a", "list"]),
        "",
        json.dumps({"id": 7, "title": "Fighter jets", "text": "Norway delivered F-16 fighter jets."}),
    ]) + "\n"
    out, err = io.StringIO(), io.StringIO()
    written, skipped = run_enrich(enricher, io.StringIO(lines), out, err, progress_every_s=0)
    assert (written, skipped) == (2, 3)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["id"] for r in records] == ["s1", "7"]
    assert records[0]["topics"][0]["name"] == "foreign-fighters"
    assert records[0]["topics"][0]["evidence"]
    assert {"name": "Pokrovsk", "country": "UA"} in records[0]["places"]
    assert records[1]["topics"] == []
    assert set(records[0]) >= {"language", "entities", "countries", "places", "topics",
                               "keyphrases", "cluster_id", "content_hash"}
    messages = err.getvalue()
    assert "line 2: skipped: invalid JSON" in messages
    assert "line 3: skipped: missing or invalid 'id'" in messages
    assert "line 4: skipped: expected a JSON object" in messages
    assert "lines read" in messages  # progress
    assert "done: 2 written, 3 skipped" in messages


def test_enrich_command_end_to_end(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "s1", "title": TITLE, "text": TEXT}) + "\nbad\n")
    result = CliRunner().invoke(main, ["enrich", str(source), "-o", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 0, result.output
    [record] = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert record["id"] == "s1" and record["language"] == "en"
    assert "line 2: skipped" in result.stderr


def test_enrich_command_rejects_a_bad_topics_dir(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("name: x\n")
    result = CliRunner().invoke(main, ["enrich", "--topics-dir", str(tmp_path)], input="")
    assert result.exit_code == 2
    assert "broken.yaml" in result.stderr
