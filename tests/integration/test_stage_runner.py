"""The stage contract on a real broker: forward, discard, dead-letter, retry, commit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, TopicPartition

from pipeline.errors import Discard, PermanentError, TransientError
from pipeline.kafka_io import ARTICLES, DLQ, ENTRIES, make_consumer, make_producer
from pipeline.settings import Settings
from pipeline.stage import KafkaTopicSink, StageRunner, StopFlag
from pipeline.story import Content, Story
from tests.support.kafka import headers_of, produce, read_topic

pytestmark = pytest.mark.integration


def _story(n: int, title: str) -> Story:
    return Story.from_link(f"https://news.test/{n}", content=Content(title=title, text=f"text {n}"))


def _runner(settings: Settings, process: Callable[[Story], Story | None], group: str) -> StageRunner:
    producer = make_producer(settings)
    return StageRunner(
        "test-stage",
        process,
        settings.topic(ENTRIES),
        KafkaTopicSink(producer, settings.topic(ARTICLES)),
        settings=settings,
        consumer=make_consumer(settings, group),
        producer=producer,
    )


def _committed(settings: Settings, group: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.topic(group))
    try:
        total = 0
        for partition in consumer.partitions_for_topic(settings.topic(ENTRIES)) or set():
            total += consumer.committed(TopicPartition(settings.topic(ENTRIES), partition)) or 0
        return total
    finally:
        consumer.close()


def test_each_message_is_forwarded_discarded_or_dead_lettered(make_settings) -> None:
    settings = make_settings()
    attempts: dict[str, int] = {}

    def process(story: Story) -> Story | None:
        title = story.title or ""
        attempts[title] = attempts.get(title, 0) + 1
        if title == "discard-me":
            raise Discard("not news")
        if title == "none":
            return None
        if title == "broken":
            raise PermanentError("page has no article text")
        if title == "flaky" and attempts[title] < 2:
            raise TransientError("503 from publisher")
        if title == "always-fails":
            raise RuntimeError("bug in processor")
        return story.model_copy(update={"source": "processed"})

    titles = ["ok-1", "discard-me", "none", "broken", "flaky", "always-fails", "ok-2"]
    items = [(s.id.encode(), s.to_bytes()) for s in (_story(i, t) for i, t in enumerate(titles))]
    items.append((b"garbage", b"{this is not a story"))
    produce(settings, ENTRIES, items)

    runner = _runner(settings, process, "g-outcomes")
    runner.run(idle_exit_after=3)

    forwarded = read_topic(settings, ARTICLES, expect=3)
    forwarded_titles = sorted(Story.from_bytes(r.value).title or "" for r in forwarded)
    assert forwarded_titles == ["flaky", "ok-1", "ok-2"]
    assert all(Story.from_bytes(r.value).source == "processed" for r in forwarded)
    assert all(r.key == Story.from_bytes(r.value).id.encode() for r in forwarded)

    dead = read_topic(settings, DLQ, expect=3)
    by_error = {headers_of(r)["x-error"]: r for r in dead}
    assert set(by_error) == {
        "page has no article text",
        "bug in processor",
        next(e for e in by_error if e.startswith("undecodable story")),
    }
    broken = headers_of(by_error["page has no article text"])
    assert broken["x-stage"] == "test-stage"
    assert broken["x-source-topic"] == settings.topic(ENTRIES)
    assert broken["x-error-type"] == "PermanentError"
    assert broken["x-attempts"] == "1"
    # the original payload is kept, byte for byte, so it can be replayed
    assert by_error["page has no article text"].value == dict(items)[_story(3, "broken").id.encode()]
    assert headers_of(by_error["bug in processor"])["x-attempts"] == str(settings.max_attempts)
    assert attempts["always-fails"] == settings.max_attempts
    assert attempts["flaky"] == 2

    # everything was consumed and committed: 8 messages across the partitions
    assert _committed(settings, "g-outcomes") == len(items)


class _FailingSink:
    """A sink whose delivery fails, as when Elasticsearch is down."""

    def emit(self, story, record) -> None:
        pass

    def flush(self):
        raise ConnectionError("sink unavailable")


def test_nothing_is_committed_when_delivery_fails(make_settings) -> None:
    settings = make_settings()
    produce(settings, ENTRIES, [(s.id.encode(), s.to_bytes()) for s in (_story(1, "a"), _story(2, "b"))])

    producer = make_producer(settings)
    failing = StageRunner(
        "test-stage", lambda s: s, settings.topic(ENTRIES), _FailingSink(),
        settings=settings, consumer=make_consumer(settings, "g-redeliver"), producer=producer,
    )
    with pytest.raises(ConnectionError):
        failing.run(idle_exit_after=3)
    assert _committed(settings, "g-redeliver") == 0

    # a restarted stage gets the same messages again and delivers them
    _runner(settings, lambda s: s, "g-redeliver").run(idle_exit_after=3)
    redelivered = read_topic(settings, ARTICLES, expect=2)
    assert sorted(Story.from_bytes(r.value).title or "" for r in redelivered) == ["a", "b"]
    assert _committed(settings, "g-redeliver") == 2


def test_stop_flag_finishes_the_batch_and_commits(make_settings) -> None:
    settings = make_settings()
    stories = [_story(n, f"t{n}") for n in range(5)]
    produce(settings, ENTRIES, [(s.id.encode(), s.to_bytes()) for s in stories])
    stop = StopFlag()
    seen: list[str] = []

    def process(story: Story) -> Story:
        seen.append(story.id)
        if len(seen) == 5:
            stop.set()  # as SIGTERM would, in the middle of work
        return story

    runner = _runner(settings, process, "g-stop")
    runner.stop = stop
    thread = threading.Thread(target=runner.run)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert len(read_topic(settings, ARTICLES, expect=5)) == 5
    assert _committed(settings, "g-stop") == 5


def test_a_stage_started_before_its_topic_exists_consumes_once_it_does(make_settings) -> None:
    from pipeline.kafka_io import ensure_topics, load_topic_specs

    settings = make_settings(create_topics=False)
    runner_box: list[StageRunner] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            runner = _runner(settings, lambda s: s, "g-early")
            runner_box.append(runner)
            runner.run(idle_exit_after=5)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=start)
    thread.start()
    time.sleep(2)  # the stage is up and waiting; now `newswatch setup` runs
    ensure_topics(settings, load_topic_specs(settings.kafka_topics))
    stories = [_story(n, f"early-{n}") for n in range(3)]
    produce(settings, ENTRIES, [(s.id.encode(), s.to_bytes()) for s in stories])
    thread.join(timeout=90)
    assert not thread.is_alive() and not errors, errors
    assert len(read_topic(settings, ARTICLES, expect=3)) == 3
