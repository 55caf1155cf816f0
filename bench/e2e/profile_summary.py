"""Where a stage spends its CPU: a summary of py-spy's collapsed stacks (``--format raw``).

    .venv/bin/python -m bench.e2e.profile_summary <run dir>/profile-enricher.txt [--top 25]

Each line of py-spy's raw output is ``frame;frame;...;frame COUNT`` (outermost first), one
line per distinct stack, COUNT samples. "Own" counts a sample for its innermost frame;
"inclusive" counts it once for every function on the stack (so nested calls add up to
their caller's figure). Functions are named ``module.function`` without line numbers.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<name>.+?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _function(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    file = match["file"]
    for marker in ("site-packages/", "/lib/python3.11/", "/work/wt-e2e/", "/app/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    module = file.removesuffix(".py").replace("/", ".")
    return f"{module}.{match['name']}"


def summarise(path: Path, top: int) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        names = [_function(f) for f in frames]
        total += samples
        own[names[-1]] += samples
        for name in set(names):
            inclusive[name] += samples
    if not total:
        return f"{path.name}: no samples"
    out = [f"{path.name}: {total} samples", "", "| inclusive | share | function |", "|---:|---:|---|"]
    out += [f"| {n} | {100 * n / total:.1f} % | `{name}` |" for name, n in inclusive.most_common(top)]
    out += ["", "| own | share | function |", "|---:|---:|---|"]
    out += [f"| {n} | {100 * n / total:.1f} % | `{name}` |" for name, n in own.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.profiles:
        print(summarise(path, args.top))
        print()


if __name__ == "__main__":
    main()
