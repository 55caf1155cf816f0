"""Precision and recall of the topic engine on a labelled set (tests and README figures)."""

from __future__ import annotations

import hashlib
import json
import math
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


# --- real published news (tests/data/topic-real): the quality measure --------------------------
#
# Records are JSON lines: real text with its source (web records carry the text, the shared
# corpora's records only their labels: the bodies are read from ../shared/corpora). The split is
# a hash of the source, fixed before any tuning: dev is what calibration and thresholds are
# chosen on (bench/topics/calibrate.py), test is read only by the evaluation that CI asserts.

TOPIC_NAMES = ("foreign-fighters", "drone-and-missile-strikes", "private-military-companies",
               "sanctions-evasion")


# Later rounds' records live in a folder per round (``round-2/``, ``round-3/``): each was
# collected after the previous round's check was frozen, by people who had not seen the rules,
# read once as that round's measure, and only then became tuning data for the next round.
# The split of such a record is its folder's name.


def split_of(source: str) -> str:
    """"dev" or "test", from a hash of the record's source (half each, fixed forever)."""
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "test" if digest[0] % 2 == 0 else "dev"


@dataclass(frozen=True)
class RealStory:
    source: str
    language: str
    title: str
    text: str
    labels: dict[str, int]
    kind: str  # positive | hard-negative | general (the shared corpora are "general")
    round: str | None = None  # "round-2", ...: the folder of a later round's records

    @property
    def split(self) -> str:
        """"dev" or "test" (round 1, by a hash of the source), else the record's round."""
        return self.round or split_of(self.source)


def load_real(directory: Path, corpora_dir: Path | None) -> list[RealStory]:
    """Every record of ``directory``'s ``*.jsonl`` (split by ``split_of``) and of each
    round's folder (``directory/round-2/*.jsonl``: split "round-2"); corpus records need
    ``corpora_dir`` (``../shared/corpora``) and are left out when it is None."""
    bodies: dict[str, dict[str, Any]] = {}
    stories: list[RealStory] = []
    files = sorted(directory.glob("*.jsonl")) + sorted(directory.glob("round-*/*.jsonl"))
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                source = str(record["source"])
                labels = {name: int(record["labels"][name]) for name in TOPIC_NAMES}
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: bad record: {exc}") from None
            corpus, _, page = source.partition(":")
            if corpus in ("aeb", "news4k") and "text" not in record:
                if corpora_dir is None:
                    continue
                if corpus not in bodies:
                    truth = corpora_dir / corpus / "ground-truth.json"
                    bodies[corpus] = json.loads(truth.read_text(encoding="utf-8"))
                page_truth = bodies[corpus][page]
                title = str(page_truth.get("title") or "")
                text = str(page_truth.get("articleBody") or "")
                language, kind = "en", "general"
            else:
                title, text = str(record.get("title") or ""), str(record["text"])
                language, kind = str(record.get("language") or "en"), str(record.get("kind") or "")
            stories.append(RealStory(source, language, title, text, labels, kind,
                                     round=path.parent.name if path.parent != directory else None))
    return stories


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default); (0, 1) when total is 0."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class RealScore(TopicScore):
    """TopicScore plus the false alarms among the general (shared-corpus) stories."""

    general: int = 0
    general_false_alarms: int = 0

    @property
    def false_alarms_per_1000(self) -> float:
        return 1000 * self.general_false_alarms / self.general if self.general else 0.0

    def intervals(self) -> dict[str, tuple[float, float]]:
        fa_low, fa_high = wilson(self.general_false_alarms, self.general)
        return {"precision": wilson(self.tp, self.tp + self.fp),
                "recall": wilson(self.tp, self.tp + self.fn),
                "false_alarms_per_1000": (1000 * fa_low, 1000 * fa_high)}


def evaluate_real(engine: TopicEngine, stories: list[RealStory],
                  languages: tuple[str, ...] | None = None) -> dict[str, RealScore]:
    """Per topic: counts over ``stories`` (optionally only those in ``languages``)."""
    scores = {name: RealScore() for name in engine.names}
    for story in stories:
        if languages and story.language not in languages:
            continue
        found = {t.name for t in engine.classify(story.title or None, story.text, story.language)}
        for name, score in scores.items():
            gold = bool(story.labels.get(name))
            hit = name in found
            if story.kind == "general" and not gold:
                score.general += 1
                score.general_false_alarms += hit
            if hit and gold:
                score.tp += 1
            elif hit:
                score.fp += 1
                score.false_alarms.append(story.source)
            elif gold:
                score.fn += 1
                score.misses.append(story.source)
    return scores


def real_report(scores: dict[str, RealScore]) -> str:
    """A Markdown table with 95 % Wilson intervals."""
    lines = ["| topic | positives | precision (95 % CI) | recall (95 % CI) | general stories | "
             "false alarms per 1,000 general (95 % CI) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, s in sorted(scores.items()):
        ci = s.intervals()
        p, r, fa = ci["precision"], ci["recall"], ci["false_alarms_per_1000"]
        lines.append(
            f"| {name} | {s.tp + s.fn} | {s.precision:.2f} ({p[0]:.2f}-{p[1]:.2f}) | "
            f"{s.recall:.2f} ({r[0]:.2f}-{r[1]:.2f}) | {s.general} | "
            f"{s.false_alarms_per_1000:.1f} ({fa[0]:.1f}-{fa[1]:.1f}) |")
    return "\n".join(lines)
