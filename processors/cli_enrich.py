"""``newswatch enrich``: batch-tag an archive of JSON lines with the stream's processors."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, Any

import click

from processors.enricher import Enricher
from processors.gazetteer import demonym_forms
from processors.topic_rules import TopicDefinitionError
from processors.topics import TopicEngine

PROGRESS_EVERY_S = 2.0


class BadLine(ValueError):
    """A line that cannot be enriched; the message says why."""


def parse_line(line: str) -> tuple[str, str, str, str | None]:
    """(id, title, text, language hint) of one input line, or ``BadLine``."""
    try:
        data: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BadLine(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(data, dict):
        raise BadLine(f"expected a JSON object, got {type(data).__name__}")
    story_id = data.get("id")
    if not isinstance(story_id, str | int) or isinstance(story_id, bool) or str(story_id) == "":
        raise BadLine("missing or invalid 'id' (a non-empty string or number)")
    title, text = data.get("title") or "", data.get("text") or ""
    if not isinstance(title, str) or not isinstance(text, str):
        raise BadLine("'title' and 'text' must be strings")
    if not title.strip() and not text.strip():
        raise BadLine("both 'title' and 'text' are empty")
    hint = data.get("language")
    return str(story_id), title, text, hint if isinstance(hint, str) else None


def enrich_record(enricher: Enricher, story_id: str, title: str, text: str,
                  hint: str | None) -> dict[str, Any]:
    """The output object of one line: the Enrichment plus ``id`` and ``places``."""
    result = enricher.enrich_text(story_id, title, text, hint)
    out: dict[str, Any] = {"id": story_id}
    out.update(result.model_dump(mode="json"))
    out["places"] = [
        {"name": e.name, "country": e.country} for e in result.entities if e.type == "place"
    ]
    return out


def run_enrich(enricher: Enricher, source: IO[str], sink: IO[str], err: IO[str],
               progress_every_s: float = PROGRESS_EVERY_S) -> tuple[int, int]:
    """Enrich every line of ``source`` into ``sink``; returns (written, skipped)."""
    written = skipped = 0
    started = last = time.monotonic()
    for number, line in enumerate(source, 1):
        if not line.strip():
            continue
        try:
            record = enrich_record(enricher, *parse_line(line))
        except BadLine as exc:
            skipped += 1
            err.write(f"enrich: line {number}: skipped: {exc}\n")
            continue
        sink.write(json.dumps(record, ensure_ascii=False) + "\n")
        written += 1
        now = time.monotonic()
        if now - last >= progress_every_s:
            last = now
            rate = written / max(now - started, 1e-9)
            err.write(f"enrich: {number} lines read, {written} written, {skipped} skipped "
                      f"({rate:.0f} stories/s)\n")
            err.flush()
    elapsed = time.monotonic() - started
    err.write(f"enrich: done: {written} written, {skipped} skipped in {elapsed:.1f}s\n")
    return written, skipped


@click.command()
@click.argument("input_file", type=click.File("r", encoding="utf-8"), default="-")
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-",
              help="Where to write JSON lines (default: stdout).")
@click.option("--topics-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Topic definitions (default: $NEWSWATCH_TOPICS_DIR).")
def enrich(input_file: IO[str], output: IO[str], topics_dir: Path | None) -> None:
    """Enrich JSON lines ({"id", "title", "text"[, "language"]}) from INPUT_FILE or stdin.

    Writes one JSON line per story: language, entities, countries, places, topics
    (name, score, evidence), keyphrases, content hash and cluster id. A malformed
    line is reported on stderr with its number and skipped.
    """
    from pipeline.cli import settings_or_exit

    directory = topics_dir or settings_or_exit().topics_dir
    try:
        engine = TopicEngine.from_directory(directory, demonym_forms())
    except TopicDefinitionError as exc:
        click.echo(f"newswatch enrich: {exc}", err=True)
        sys.exit(2)
    run_enrich(Enricher(engine), input_file, output, sys.stderr)


COMMANDS: list[click.Command] = [enrich]
