"""A running stage (`newswatch run enricher`, a real process) serves /metrics over HTTP,
and its counters move as messages flow through the real broker."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.kafka_io import ARTICLES
from pipeline.settings import Settings
from pipeline.story import Content, Story
from tests.integration.test_enricher_stage import TEXT
from tests.support.kafka import produce
from tests.support.processes import Stage

pytestmark = pytest.mark.integration


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> Samples:
    """Every sample of http://127.0.0.1:port/metrics, keyed by name and sorted labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _wait_for_endpoint(port: int, stage: Stage, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert stage.process.poll() is None, stage.log()
        try:
            scrape(port)
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"no /metrics on port {port}:\n{stage.log()}")


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _settled(samples: Samples) -> bool:
    """All three messages have an outcome and the batch that gave the last one has ended
    (the lag gauge is set after the commit)."""
    done = sum(_value(samples, "newswatch_messages_total", stage="enricher", outcome=o)
               for o in ("forwarded", "discarded", "dead_letter"))
    lags = [v for (name, _), v in samples.items() if name == "newswatch_consumer_lag"]
    return done >= 3 and bool(lags) and max(lags) == 0


def test_a_running_stage_serves_moving_counters(
    make_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    port = _free_port()
    settings = make_settings(metrics_port=port, ready_dir=tmp_path / "ready")
    stage = Stage(settings, "enricher", tmp_path)
    try:
        _wait_for_endpoint(port, stage)
        deadline = time.monotonic() + 90
        while not (tmp_path / "ready" / "enricher").exists():  # consuming, not only started
            assert time.monotonic() < deadline and stage.process.poll() is None, stage.log()
            time.sleep(0.3)
        before = scrape(port)
        consumed = ("newswatch_messages_total", (("outcome", "consumed"), ("stage", "enricher")))
        assert before.get(consumed, 0.0) == 0.0

        stories = [Story.from_link(f"https://m{i}.test/a", source="t",
                                   content=Content(title=f"Story {i}", text=TEXT))
                   for i in range(2)]
        produce(settings, ARTICLES,
                [(s.id.encode(), s.to_bytes()) for s in stories] + [(b"bad", b"{not a story")])

        deadline = time.monotonic() + 90
        after = scrape(port)
        while not _settled(after) and time.monotonic() < deadline:
            assert stage.process.poll() is None, stage.log()
            time.sleep(0.5)
            after = scrape(port)
    finally:
        stage.stop()

    def enricher(name: str, **labels: str) -> float:
        return _value(after, name, stage="enricher", **labels)

    assert enricher("newswatch_messages_total", outcome="consumed") == 3
    assert enricher("newswatch_messages_total", outcome="forwarded") == 2
    assert enricher("newswatch_messages_total", outcome="dead_letter") == 1
    assert enricher("newswatch_process_seconds_count") == 3  # one observation per message
    assert enricher("newswatch_batch_seconds_count") >= 1
    lags = {labels: v for (name, labels), v in after.items() if name == "newswatch_consumer_lag"}
    assert lags and set(lags.values()) == {0.0}
    assert after[("newswatch_dedup_window_stories", ())] == 2
    assert after[("newswatch_dedup_window_bytes", ())] > 0
