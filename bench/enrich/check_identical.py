"""Does the enricher still give the same output? This tree against a git revision, on real text.

    PYTHONPATH=. .venv/bin/python bench/enrich/check_identical.py [--against REV]

Inputs: the article bodies of both shared corpora (``../shared/corpora/aeb`` and
``news4k``), each twice: the ground truth's ``articleBody`` with its title, and
trafilatura's extraction of the page (the fetcher's text) with the page title;
then the web records of ``tests/data/topic-real`` (en, ru, uk, fr, es, ar, with
their declared language as the hint). Every story goes through one ``Enricher``
in that order, so the dedup window and its clusters are compared as well.

The revision's code is unpacked with ``git archive`` into a temporary folder
and runs this same script there (``--emit``), so both sides see the same inputs
(the inputs and the revision's output are cached in ``--cache`` by commit).
Every field of every ``Enrichment`` (language and confidence, entities, countries,
topics with score, rule score and evidence, keyphrases, hash, cluster) must be
equal; the first differences are printed. Exit status 0 = identical.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def build_inputs(corpora: Path) -> list[dict[str, str | None]]:
    import trafilatura

    inputs: list[dict[str, str | None]] = []
    for corpus in ("aeb", "news4k"):
        truth = json.loads((corpora / corpus / "ground-truth.json").read_text(encoding="utf-8"))
        for page in sorted(truth):
            inputs.append({"id": f"{corpus}:{page}:truth", "title": str(truth[page].get("title") or ""),
                           "text": str(truth[page].get("articleBody") or ""), "hint": None})
        for path in sorted((corpora / corpus / "html").glob("*.html.gz")):
            html = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
            meta = trafilatura.extract_metadata(html)
            inputs.append({"id": f"{corpus}:{path.name}:extracted",
                           "title": meta.title if meta and meta.title else "",
                           "text": trafilatura.extract(html, include_comments=False) or "",
                           "hint": None})
    for path in sorted((REPO / "tests" / "data" / "topic-real").glob("web-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                inputs.append({"id": f"web:{record['id']}", "title": record.get("title") or "",
                               "text": record["text"], "hint": record.get("language")})
    return inputs


def emit(inputs_path: Path, output_path: Path) -> None:
    """Enrich every input with the code on ``sys.path`` and write one JSON line per story."""
    from pipeline.settings import load_settings
    from processors.enricher import Enricher

    enricher = Enricher.from_settings(load_settings())
    with output_path.open("w", encoding="utf-8") as out:
        for line in inputs_path.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            result = enricher.enrich_text(item["id"], item["title"], item["text"], item["hint"])
            out.write(json.dumps({"id": item["id"], "enrichment": result.model_dump(mode="json")},
                                 ensure_ascii=False, sort_keys=True) + "\n")


def _run_emit(tree: Path, inputs_path: Path, output_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--emit", str(inputs_path),
                    str(output_path)], env=env, cwd=tree, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="git revision to compare with (default: where this "
                        "branch left main, git merge-base HEAD main)")
    parser.add_argument("--corpora", type=Path, default=REPO.parent / "shared" / "corpora")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "enrich-check",
                        help="keeps the inputs and the revision's output between runs")
    parser.add_argument("--emit", nargs=2, type=Path, metavar=("INPUTS", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.emit:
        emit(*args.emit)
        return 0
    if not (args.corpora / "aeb").is_dir():
        args.corpora = Path("/work/shared/corpora")
    args.cache.mkdir(parents=True, exist_ok=True)
    inputs_path = args.cache / "inputs.jsonl"
    if not inputs_path.exists():
        inputs = build_inputs(args.corpora)
        inputs_path.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in inputs),
                               encoding="utf-8")
    revision = ["rev-parse", args.against] if args.against else ["merge-base", "HEAD", "main"]
    commit = subprocess.run(["git", "-C", str(REPO), *revision], capture_output=True,
                            text=True, check=True).stdout.strip()
    args.against = args.against or commit
    before_path = args.cache / f"before-{commit}.jsonl"
    if not before_path.exists():
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit],
                                 capture_output=True, check=True).stdout
        with tempfile.TemporaryDirectory(prefix="enrich-check-") as tmp:
            baseline = Path(tmp) / "baseline"
            with tarfile.open(fileobj=BytesIO(archive)) as tar:
                tar.extractall(baseline, filter="data")
            _run_emit(baseline, inputs_path, Path(tmp) / "before.jsonl")
            (Path(tmp) / "before.jsonl").replace(before_path)
    after_path = args.cache / "after.jsonl"
    _run_emit(REPO, inputs_path, after_path)
    before = before_path.read_text(encoding="utf-8").splitlines()
    after = after_path.read_text(encoding="utf-8").splitlines()
    differing = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    tags = sum(len(json.loads(line)["enrichment"]["topics"]) for line in after)
    print(f"stories: {len(after)} (aeb + news4k: ground-truth bodies and trafilatura's; web records), "
          f"topic tags: {tags}; against {args.against}: {len(differing)} differ")
    for b, a in differing[:5]:
        print("  before:", b[:600], "\n  after: ", a[:600])
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
