"""Precision, recall and false alarms of the shipped topics on the real-news set, with 95 % CIs.

    .venv/bin/python bench/topics/report.py --split dev        # while tuning
    .venv/bin/python bench/topics/report.py --split test       # round 1's measure
    .venv/bin/python bench/topics/report.py --split round-2    # round 2's measure (now tuning)
    .venv/bin/python bench/topics/report.py --split round-3    # round 3's measure (now tuning)
    .venv/bin/python bench/topics/report.py --split round-4    # round 4's measure, once frozen

English and the other languages are reported apart: the English rules propose English
candidates, trigger stems the others. ``--errors`` lists the false alarms and misses
(dev only: reading a measure's errors would turn it into tuning data; the
foreign-fighters errors on its tuning splits are printed by bench/topics/calibrate.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from processors.evaluation import evaluate_real, load_real, real_report  # noqa: E402
from processors.gazetteer import demonym_forms  # noqa: E402
from processors.topics import TopicEngine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=["dev", "test", "round-2", "round-3", "round-4"], required=True)
    parser.add_argument("--corpora", type=Path, default=ROOT.parent / "shared" / "corpora")
    parser.add_argument("--errors", action="store_true", help="list false alarms and misses (dev)")
    args = parser.parse_args()
    if args.errors and args.split != "dev":
        raise SystemExit("--errors is for dev: a measure's errors must not steer tuning")
    engine = TopicEngine.from_directory(ROOT / "deploy" / "topics", demonym_forms())
    corpora = args.corpora if args.corpora.is_dir() else None
    stories = [s for s in load_real(ROOT / "tests" / "data" / "topic-real", corpora)
               if s.split == args.split]
    others = tuple(sorted({s.language for s in stories} - {"en"}))
    for label, languages in (("English", ("en",)), (f"other languages ({', '.join(others)})", others)):
        scores = evaluate_real(engine, stories, languages=languages)
        print(f"\n{args.split} split, {label}:\n")
        print(real_report(scores))
        if args.errors:
            for name, s in sorted(scores.items()):
                for source in s.false_alarms:
                    print(f"  {name} FA   {source}")
                for source in s.misses:
                    print(f"  {name} MISS {source}")


if __name__ == "__main__":
    main()
