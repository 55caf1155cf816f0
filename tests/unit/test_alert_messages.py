"""Alert JSON: new alerts, cluster updates, state rebuilt from alert topics, Kibana links."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from processors.alerter import AlertState, kibana_link, new_alert, update_alert
from processors.subscriptions import load_subscriptions
from tests.unit.test_es_document import make_story


def _sub(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "s.yaml").write_text("name: ff\ntopics: [foreign-fighters]\n")
    return load_subscriptions(tmp_path)[0]


def test_new_alert_has_the_fields_analysts_need(tmp_path: Path) -> None:
    sub = _sub(tmp_path)
    story = make_story(cluster_id="c1")
    tags = sub.match(story)
    assert tags is not None
    alert = new_alert(sub, story, tags, "http://kibana:5601/", "c1")
    assert alert["event"] == "new"
    assert alert["story_id"] == story.id
    assert alert["title"] == story.title
    assert alert["url"] == story.url
    assert alert["source"] == "Example News"
    assert alert["published_at"] == "2025-05-02T08:30:00+00:00"
    assert alert["topics"][0]["name"] == "foreign-fighters"
    assert alert["topics"][0]["evidence"][0]["matched"] == ["recruited"]
    assert alert["cluster_size"] == 1
    assert alert["kibana_url"].startswith("http://kibana:5601/app/discover#/")


def test_update_keeps_the_first_story_and_counts_copies(tmp_path: Path) -> None:
    sub = _sub(tmp_path)
    first = make_story("https://a.example/1", cluster_id="c1")
    second = make_story("https://b.example/2", cluster_id="c1", source="B")
    alert = new_alert(sub, first, sub.match(first) or [], "http://k", "c1")
    updated = update_alert(alert, second, sub.match(second) or [])
    assert updated["event"] == "update"
    assert updated["story_id"] == first.id  # same Kafka key as the first alert
    assert updated["cluster_size"] == 2
    assert updated["cluster_story_ids"] == [first.id, second.id]
    assert updated["latest"]["story_id"] == second.id
    assert alert["cluster_size"] == 1  # the original is not mutated


def test_state_rebuilt_from_alerts_knows_every_copy(tmp_path: Path) -> None:
    sub = _sub(tmp_path)
    first = make_story("https://a.example/1", cluster_id="c1")
    second = make_story("https://b.example/2", cluster_id="c1")
    alert = new_alert(sub, first, sub.match(first) or [], "http://k", "c1")
    state = AlertState()
    state.record(alert)
    state.record(update_alert(alert, second, sub.match(second) or []))
    known = state.get("ff", "c1")
    assert known is not None
    assert set(known.story_ids) == {first.id, second.id}
    assert known.alert["cluster_size"] == 2
    assert state.get("ff", "c2") is None
    assert state.get("other", "c1") is None


def test_kibana_link_filters_on_the_story_id() -> None:
    link = kibana_link("http://127.0.0.1:5601", "0123abcd")
    decoded = unquote(link)
    assert "dataViewId:newswatch-stories" in decoded
    assert "query:'id:\"0123abcd\"'" in decoded
    assert " " not in link


def test_cluster_state_expires_with_age_oldest_first(tmp_path: Path) -> None:
    sub = _sub(tmp_path)
    now = [1_000_000.0]
    state = AlertState(max_age_s=3600, clock=lambda: now[0])
    stories = [make_story(f"https://a.example/{i}", cluster_id=f"c{i}") for i in range(3)]
    alerts = [new_alert(sub, s, sub.match(s) or [], "http://k", f"c{i}")
              for i, s in enumerate(stories)]
    state.record(alerts[0])
    now[0] += 1800
    state.record(alerts[1])
    state.record(alerts[2], at=now[0] - 7200)  # read back from a topic, already too old
    assert len(state) == 2
    now[0] += 1200
    # an update keeps a cluster alive: c0 alerted again, c1 not
    state.record(update_alert(alerts[0], make_story("https://b.example/0", cluster_id="c0"),
                              sub.match(stories[0]) or []))
    now[0] += 3000  # c1 last alerted 4200 s ago, c0 3000 s ago
    assert state.get("ff", "c1") is None
    assert state.get("ff", "c0") is not None
    assert len(state) == 1
    assert "latest" not in state.clusters[("ff", "c0")].alert  # replaced by every update anyway
