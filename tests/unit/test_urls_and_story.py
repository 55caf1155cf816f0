import json

import pytest

from pipeline.errors import PermanentError
from pipeline.story import SCHEMA_VERSION, Content, Story
from pipeline.urls import InvalidURL, canonical_url, story_id


def test_tracking_parameters_port_and_fragment_do_not_change_identity() -> None:
    a = "http://WWW.Example.com:80/news/story/?utm_source=rss&fbclid=x&b=2&a=1#comments"
    b = "https://example.com/news/story?a=1&b=2"
    assert story_id(a) == story_id(b)
    assert canonical_url(a) == "http://www.example.com/news/story/?a=1&b=2"


def test_meaningful_query_parameters_keep_stories_apart() -> None:
    assert story_id("https://site.test/article?id=1") != story_id("https://site.test/article?id=2")
    assert story_id("https://site.test/a") != story_id("https://other.test/a")


def test_non_http_urls_are_rejected() -> None:
    for bad in ("", "mailto:editor@site.test", "/relative/path", "ftp://site.test/x"):
        with pytest.raises(InvalidURL):
            canonical_url(bad)


def test_story_round_trips_through_json() -> None:
    story = Story.from_link(
        "https://news.test/a?utm_medium=feed", source="News", content=Content(title="T", text="Body")
    )
    raw = story.to_bytes()
    assert json.loads(raw)["schema_version"] == SCHEMA_VERSION
    again = Story.from_bytes(raw)
    assert again == story
    assert again.url == "https://news.test/a"
    assert again.title == "T" and again.text == "Body"


def test_unknown_fields_from_newer_producers_survive() -> None:
    raw = b'{"schema_version":1,"id":"x","url":"https://a.test/","future_field":{"k":1}}'
    assert b'"future_field"' in Story.from_bytes(raw).to_bytes()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe not json", "undecodable"),
        (b'{"url": "https://a.test/"}', "id"),
        (b'{"id": "x", "url": "https://a.test/", "schema_version": 99}', "newer"),
        (None, "empty"),
    ],
)
def test_undecodable_values_are_permanent_errors(raw: bytes | None, reason: str) -> None:
    with pytest.raises(PermanentError, match=reason):
        Story.from_bytes(raw)
