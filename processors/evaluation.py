"""Precision and recall of the topic engine on a labelled set (tests and README figures)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from processors.topics import TopicEngine


@dataclass
class TopicScore:
    """Counts for one topic; ``misses`` and ``false_alarms`` name the story ids."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    misses: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def load_labelled(path: Path) -> list[dict[str, Any]]:
    """Every story of a labelled YAML file (or of every ``*.yaml`` in a directory)."""
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    stories: list[dict[str, Any]] = []
    for file in files:
        stories.extend(yaml.safe_load(file.read_text(encoding="utf-8")) or [])
    return stories


def evaluate(engine: TopicEngine, stories: list[dict[str, Any]]) -> dict[str, TopicScore]:
    """Per topic of ``engine``: true/false positives and misses over ``stories``."""
    scores = {name: TopicScore() for name in engine.names}
    for story in stories:
        gold = set(story.get("topics") or [])
        found = {t.name for t in engine.classify(story.get("title"), story["text"], "en")}
        for name, score in scores.items():
            if name in found and name in gold:
                score.tp += 1
            elif name in found:
                score.fp += 1
                score.false_alarms.append(story["id"])
            elif name in gold:
                score.fn += 1
                score.misses.append(story["id"])
    return scores


def report(scores: dict[str, TopicScore]) -> str:
    """A Markdown table of the scores."""
    lines = ["| topic | positives | precision | recall | misses | false alarms |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, s in sorted(scores.items()):
        lines.append(f"| {name} | {s.tp + s.fn} | {s.precision:.2f} | {s.recall:.2f} | "
                     f"{', '.join(s.misses) or '-'} | {', '.join(s.false_alarms) or '-'} |")
    return "\n".join(lines)
