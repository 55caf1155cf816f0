"""Fit each topic's meaning-check calibration on the DEV split of the real-news set.

    .venv/bin/python bench/topics/calibrate.py [--write] [--corpora ../shared/corpora]

For every topic with a ``check``: every dev story's first-pass candidate is scored
(rule score, similarity to the topic's descriptions, margin over its look-alikes),
and a logistic regression of the gold label on those three features is fitted
separately for the rules path (the topic's own languages) and the triggers path
(other languages). Stories the first pass does not propose cannot be tagged and
take no part in the fit. The tag threshold and the default subscription's
``alert_score`` are then chosen on dev: the smallest probability whose dev
precision meets the topic's target. ``--write`` puts the weights and thresholds into
``deploy/topics/<topic>.yaml``; without it the script only reports.

The test split is never read here (``split_of`` decides, from a hash of the source):
it is for tests/unit/test_topics_real_news.py alone.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from processors.evaluation import RealStory, load_real  # noqa: E402
from processors.gazetteer import demonym_forms  # noqa: E402
from processors.topics import TopicEngine  # noqa: E402

PRECISION_TARGET = {"foreign-fighters": 0.95}
DEFAULT_TARGET = 0.9
GRID = [round(0.3 + 0.01 * i, 2) for i in range(70)]


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 50) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method; returns [bias, w...] on the
    original feature scale. The features are standardised for the fit, so the penalty
    treats a similarity (spread ~0.1) and the rule score (spread ~1) alike."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    w = _newton((x - mean) / std, y, l2, steps)
    weights = w[1:] / std
    return np.concatenate([[w[0] - float(mean @ weights)], weights])


def _newton(x: np.ndarray, y: np.ndarray, l2: float, steps: int) -> np.ndarray:
    design = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(design.shape[1])
    penalty = np.eye(design.shape[1]) * l2
    penalty[0, 0] = 0.0  # the bias is not shrunk
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -60, 60)))
        grad = design.T @ (p - y) + penalty @ w
        hess = design.T @ (design * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def features_of(engine: TopicEngine, stories: list[RealStory], topic: str) -> dict[str, list]:
    """Per path: (features, label, source) of every dev story the first pass proposes."""
    check = engine.compiled_check(topic)
    assert check is not None
    rows: dict[str, list] = {"rules": [], "triggers": []}
    for story in stories:
        for cand in engine.candidates(story.title or None, story.text, story.language):
            if cand.topic != topic:
                continue
            feats, _ = check.features(cand.passages, cand.rule_score)
            rows[cand.path].append((feats, story.labels[topic], story.source))
    return rows


def choose_threshold(probs: np.ndarray, gold: np.ndarray, target: float) -> float:
    """The smallest probability whose dev precision (at or above it) meets ``target``."""
    for t in GRID:
        chosen = probs >= t
        if chosen.sum() and gold[chosen].mean() >= target:
            return t
    return GRID[-1]


def write_calibration(path: Path, weights: dict[str, list[float]], tag: float, alert: float) -> None:
    text = path.read_text(encoding="utf-8")
    block = "  calibration:\n" + "".join(
        f"    {p}: {{bias: {w[0]:.3f}, rule: {w[1]:.3f}, about: {w[2]:.3f}, margin: {w[3]:.3f}}}\n"
        for p, w in weights.items())
    text, count = re.subn(r"^  calibration:.*\n(?:^    .*\n)*", block, text, flags=re.M)
    if count != 1:
        raise SystemExit(f"{path}: expected one 'calibration:' line under check")
    text = re.sub(r"^  tag_probability: .*$", f"  tag_probability: {tag}", text, flags=re.M)
    text = re.sub(r"^  alert_score: .*$", f"  alert_score: {alert}", text, flags=re.M)
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", type=Path, default=ROOT.parent / "shared" / "corpora")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    topics_dir = ROOT / "deploy" / "topics"
    engine = TopicEngine.from_directory(topics_dir, demonym_forms())
    corpora = args.corpora if args.corpora.is_dir() else None
    if corpora is None:
        print(f"note: {args.corpora} not found: fitting without the shared corpora", file=sys.stderr)
    dev = [s for s in load_real(ROOT / "tests" / "data" / "topic-real", corpora) if s.split == "dev"]
    print(f"dev split: {len(dev)} stories")
    for topic in engine.names:
        if engine.compiled_check(topic) is None:
            continue
        target = PRECISION_TARGET.get(topic, DEFAULT_TARGET)
        weights: dict[str, list[float]] = {}
        tag_at = alert_at = 0.5
        for path, rows in features_of(engine, dev, topic).items():
            if not rows:
                continue
            x = np.array([r[0] for r in rows], dtype=float)
            y = np.array([r[1] for r in rows], dtype=float)
            if y.min() == y.max():
                print(f"{topic} {path}: {len(rows)} candidates, all labelled {int(y[0])}: not fitted")
                continue
            w = fit_logistic(x, y)
            weights[path] = list(w)
            probs = 1.0 / (1.0 + np.exp(-(w[0] + x @ w[1:])))
            if path == "rules":
                tag_at = max(0.5, choose_threshold(probs, y, DEFAULT_TARGET))
                alert_at = max(tag_at, choose_threshold(probs, y, target))
            tagged = probs >= tag_at
            tp = int((tagged & (y == 1)).sum())
            print(f"{topic} {path}: {len(rows)} candidates ({int(y.sum())} on topic); weights "
                  f"{np.round(w, 2).tolist()}; tagged at {tag_at}: {int(tagged.sum())} "
                  f"(precision {tp / max(1, tagged.sum()):.2f}, recall of candidates "
                  f"{tp / max(1, y.sum()):.2f}); alert_score {alert_at}")
            for (feats, label, source), p in zip(rows, probs, strict=True):
                if (p >= tag_at) != bool(label):
                    print(f"   {'FA  ' if label == 0 else 'MISS'} p={p:.2f} "
                          f"f={np.round(feats, 2).tolist()} {source}")
        if args.write and weights:
            write_calibration(topics_dir / f"{topic}.yaml", weights, tag_at, alert_at)
            print(f"  written to deploy/topics/{topic}.yaml")


if __name__ == "__main__":
    main()
