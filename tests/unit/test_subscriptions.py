"""Subscription files: loading, validation errors, and matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.settings import load_settings
from processors.subscriptions import SubscriptionError, load_subscriptions
from tests.unit.test_es_document import make_story


def _write(directory: Path, name: str, text: str) -> None:
    (directory / name).write_text(text, encoding="utf-8")


def test_shipped_subscriptions_load() -> None:
    subs = load_subscriptions(load_settings({}).subscriptions_dir)
    by_name = {s.name: s for s in subs}
    assert by_name["foreign-fighters"].topics == ["foreign-fighters"]
    assert by_name["foreign-fighters"].alert_topic == "alerts.foreign-fighters"


def test_unknown_key_fails_with_the_file_name(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "name: a\ntopics: [x]\nfilter:\n  languages: [en]\n")
    with pytest.raises(SubscriptionError, match=r"a\.yaml.*filter"):
        load_subscriptions(tmp_path)


def test_bad_country_code_and_bad_name_fail(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "name: a\nfilters:\n  countries: [Ukraine]\n")
    with pytest.raises(SubscriptionError, match="alpha-2"):
        load_subscriptions(tmp_path)
    _write(tmp_path, "a.yaml", "name: 'Bad Name!'\n")
    with pytest.raises(SubscriptionError, match="name"):
        load_subscriptions(tmp_path)


def test_duplicate_names_fail(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "name: same\n")
    _write(tmp_path, "b.yml", "name: same\n")
    with pytest.raises(SubscriptionError, match="already used"):
        load_subscriptions(tmp_path)


def test_missing_directory_means_no_subscriptions(tmp_path: Path) -> None:
    assert load_subscriptions(tmp_path / "absent") == []


def _sub(tmp_path: Path, body: str):  # type: ignore[no-untyped-def]
    _write(tmp_path, "s.yaml", "name: s\n" + body)
    return load_subscriptions(tmp_path)[0]


def test_topic_and_minimum_score(tmp_path: Path) -> None:
    sub = _sub(tmp_path, "topics: [foreign-fighters]\nfilters: {minimum_score: 3}\n")
    assert [t.name for t in sub.match(make_story(topics=[("foreign-fighters", 4.0)])) or []] == \
        ["foreign-fighters"]
    assert sub.match(make_story(topics=[("foreign-fighters", 2.9)])) is None
    assert sub.match(make_story(topics=[("ukraine-war", 9.0)])) is None
    assert sub.match(make_story(topics=[])) is None


def test_empty_topics_match_any_tag(tmp_path: Path) -> None:
    sub = _sub(tmp_path, "topics: []\n")
    assert sub.match(make_story(topics=[("anything", 1.0)])) is not None
    assert sub.match(make_story(topics=[])) is None


def test_language_country_entity_filters_all_apply(tmp_path: Path) -> None:
    sub = _sub(tmp_path, "topics: [foreign-fighters]\nfilters:\n  languages: [EN]\n"
                         "  countries: [co]\n  entities: [colombian]\n")
    assert sub.match(make_story()) is not None
    assert sub.match(make_story(language="es")) is None
    assert sub.match(make_story(countries=["UA"])) is None
    assert sub.match(make_story(entities=[("Nepali", "nationality")])) is None


def test_story_without_enrichment_never_matches(tmp_path: Path) -> None:
    sub = _sub(tmp_path, "topics: []\n")
    story = make_story().model_copy(update={"enrichment": None})
    assert sub.match(story) is None


def test_webhook_output_is_validated(tmp_path: Path) -> None:
    sub = _sub(tmp_path, "output:\n  webhook:\n    url: http://127.0.0.1:9/hook\n")
    assert sub.output.webhook is not None
    assert sub.output.webhook.url == "http://127.0.0.1:9/hook"
    with pytest.raises(SubscriptionError, match="url"):
        _sub(tmp_path, "output:\n  webhook:\n    url: ftp://nope\n")
