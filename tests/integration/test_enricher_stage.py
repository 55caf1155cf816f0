"""The enricher stage on the real broker: articles in, enriched stories out, bad input dead-lettered,
and the near-duplicate window survives a restart by reading news.enriched back."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, KafkaProducer

from pipeline.kafka_io import ARTICLES, DLQ, ENRICHED
from pipeline.settings import Settings
from pipeline.story import Content, Story
from processors import enricher

pytestmark = pytest.mark.integration

TEXT = (
    "Two Colombian nationals were captured while fighting for Russia near Pokrovsk, Ukraine's "
    "military intelligence (HUR) said on Tuesday. The men told interrogators they had been "
    "recruited through online adverts promising $2,000 a month. President Volodymyr Zelenskyy "
    "said foreign mercenaries would face trial. Zelensky added that North Korean soldiers and "
    "Chinese citizens had also been captured in the Kursk region."
)

OTHER_TEXT = (
    "Heavy rain flooded the lower town overnight and the river rose above the warning mark, the "
    "council said. Schools stayed closed and volunteers filled sandbags along the embankment while "
    "forecasters expected more showers through the weekend and the power company restored lines."
)


def produce(settings: Settings, stories: list[Story], raw: tuple[bytes, ...] = ()) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    for story in stories:
        producer.send(settings.topic(ARTICLES), key=story.id.encode(), value=story.to_bytes())
    for value in raw:
        producer.send(settings.topic(ARTICLES), key=b"bad", value=value)
    producer.flush()
    producer.close()


def read_all(settings: Settings, topic: str, expected: int) -> list[tuple[bytes, bytes, list]]:
    consumer = KafkaConsumer(
        settings.topic(topic), bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest", consumer_timeout_ms=5000, group_id=None,
    )
    out = []
    for record in consumer:
        out.append((record.key, record.value, record.headers))
        if len(out) >= expected:
            break
    consumer.close()
    return out


def story(url: str, title: str, text: str) -> Story:
    return Story.from_link(url, source="test", content=Content(title=title, text=text))


def test_enricher_stage_end_to_end_with_restart(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    original = story("https://a.test/1", "Colombians captured fighting for Russia", TEXT)
    copy = story("https://b.test/2", "Two Colombians held near Pokrovsk", TEXT + " (Reuters)")
    produce(settings, [original, copy], raw=[b"{not a story"])

    enricher.run(settings, idle_exit_after=3)

    enriched = {k.decode(): Story.from_bytes(v) for k, v, _ in read_all(settings, ENRICHED, 2)}
    assert set(enriched) == {original.id, copy.id}
    first = enriched[original.id].enrichment
    assert first is not None
    assert [t.name for t in first.topics] == ["foreign-fighters"]
    assert first.topics[0].evidence
    assert {"CO", "RU", "UA", "KP", "CN"} <= set(first.countries)
    # the syndicated copy joins the original's cluster
    assert enriched[copy.id].enrichment.cluster_id == original.id  # type: ignore[union-attr]

    [(_key, value, headers)] = read_all(settings, DLQ, 1)
    assert value == b"{not a story"
    assert dict(headers)["x-stage"] == b"enricher"

    # restart: a new process has an empty window, rebuilt from news.enriched before it consumes
    late_copy = story("https://c.test/3", "Colombian mercenaries captured", TEXT + " Updated.")
    produce(settings, [late_copy])
    enricher.run(settings, idle_exit_after=3)
    enriched = {k.decode(): Story.from_bytes(v) for k, v, _ in read_all(settings, ENRICHED, 3)}
    assert enriched[late_copy.id].enrichment.cluster_id == original.id  # type: ignore[union-attr]


def test_window_read_back_skips_stories_older_than_its_age_bound(
    make_settings: Callable[..., Settings],
) -> None:
    from pipeline.story import Enrichment
    from processors.dedup import NearDuplicateIndex
    from processors.dedup_state import warm_up

    settings = make_settings()
    old = story("https://old.test/1", "Old", TEXT)
    new = story("https://new.test/1", "New", OTHER_TEXT)
    for s in (old, new):
        s.enrichment = Enrichment(cluster_id=s.id)
    now_ms = int(time.time() * 1000)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    producer.send(settings.topic(ENRICHED), key=old.id.encode(), value=old.to_bytes(),
                  timestamp_ms=now_ms - 10 * 86_400_000)  # ten days ago
    producer.send(settings.topic(ENRICHED), key=new.id.encode(), value=new.to_bytes(),
                  timestamp_ms=now_ms - 3_600_000)  # an hour ago
    producer.flush()
    producer.close()

    index = NearDuplicateIndex(max_age_s=7 * 86400)
    consumer, _ = warm_up(settings, index)
    consumer.close()
    assert len(index) == 1
    assert index.assign("copy-of-new", OTHER_TEXT + " (AFP)").cluster_id == new.id
    assert index.assign("copy-of-old", TEXT + " (AFP)").cluster_id == "copy-of-old"
