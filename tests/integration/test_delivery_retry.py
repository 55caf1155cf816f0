"""Checked deliveries, delayed retries and replay, on the real broker.

The broker is made to refuse records for real: a topic's ``max.message.bytes``
smaller than the record (set in a copy of deploy/kafka/topics.yaml), or a
record larger than the producer's ``max_request_size``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from ingest.fetch import PageFetcher
from ingest.fetcher import make_processor
from pipeline.cli import main
from pipeline.delivery import DeliveryError
from pipeline.errors import PermanentError, TransientError
from pipeline.kafka_io import ARTICLES, DLQ, ENTRIES, make_consumer, make_producer, read_to_end
from pipeline.retrier import Retrier
from pipeline.retry import retry_topic
from pipeline.settings import Settings, child_environment, get_settings
from pipeline.stage import KafkaTopicSink, Processor, StageRunner, StopFlag
from pipeline.story import Content, Story
from tests.support.kafka import headers_of, read_topic
from tests.support.processes import newswatch
from tests.support.site import LocalSite, Response, SeenRequest

pytestmark = pytest.mark.integration

ARTICLE = (
    "<html><head><title>Port strike ends</title></head><body><nav>Home World</nav><article>"
    "<h1>Port strike ends</h1><p>Dock workers returned to the container terminal on Tuesday after "
    "a three-week strike over pay that had left dozens of ships waiting at anchor.</p><p>The union "
    "said the agreement raised wages by eight percent over two years and limited night shifts.</p>"
    "</article></body></html>"
)


def _story(n: int, title: str, text: str | None = None) -> Story:
    return Story.from_link(f"https://news.test/{n}", content=Content(title=title, text=text or f"text {n}"))


def _topics_file(tmp_path: Path, configs: dict[str, dict[str, str]]) -> Path:
    """A copy of deploy/kafka/topics.yaml with extra topic configs (e.g. max.message.bytes)."""
    data = yaml.safe_load(Settings().kafka_topics.read_text())
    for item in data["topics"]:
        item.setdefault("config", {}).update(configs.get(item["name"], {}))
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _runner(settings: Settings, process: Processor, group: str, name: str = "test-stage",
            stop: StopFlag | None = None) -> StageRunner:
    producer = make_producer(settings)
    return StageRunner(
        name, process, settings.topic(ENTRIES), KafkaTopicSink(producer, settings.topic(ARTICLES)),
        settings=settings, consumer=make_consumer(settings, group), producer=producer, stop=stop,
    )


def _committed(settings: Settings, group: str) -> dict[int, int | None]:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.topic(group))
    try:
        topic = settings.topic(ENTRIES)
        return {p: consumer.committed(TopicPartition(topic, p))
                for p in sorted(consumer.partitions_for_topic(topic) or ())}
    finally:
        consumer.close()


def _produce_to(settings: Settings, partition: int, stories: list[Story]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    try:
        for story in stories:
            producer.send(settings.topic(ENTRIES), key=story.id.encode(), value=story.to_bytes(),
                          partition=partition)
        producer.flush()
    finally:
        producer.close()


def _all(settings: Settings, logical: str) -> list:
    return list(read_to_end(settings, settings.topic(logical), "test-reader"))


def _titles(settings: Settings, logical: str) -> list[str]:
    return sorted(Story.from_bytes(r.value).title or "" for r in _all(settings, logical))


def _cli(settings: Settings, *args: str) -> tuple[int, str]:
    """``newswatch ARGS`` in this process (exit code, standard output)."""
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, list(args), env=child_environment(settings))
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.stdout


class _Running:
    """A stage runner and the retrier, each in a thread, until ``stop()``."""

    def __init__(self, settings: Settings, runner: StageRunner) -> None:
        self.errors: list[BaseException] = []
        self.retrier = Retrier(settings, make_consumer(settings, "retrier"), make_producer(settings))
        self.runner = runner
        self.threads = [threading.Thread(target=self._run, args=(t.run,)) for t in (runner, self.retrier)]
        for thread in self.threads:
            thread.start()

    def _run(self, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:  # surfaced by stop()
            self.errors.append(exc)

    def stop(self) -> None:
        self.runner.stop.set()
        self.retrier.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in self.threads)
        assert not self.errors, self.errors


def test_a_dead_letter_the_broker_refuses_commits_nothing_for_its_partition(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # The DLQ takes records up to 2,000 bytes; the poison story is 6,000.
    settings = make_settings(kafka_topics=_topics_file(tmp_path, {DLQ: {"max.message.bytes": "2000"}}))
    poison = _story(2, "poison", "x" * 6000)
    _produce_to(settings, 0, [_story(1, "a"), poison, _story(3, "b")])
    _produce_to(settings, 1, [_story(4, "c"), _story(5, "d")])

    def process(story: Story) -> Story:
        if story.title == "poison":
            raise PermanentError("cannot be processed")
        return story

    with pytest.raises(DeliveryError, match="MessageSizeTooLarge"):
        _runner(settings, process, "g-dlq-refused").run(idle_exit_after=3)
    committed = _committed(settings, "g-dlq-refused")
    assert committed[0] is None, "the partition of the undelivered dead letter is not committed"
    # partition 1 had no failure: committed if it was in that batch, else left for redelivery
    assert committed[1] in (None, 2)
    assert _all(settings, DLQ) == []

    # The operator raises the limit; the restarted stage gets the partition again and delivers.
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, settings.topic(DLQ),
                                            configs={"max.message.bytes": "1048588"})])
    finally:
        admin.close()
    _runner(settings, process, "g-dlq-refused").run(idle_exit_after=3)
    dead = _all(settings, DLQ)
    assert [r.value for r in dead] == [poison.to_bytes()]
    assert headers_of(dead[0])["x-error"] == "cannot be processed"
    assert _committed(settings, "g-dlq-refused") == {0: 3, 1: 2}
    assert {"a", "b", "c", "d"} == set(_titles(settings, ARTICLES))


@pytest.mark.parametrize("refused_by", ["producer", "broker"])
def test_one_record_too_large_for_the_sink_is_dead_lettered_and_the_batch_moves_on(
    make_settings: Callable[..., Settings], tmp_path: Path, refused_by: str
) -> None:
    if refused_by == "broker":
        # the articles topic takes 20 kB; the processor makes one story 50 kB
        topics = _topics_file(tmp_path, {ARTICLES: {"max.message.bytes": "20000"}})
        settings, size = make_settings(kafka_topics=topics), 50_000
    else:
        # over the producer's 1 MB max_request_size: send() itself raises
        settings, size = make_settings(), 1_500_000
    stories = [_story(n, t) for n, t in enumerate(["ok-1", "huge", "ok-2", "ok-3"])]
    _produce_to(settings, 0, stories[:2])
    _produce_to(settings, 1, stories[2:])
    calls: dict[str, int] = {}

    def process(story: Story) -> Story:
        calls[story.title or ""] = calls.get(story.title or "", 0) + 1
        if story.title == "huge":
            return story.model_copy(update={"content": Content(title="huge", text="y" * size)})
        return story

    _runner(settings, process, "g-too-large").run(idle_exit_after=3)  # returns: no crash

    assert _titles(settings, ARTICLES) == ["ok-1", "ok-2", "ok-3"]
    dead = _all(settings, DLQ)
    assert len(dead) == 1
    headers = headers_of(dead[0])
    assert "too large" in headers["x-error"] and "MessageSizeTooLarge" in headers["x-error"]
    assert headers["x-error-type"] == "PermanentError"
    assert headers["x-stage"] == "test-stage"
    assert dead[0].value == stories[1].to_bytes()  # the original payload, for a replay
    assert calls["huge"] == 1, "a record the broker refuses is not processed again"
    assert _committed(settings, "g-too-large") == {0: 2, 1: 2}


def test_a_503_that_recovers_is_retried_later_honouring_retry_after_and_delivered(
    make_settings: Callable[..., Settings], site: LocalSite
) -> None:
    # Tiers of 1 s and 3 s; the site asks for 2 s, so the first retry waits in tier 2 (3 s).
    settings = make_settings(retry_delays_s="1,3", respect_robots="false")
    seen: list[SeenRequest] = []

    def handler(request: SeenRequest) -> Response:
        seen.append(request)
        if len(seen) == 1:
            return Response(503, b"busy", {"Retry-After": "2", "Content-Type": "text/plain"})
        return Response(200, ARTICLE.encode(), {"Content-Type": "text/html; charset=utf-8"})

    site.add_handler("/story", handler)
    story = Story.from_link(site.url("/story"), source="Local")
    _produce_to(settings, 0, [story])

    fetcher = PageFetcher(settings)
    running = _Running(settings, _runner(settings, make_processor(fetcher, None), "g-fetch", "fetcher"))
    try:
        articles = read_topic(settings, ARTICLES, expect=1, timeout=60)
    finally:
        running.stop()
        fetcher.close()

    assert [Story.from_bytes(r.value).id for r in articles] == [story.id]
    assert "eight percent" in Story.from_bytes(articles[0].value).text
    assert len(seen) == 2, "one 503 (its Retry-After: no quick retry), then one success"
    assert seen[1].at - seen[0].at >= 2.5, "the retry waited the 3 s tier, not the 1 s one"
    assert _all(settings, DLQ) == []
    assert _all(settings, retry_topic(0)) == []
    retried = _all(settings, retry_topic(1))
    assert len(retried) == 1 and retried[0].key == story.id.encode()
    headers = headers_of(retried[0])
    assert headers["x-retry-count"] == "1"
    assert headers["x-stage"] == "fetcher"
    assert headers["x-source-topic"] == settings.topic(ENTRIES)
    assert "HTTP 503" in headers["x-error"]
    assert float(headers["x-retry-after"]) - int(headers["x-failed-at"]) / 1000 == pytest.approx(3, abs=0.01)


def test_a_failure_that_stays_transient_goes_through_every_tier_then_to_the_dlq(
    make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(retry_delays_s="0.2,0.5", max_attempts=1)
    story = _story(1, "down")
    _produce_to(settings, 0, [story, _story(2, "fine")])
    calls: list[str] = []

    def process(s: Story) -> Story:
        calls.append(s.title or "")
        if s.title == "down":
            raise TransientError("site down")
        return s

    running = _Running(settings, _runner(settings, process, "g-tiers"))
    try:
        dead = read_topic(settings, DLQ, expect=1, timeout=60)
    finally:
        running.stop()
    assert len(dead) == 1 and dead[0].value == story.to_bytes()
    headers = headers_of(dead[0])
    assert headers["x-error"] == "site down"
    assert headers["x-retry-count"] == "2", "both tiers were tried"
    assert calls.count("down") == 3 and calls.count("fine") == 1
    assert len(_all(settings, retry_topic(0))) == 1 and len(_all(settings, retry_topic(1))) == 1
    assert _titles(settings, ARTICLES) == ["fine"]


def test_dlq_list_and_replay_round_trip_a_fixed_poison_message(
    make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(max_attempts=1)
    poison = _story(1, "poison")
    _produce_to(settings, 0, [poison, _story(2, "ok")])
    fixed = False

    def process(story: Story) -> Story:
        if story.title == "poison" and not fixed:
            raise RuntimeError("bug: cannot handle poison")
        return story.model_copy(update={"source": "processed"})

    _runner(settings, process, "g-replay").run(idle_exit_after=3)
    assert _titles(settings, ARTICLES) == ["ok"]

    listed = newswatch(settings, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(rows) == 1
    assert rows[0]["key"] == poison.id and rows[0]["stage"] == "test-stage"
    assert rows[0]["error"] == "bug: cannot handle poison" and rows[0]["error_type"] == "RuntimeError"
    assert rows[0]["source_topic"] == settings.topic(ENTRIES) and rows[0]["replays"] == 0
    # (the filters themselves: tests/unit/test_retry_and_dlq.py; in process from here on, the
    # command's start-up takes seconds)
    for args, expected in [(["--stage", "test-stage", "--reason", "CANNOT handle", "--since", "1h"], 1),
                           (["--stage", "enricher"], 0)]:
        code, out = _cli(settings, "dlq", "list", "--json", *args)
        assert code == 0, out
        assert len(out.splitlines()) == expected, args
    code, table = _cli(settings, "dlq", "list")
    assert code == 0 and "test-stage" in table and "bug: cannot handle poison" in table
    assert _cli(settings, "dlq", "list", "--since", "yesterday-ish")[0] == 2

    fixed = True  # the bug is fixed and the stage redeployed; now replay
    assert _cli(settings, "dlq", "replay")[0] == 2, "no filter and no --all: a usage error"
    replayed = newswatch(settings, "dlq", "replay", "--stage", "test-stage")
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed 1 to {settings.topic(ENTRIES)}" in replayed.stdout

    entries = _all(settings, ENTRIES)
    assert len(entries) == 3
    copy = next(r for r in entries if r.headers)
    assert copy.key == poison.id.encode() and copy.value == poison.to_bytes()
    assert headers_of(copy) == {"x-replay-count": "1", "x-stage": "test-stage"}

    _runner(settings, process, "g-replay").run(idle_exit_after=3)  # the same group: only the copy is new
    articles = [Story.from_bytes(r.value) for r in _all(settings, ARTICLES)]
    assert sorted(a.title or "" for a in articles) == ["ok", "poison"]
    assert next(a for a in articles if a.title == "poison").id == poison.id
    assert len(_all(settings, DLQ)) == 1, "nothing new was dead-lettered"

    # Another stage reading the same topic skips the copy meant for test-stage.
    _runner(settings, process, "g-other", name="other-stage").run(idle_exit_after=3)
    assert sorted(_titles(settings, ARTICLES)) == ["ok", "ok", "poison", "poison"]


def test_the_retrier_dead_letters_a_message_it_cannot_route_and_sends_the_others(
    make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(retry_delays_s="1")
    good, lost, later = _story(1, "good"), _story(2, "lost"), _story(3, "later")
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    entries = settings.topic(ENTRIES).encode()
    due_now, due_later = b"0", f"{time.time() + 3600:.3f}".encode()
    for story, source, due in ((lost, settings.topic("no.such.topic").encode(), due_now),
                               (good, entries, due_now), (later, entries, due_later)):
        producer.send(settings.topic(retry_topic(0)), key=story.id.encode(), value=story.to_bytes(),
                      partition=0, headers=[("x-source-topic", source), ("x-retry-after", due),
                                            ("x-stage", b"fetcher"), ("x-retry-count", b"1")])
    producer.flush()
    producer.close()

    retrier = Retrier(settings, make_consumer(settings, "retrier"), make_producer(settings))
    thread = threading.Thread(target=retrier.run)
    thread.start()
    try:
        back = read_topic(settings, ENTRIES, expect=1, timeout=60)
        dead = read_topic(settings, DLQ, expect=1, timeout=60)
    finally:
        retrier.stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert [r.value for r in back] == [good.to_bytes()], "the message due in an hour waits"
    assert headers_of(back[0]) == {"x-stage": "fetcher", "x-retry-count": "1"}
    assert [r.value for r in dead] == [lost.to_bytes()]
    assert "does not exist" in headers_of(dead[0])["x-retrier-error"]
    committed = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.topic("retrier"))
    try:
        assert committed.committed(TopicPartition(settings.topic(retry_topic(0)), 0)) == 2
    finally:
        committed.close()
