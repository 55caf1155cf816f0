"""``newswatch feeds import|export|check|status`` and ``newswatch extract``.

User tools: every failure is one line on stderr and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from ingest.errors import IngestPermanent, IngestTransient, error_kind
from ingest.feeds import FeedList, FeedSpec, load_feeds, to_opml, to_yaml
from ingest.httpget import Limits, Page, aget, raise_for_status
from ingest.parse import parse_feed
from ingest.transport import new_async_client
from pipeline.settings import Settings

logger = logging.getLogger(__name__)

FAILURES = (IngestPermanent, IngestTransient)


def _settings() -> Settings:
    from pipeline.cli import settings_or_exit  # late: pipeline.cli imports this module

    return settings_or_exit()


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"newswatch: {message}", err=True)
    sys.exit(code)


def _load(path: Path) -> FeedList:
    try:
        feeds = load_feeds(path)
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror or exc}", 2)
        raise  # unreachable: _fail exits
    for problem in feeds.problems:
        click.echo(f"problem: {problem}", err=True)
    return feeds


@click.group()
def feeds() -> None:
    """Manage and inspect the feed list (NEWSWATCH_FEEDS)."""


@feeds.command("import")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="YAML file to write (default: merge into NEWSWATCH_FEEDS).")
def import_(source: Path, output: Path | None) -> None:
    """Import feeds from an OPML (or YAML) file; invalid entries are reported, valid ones kept."""
    settings = _settings()
    incoming = _load(source)
    target = output or settings.feeds
    existing = _load(target).feeds if target.exists() else []
    known = {f.url for f in existing}
    added = [f for f in incoming.feeds if f.url not in known]
    try:
        target.write_text(to_yaml(existing + added), encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {target}: {exc.strerror or exc}", 2)
    click.echo(f"imported {len(added)} new feed(s) of {len(incoming.feeds)} into {target}; "
               f"{len(incoming.problems)} problem(s)")


@feeds.command()
@click.option("--format", "fmt", type=click.Choice(["opml", "yaml"]), default="opml")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="File (default: stdout).")
def export(fmt: str, output: Path | None) -> None:
    """Export the feed list as OPML (for feed readers) or YAML."""
    settings = _settings()
    specs = _load(settings.feeds).feeds
    text = to_opml(specs) if fmt == "opml" else to_yaml(specs)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {len(specs)} feed(s) to {output}", err=True)


async def _download(url: str, settings: Settings) -> Page:
    async with new_async_client(4) as client:
        headers = {"User-Agent": settings.http_user_agent}
        return await aget(client, url, Limits.for_feeds(settings), headers)


@feeds.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
def check(target: str, as_json: bool) -> None:
    """Fetch (URL) or read (FILE) one feed; print its entries and every problem found."""
    settings = _settings()
    report: dict[str, Any] = {"feed": target, "problems": []}
    headers: dict[str, str] = {}
    try:
        if Path(target).is_file():
            data = Path(target).read_bytes()
            url = Path(target).resolve().as_uri().replace("file://", "http://localhost")
        else:
            FeedSpec(url=target)  # a clear message for something that is no URL
            page = asyncio.run(_download(target, settings))
            raise_for_status(page)
            data, url, headers = page.body, page.final_url, page.headers
            report.update(status=page.status, final_url=page.final_url,
                          redirects=page.redirects, content_type=page.headers.get("content-type"),
                          etag=page.headers.get("etag"),
                          last_modified=page.headers.get("last-modified"),
                          cache_control=page.headers.get("cache-control"))
        parsed = parse_feed(data, url, headers, settings.feed_max_entries,
                            settings.feed_parse_max_bytes)
    except FAILURES as exc:
        _fail(f"cannot read feed {target}: {exc} [{error_kind(exc)}]")
        return
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        _fail(f"not a feed file or URL: {target} ({reason})", 2)
        return
    except OSError as exc:
        _fail(f"cannot read {target}: {exc}", 2)
        return
    report.update(title=parsed.title, version=parsed.version, language=parsed.language,
                  ttl=parsed.ttl, update_period=parsed.update_period, outcome=parsed.outcome)
    report["problems"] = parsed.problems + [
        f"entry {i + 1} ({e.link}) has no date" for i, e in enumerate(parsed.entries)
        if e.published_at is None
    ]
    report["entries"] = [
        {"title": e.title, "link": e.link, "published_at": e.published_at.isoformat()
         if e.published_at else None, "author": e.author} for e in parsed.entries
    ]
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    click.echo(f"{report.get('title') or '(untitled)'}  [{parsed.version or 'unknown format'}]  "
               f"{len(parsed.entries)} entries")
    for key in ("status", "final_url", "content_type", "etag", "last_modified", "cache_control",
                "ttl", "update_period", "language"):
        if report.get(key):
            click.echo(f"  {key}: {report[key]}")
    for entry in report["entries"]:
        click.echo(f"- {entry['published_at'] or '(no date)'}  {entry['title'] or '(no title)'}")
        click.echo(f"  {entry['link']}")
    for problem in report["problems"]:
        click.echo(f"problem: {problem}")


@feeds.command()
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def status(as_json: bool) -> None:
    """Per-feed health: last success, last error, failures in a row, stories/day, extraction."""
    from kafka.errors import KafkaError

    from ingest.status import feed_status

    settings = _settings()
    specs = load_feeds(settings.feeds).feeds if settings.feeds.exists() else []
    try:
        rows = feed_status(settings, specs)
    except KafkaError as exc:
        _fail(f"cannot read feed state from Kafka at {settings.kafka_bootstrap}: {exc}")
        return
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    click.echo(f"{'STATUS':<13} {'FAILS':>5} {'NEW/DAY':>7} {'EXTR.FAIL':>9}  "
               f"{'LAST SUCCESS':<25} FEED / LAST ERROR")
    for row in rows:
        rate = row["extraction_failure_rate"]
        click.echo(
            f"{row['status']:<13} {row.get('consecutive_failures', 0):>5} "
            f"{row.get('new_stories_per_day', 0):>7} "
            f"{'-' if rate is None else f'{rate:.0%}':>9}  {row.get('last_success_at') or '-':<25} "
            f"{row['name'] or row['feed_url']}"
            + (f"  [{row['last_error_kind']}] {row['last_error']}"
               if row.get("consecutive_failures") else "")
        )


def _extract_one(target: str, settings: Settings) -> dict[str, Any]:
    from ingest.extract import decode_html, extract_content
    from ingest.fetch import PageFetcher

    result: dict[str, Any] = {"input": target}
    try:
        path = Path(target)
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".gz":
                import gzip

                data = gzip.decompress(data)
            html, charset = decode_html(data)
            content = extract_content(html, None)
        else:
            FeedSpec(url=target)
            fetcher = PageFetcher(settings)
            try:
                fetched = fetcher.fetch(target)
            finally:
                fetcher.close()
            html, charset = fetched.html, fetched.charset
            content = extract_content(html, fetched.page.final_url)
            result.update(final_url=fetched.page.final_url, status=fetched.page.status,
                          redirects=fetched.page.redirects)
    except FAILURES as exc:
        return {**result, "ok": False, "error": str(exc), "error_kind": error_kind(exc)}
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        return {**result, "ok": False, "error": f"not a readable file or URL: {reason}",
                "error_kind": "bad_input"}
    except OSError as exc:
        return {**result, "ok": False, "error": f"cannot read {target}: {exc}",
                "error_kind": "bad_input"}
    except Exception as exc:
        # one bad page (a parser or extractor bug on odd markup) must not stop the others:
        # it is reported on its own line, with the traceback in the log
        logger.exception("extraction failed for %s", target)
        return {**result, "ok": False, "error": f"{type(exc).__name__}: {exc}",
                "error_kind": "extraction_error"}
    result.update(ok=True, charset=charset,
                  **content.model_dump(mode="json", exclude={"extractor"}))
    return result


@click.command()
@click.argument("targets", nargs=-1, required=True)
def extract(targets: tuple[str, ...]) -> None:
    """Extract articles from saved pages (FILE.html[.gz]) or URLs: one JSON line per page."""
    settings = _settings()
    failed = 0
    for target in targets:
        result = _extract_one(target, settings)
        failed += not result["ok"]
        click.echo(json.dumps(result, ensure_ascii=False))
    if failed:
        click.echo(f"newswatch: {failed} of {len(targets)} page(s) could not be extracted",
                   err=True)
        sys.exit(1)


COMMANDS: list[click.Command] = [feeds, extract]
