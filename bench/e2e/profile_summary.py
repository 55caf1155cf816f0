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


# Where a stage's samples go, first match wins (a substring of a function name on the stack).
# py-spy also samples threads that wait in a system call: those are "waiting", left out.
SPLIT = (
    ("waiting (select, condition wait, sleep)", ("EpollSelector.select", "_PollLikeSelector.select",
                                                 "Condition.wait", "time.sleep", "Event.wait")),
    ("enricher's dedup-window follower (re-reads news.enriched, signs each story again)",
     ("dedup_state.start_window_sync",)),
    ("CRC32C of fetched records (kafka-python, pure Python)", ("_crc32c.",)),
    ("story decode (Story.from_bytes)", ("Story.from_bytes",)),
    ("story encode (Story.to_bytes)", ("Story.to_bytes",)),
    ("extraction (ingest.extract.extract_content)", ("ingest.extract.extract_content",)),
    ("HTTP GET (ingest.fetch, httpx)", ("httpcore.", "httpx.", "ingest.httpget", "ingest.transport")),
    ("the processor (Enricher.__call__)", ("Enricher.__call__",)),
    ("processor, other (fetch_story, reporter)", ("ingest.fetcher.",)),
    ("Kafka client (network thread, producer, consumer)", ("kafka.",)),
)


def split(path: Path) -> str:
    """The stage's samples by what they were doing (SPLIT), as shares of the busy samples."""
    parts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        names = [_function(f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not names:
            continue
        leaf = names[-1]
        label = "other"
        for name, markers in SPLIT:
            where = [leaf] if name.startswith("waiting") else names
            if any(m in n for m in markers for n in where):
                label = name
                break
        parts[label] += int(count)
    busy = sum(n for label, n in parts.items() if not label.startswith("waiting"))
    out = [f"{path.name}: {busy} busy samples ({parts[SPLIT[0][0]]} waiting, left out)", "",
           "| part | share of busy samples |", "|---|---:|"]
    out += [f"| {label} | {100 * n / busy:.1f} % |" for label, n in parts.most_common()
            if not label.startswith("waiting")]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.profiles:
        print(split(path))
        print()
        print(summarise(path, args.top))
        print()


if __name__ == "__main__":
    main()
