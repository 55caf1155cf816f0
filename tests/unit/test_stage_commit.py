"""The runner rides out a rebalance, but not a consumer that never gets back into its group."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from kafka.errors import RebalanceInProgressError

from pipeline import stage
from pipeline.errors import Discard
from pipeline.settings import load_settings
from pipeline.stage import StageRunner, StuckInRebalance
from pipeline.story import Story


class _Consumer:
    def __init__(self) -> None:
        self.refuse = True
        self.commits = 0

    def commit(self, offsets: Any) -> None:
        if self.refuse:
            raise RebalanceInProgressError("rebalancing")
        self.commits += 1


class _Sink:
    def emit(self, story: Story, record: Any) -> None: ...

    def flush(self) -> list:
        return []


def _discard(story: Story) -> Story:
    raise Discard("not news")


def _runner(consumer: _Consumer) -> StageRunner:
    producer = SimpleNamespace(flush=lambda: None)
    return StageRunner("enricher", _discard, "in", _Sink(), settings=load_settings({}),
                       consumer=consumer, producer=producer)  # type: ignore[arg-type]


def _batch(offset: int) -> list[Any]:
    story = Story.from_link(f"https://example.org/news/{offset}")
    return [SimpleNamespace(topic="in", partition=0, offset=offset, key=story.id.encode(),
                            value=story.to_bytes(), headers=[])]


def test_refused_commits_are_ridden_out_while_a_rebalance_can_still_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stage, "COMMIT_STUCK_S", 3600.0)
    consumer = _Consumer()
    runner = _runner(consumer)
    for offset in range(5):
        runner.run_batch(_batch(offset))
    consumer.refuse = False
    runner.run_batch(_batch(5))
    assert consumer.commits == 1


def test_a_stage_whose_commits_are_refused_for_too_long_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage, "COMMIT_STUCK_S", 0.0)
    consumer = _Consumer()
    runner = _runner(consumer)
    runner.run_batch(_batch(0))  # the first refusal starts the clock
    with pytest.raises(StuckInRebalance):
        runner.run_batch(_batch(1))


def test_a_commit_that_goes_through_resets_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage, "COMMIT_STUCK_S", 0.0)
    consumer = _Consumer()
    runner = _runner(consumer)
    runner.run_batch(_batch(0))
    consumer.refuse = False
    runner.run_batch(_batch(1))
    consumer.refuse = True
    runner.run_batch(_batch(2))  # a new first refusal, not the second of a run
    assert consumer.commits == 1
