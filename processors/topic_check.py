"""The meaning check a rule candidate must pass before it becomes a tag.

Rules that match words cannot tell "served free drinks in Laos" from "served in
the army", or a film plot from a war. So a topic may carry a ``check`` section:
the rules (or, in languages the rules are not written for, a short list of
trigger stems) only *propose* a story, and the sentences that made it a
candidate are then compared, by a multilingual sentence-embedding model
(``processors.sentence_model``), with what an on-topic passage says (``about``)
and with its look-alikes (``not_about``). A topic may also carry a ``probe``: a
linear direction in the model's space, fitted on labelled real passages (the
descriptions are a dozen sentences somebody wrote; the probe has seen a few
hundred real ones, including the look-alikes the descriptions never named). A
logistic calibration fitted on the tuning split (``bench/topics/calibrate.py``)
turns the rule score, the similarities and the probe into a probability, and
that probability is the tag's score: 0.8 means that about 80 % of the tuning
stories scored so were on topic.

Only candidates reach the model, a few per cent of general news, so the cost
stays small; the evidence shown is the passages that decided, best first.

```yaml
check:
  candidate_score: 0.6        # rule score (sum / threshold) from which a story is checked
  passages: 6                 # the rules' best sentences that are checked (and the headline)
  tag_probability: 0.5        # tag at or above this calibrated probability
  alert_score: 0.8            # what the default subscription asks (meets the precision target)
  about: [Foreign nationals recruited to fight for Russia in Ukraine, ...]
  not_about: [A film about a band of mercenaries, ...]
  triggers:                   # candidate stems where the rules do not apply (story language)
    ru: [наемник, наёмник, иностранн]
  probe: {bias: -1.2, weights: <base64>}   # optional, written by bench/topics/calibrate.py
  calibration:                # written by bench/topics/calibrate.py from the tuning split
    rules: {bias: -6.0, rule: 0.5, about: 4.0, margin: 9.0, probe: 0.8}
    triggers: {bias: -7.0, rule: 0.0, about: 5.0, margin: 9.0, probe: 0.6}
```
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from processors.text import normalise_word

# a passage longer than this is cut before embedding: the model averages over its words,
# so a run-on "sentence" of a whole paragraph would dilute the one clause that matters
MAX_PASSAGE_CHARS = 600
PATHS = ("rules", "triggers")
# a probe's logit is clipped: one odd passage far out along the direction must not
# outweigh the rules and the similarities on its own
PROBE_CLIP = 8.0

Features = tuple[float, float, float, float]  # rule, about, margin, probe


@dataclass(frozen=True)
class Probe:
    """A logistic direction over sentence vectors: ``bias + weights @ vector`` per passage."""

    bias: float
    weights: np.ndarray

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        return np.clip(vectors @ self.weights + self.bias, -PROBE_CLIP, PROBE_CLIP)

    def encoded(self) -> str:
        """The weights as base64 float32 (little-endian), as the topic file stores them."""
        return base64.b64encode(self.weights.astype("<f4").tobytes()).decode("ascii")

    @classmethod
    def parse(cls, data: Any) -> Probe:
        if not isinstance(data, dict) or set(data) != {"bias", "weights"}:
            raise ValueError("check: probe needs exactly 'bias' and 'weights'")
        try:
            raw = base64.b64decode(str(data["weights"]), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("check: probe weights are not base64") from None
        if not raw or len(raw) % 4:
            raise ValueError("check: probe weights are not a float32 vector")
        return cls(float(data["bias"]), np.frombuffer(raw, dtype="<f4").astype(np.float64))


@dataclass(frozen=True, slots=True)
class Calibration:
    """Logistic weights over the check's features (see ``features``)."""

    bias: float
    rule: float
    about: float
    margin: float
    probe: float = 0.0  # 0 for a topic without a probe

    def probability(self, feats: Features) -> float:
        rule, about, margin, probe = feats
        z = (self.bias + self.rule * rule + self.about * about + self.margin * margin
             + self.probe * probe)
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


@dataclass(frozen=True)
class MeaningCheck:
    about: tuple[str, ...]
    not_about: tuple[str, ...]
    candidate_score: float = 0.6
    passages: int = 6
    tag_probability: float = 0.5
    alert_score: float = 0.8
    triggers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    calibration: Mapping[str, Calibration] = field(default_factory=dict)
    probe: Probe | None = None


@dataclass(frozen=True, slots=True)
class Passage:
    """A sentence that made the story a candidate; ``start`` is None for the headline."""

    text: str
    start: int | None
    matched: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    probability: float
    features: Features
    ranked: list[tuple[Passage, float]]  # passages with their part of the verdict, best first


@dataclass(frozen=True)
class Measured:
    """The check's features of a candidate, and each passage's own margin and probe logit."""

    features: Features
    passages: list[Passage]
    vectors: np.ndarray
    margins: np.ndarray
    probes: np.ndarray

    def ranked(self, calibration: Calibration) -> list[tuple[Passage, float]]:
        """Passages by their own part of the calibrated verdict, best first: the evidence."""
        parts = calibration.margin * self.margins + calibration.probe * self.probes
        return sorted(zip(self.passages, (float(v) for v in parts), strict=True), key=lambda pv: -pv[1])


def parse_check(data: Any) -> MeaningCheck:
    """Validate a topic's ``check`` section; raises ValueError naming the problem."""
    if not isinstance(data, dict):
        raise ValueError("'check' must be a mapping")
    known = {"about", "not_about", "candidate_score", "passages", "tag_probability",
             "alert_score", "triggers", "calibration", "probe"}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"check: unknown keys {sorted(unknown)}")
    about = tuple(str(t) for t in data.get("about") or [])
    not_about = tuple(str(t) for t in data.get("not_about") or [])
    if not about or not not_about:
        raise ValueError("check: 'about' and 'not_about' each need at least one description")
    triggers: dict[str, tuple[str, ...]] = {}
    for lang, stems in (data.get("triggers") or {}).items():
        if not isinstance(stems, list) or not stems:
            raise ValueError(f"check: triggers for {lang!r} must be a non-empty list")
        triggers[str(lang)] = tuple(normalise_word(str(s)) for s in stems)
    calibration: dict[str, Calibration] = {}
    for path, weights in (data.get("calibration") or {}).items():
        if path not in PATHS:
            raise ValueError(f"check: calibration path {path!r} is not one of {PATHS}")
        try:
            calibration[path] = Calibration(**{k: float(v) for k, v in weights.items()})
        except TypeError as exc:
            raise ValueError(f"check: calibration {path}: {exc}") from None
    check = MeaningCheck(
        about=about, not_about=not_about,
        candidate_score=float(data.get("candidate_score", 0.6)),
        passages=int(data.get("passages", 6)),
        tag_probability=float(data.get("tag_probability", 0.5)),
        alert_score=float(data.get("alert_score", 0.8)),
        triggers=triggers, calibration=calibration,
        probe=Probe.parse(data["probe"]) if data.get("probe") is not None else None,
    )
    for name in ("tag_probability", "alert_score"):
        if not 0.0 < getattr(check, name) < 1.0:
            raise ValueError(f"check: {name} must lie between 0 and 1")
    if check.passages < 1:
        raise ValueError("check: passages must be 1 or more")
    return check


def trigger_passages(text: str, sentences: list[tuple[int, int]], stems: tuple[str, ...],
                     limit: int) -> list[Passage]:
    """Sentences containing a trigger stem, most triggers first (substring match: Arabic
    and Slavic words carry prefixes and endings that a word match would miss)."""
    found: list[tuple[int, int, Passage]] = []
    for order, (start, end) in enumerate(sentences):
        piece = normalise_word(text[start:end])
        hits = tuple(s for s in stems if s in piece)
        if hits:
            found.append((-len(hits), order, Passage(text[start:end], start, hits)))
    found.sort(key=lambda item: item[:2])
    return [p for _, _, p in found[:limit]]


class CompiledCheck:
    """A topic's check with its descriptions embedded once."""

    def __init__(self, check: MeaningCheck, embed: Callable[[list[str]], np.ndarray]) -> None:
        self.check = check
        self._embed = embed
        self._about: np.ndarray | None = None
        self._not_about: np.ndarray | None = None

    def _descriptions(self) -> tuple[np.ndarray, np.ndarray]:
        if self._about is None or self._not_about is None:
            self._about = self._embed(list(self.check.about))
            self._not_about = self._embed(list(self.check.not_about))
        return self._about, self._not_about

    def vectors(self, passages: list[Passage]) -> np.ndarray:
        return self._embed([p.text[:MAX_PASSAGE_CHARS] for p in passages])

    def features(self, passages: list[Passage], rule_score: float) -> Measured:
        """(rule, about, margin, probe) of a candidate, and every passage's own part.

        ``about`` is the best similarity of any passage to any description of the topic;
        ``margin`` the best (similarity to the topic - similarity to its look-alikes) of a
        passage: a sentence about a film's mercenaries is close to both and scores low;
        ``probe`` the best passage's logit along the fitted direction (0 without a probe).
        """
        about, not_about = self._descriptions()
        vectors = self.vectors(passages)
        to_topic = (vectors @ about.T).max(axis=1)
        margins = to_topic - (vectors @ not_about.T).max(axis=1)
        probe = self.check.probe
        if probe is not None and probe.weights.shape[0] != vectors.shape[1]:
            raise ValueError(f"probe has {probe.weights.shape[0]} weights, the model "
                             f"{vectors.shape[1]} dimensions")
        probes = probe.logits(vectors) if probe is not None else np.zeros(len(passages))
        feats = (min(rule_score, 3.0), float(to_topic.max()), float(margins.max()),
                 float(probes.max()))
        return Measured(feats, passages, vectors, margins, probes)

    def judge(self, passages: list[Passage], rule_score: float, path: str) -> Verdict | None:
        """The calibrated verdict on a candidate, or None when the path is not calibrated."""
        calibration = self.check.calibration.get(path)
        if calibration is None or not passages:
            return None
        measured = self.features(passages, rule_score)
        return Verdict(calibration.probability(measured.features), measured.features,
                       measured.ranked(calibration))
