"""Feed list loading (YAML, OPML) with per-entry problems, export round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.feeds import load_feeds, load_opml, load_yaml, parse_duration, to_opml, to_yaml

YAML = """\
feeds:
  - url: https://example.org/rss
    name: Example
    language: EN
    country: ua
    tags: [war, europe]
    min_interval: 5m
    max_interval: 1d
  - url: not-a-url
    name: Broken
  - https://plain.example.net/feed.xml
  - url: https://example.org/rss
  - {url: "https://x.example.com/a", country: Ukraine}
  - {url: "https://y.example.com/a", min_interval: 2h, max_interval: 1h}
  - {url: "https://z.example.com/a", colour: red}
  - 42
"""

OPML = b"""<?xml version="1.0"?>
<opml version="2.0"><head><title>mine</title></head><body>
  <outline text="World">
    <outline type="rss" text="BBC" xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml"
             category="/news"/>
    <outline type="rss" text="Bad" xmlUrl="javascript:alert(1)"/>
  </outline>
  <outline type="rss" title="Kyiv" xmlUrl="https://kyivindependent.com/rss/" language="en"/>
  <outline text="empty folder"/>
</body></opml>
"""


def test_yaml_loads_valid_feeds_and_reports_each_bad_one_with_its_line() -> None:
    result = load_yaml(YAML, "feeds.yaml")
    assert [f.url for f in result.feeds] == [
        "https://example.org/rss", "https://plain.example.net/feed.xml"
    ]
    first = result.feeds[0]
    assert (first.language, first.country, first.tags) == ("en", "UA", ("war", "europe"))
    assert (first.min_interval, first.max_interval) == (300, 86400)
    problems = [str(p) for p in result.problems]
    assert problems[0].startswith("feeds.yaml: line 9: url: not an absolute http(s) URL")
    assert problems[1] == "feeds.yaml: line 12: duplicate feed https://example.org/rss"
    assert problems[2].startswith("feeds.yaml: line 13: country: country must be an ISO")
    assert problems[3] == "feeds.yaml: line 14: min_interval is larger than max_interval"
    assert problems[4].startswith("feeds.yaml: line 15: colour: Extra inputs")
    assert problems[5] == "feeds.yaml: line 16: a feed must be a mapping with a url"
    assert len(problems) == 6


@pytest.mark.parametrize(
    ("text", "expected"),
    [("feeds: [", "not valid YAML"), ("other: 1", "expected a top-level 'feeds:' list"),
     ("", "expected a top-level 'feeds:' list")],
)
def test_unusable_yaml_is_one_problem(text: str, expected: str) -> None:
    result = load_yaml(text, "f.yaml")
    assert result.feeds == [] and expected in str(result.problems[0])


def test_opml_folders_become_tags_and_bad_outlines_are_reported() -> None:
    result = load_opml(OPML, "mine.opml")
    assert [(f.name, f.tags) for f in result.feeds] == [("BBC", ("World", "news")),
                                                         ("Kyiv", ())]
    assert result.feeds[1].language == "en"
    assert [str(p) for p in result.problems] == [
        "mine.opml: line 6: url: not an absolute http(s) URL: 'javascript:alert(1)'",
        "mine.opml: line 9: outline without xmlUrl",
    ]


def test_broken_opml_is_reported_with_its_line() -> None:
    result = load_opml(b"<opml><body>\n<outline xmlUrl='x'>\n</body>", "x.opml")
    assert result.feeds == []
    assert str(result.problems[0]).startswith("x.opml: line 3: not valid XML")


def test_exports_round_trip(tmp_path: Path) -> None:
    feeds = load_yaml(YAML).feeds
    opml = tmp_path / "out.opml"
    opml.write_text(to_opml(feeds), encoding="utf-8")
    yml = tmp_path / "out.yaml"
    yml.write_text(to_yaml(feeds), encoding="utf-8")
    # OPML requires a text for every outline, so unnamed feeds come back named by host
    assert load_feeds(opml).feeds == [f.model_copy(update={"name": f.display_name}) for f in feeds]
    assert load_feeds(yml).feeds == feeds


def test_shipped_feed_lists_are_valid_and_agree() -> None:
    root = Path(__file__).resolve().parents[2] / "deploy"
    yaml_list = load_feeds(root / "feeds.yaml")
    opml_list = load_feeds(root / "feeds.opml")
    assert yaml_list.problems == [] and opml_list.problems == []
    assert len(yaml_list.feeds) >= 20
    assert [f.url for f in yaml_list.feeds] == [f.url for f in opml_list.feeds]


@pytest.mark.parametrize(("value", "seconds"),
                         [(300, 300), ("300", 300), ("5m", 300), ("1.5h", 5400), ("1d", 86400)])
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


def test_bad_duration() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")
