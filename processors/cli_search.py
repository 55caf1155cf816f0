"""``newswatch search``: query the stories index from the terminal."""

from __future__ import annotations

import json
import sys

import click
from elastic_transport import TransportError
from elasticsearch import ApiError

from processors.search import Filters, SearchError, SearchResult, search


def _table(result: SearchResult) -> str:
    lines = [f"{result.total} stories in {result.clusters} clusters; showing {len(result.hits)}"]
    for hit in result.hits:
        when = (hit.published_at or "")[:16].replace("T", " ") or "date?"
        tags = ", ".join(f"{t['name']} {t['score']:.1f}" for t in hit.topics if t.get("name"))
        copies = f"  (+{hit.copies - 1} similar)" if hit.copies > 1 else ""
        lines.append("")
        title = hit.title_highlight or hit.title or "(untitled)"
        lines.append(f"{when}  {hit.source or '?'}  {title}{copies}")
        lines.append(f"  {hit.url}")
        if tags:
            lines.append(f"  topics: {tags}")
        for snippet in hit.snippets:
            lines.append("  … " + " ".join(snippet.split()) + " …")
    return "\n".join(lines)


@click.command("search")
@click.argument("query", required=False, default="")
@click.option("--topic", "topics", multiple=True, help="Topic tag (repeatable: any of them).")
@click.option("--entity", "entities", multiple=True, help="Entity name, case-insensitive.")
@click.option("--country", "countries", multiple=True, help="ISO 3166 alpha-2 code, e.g. UA.")
@click.option("--language", "languages", multiple=True, help="Language code, e.g. en.")
@click.option("--source", "sources", multiple=True, help="Outlet (feed name or host).")
@click.option("--since", help="Published at or after: 2025-01-31, or relative: 7d, 24h.")
@click.option("--until", help="Published at or before (same forms as --since).")
@click.option("--limit", default=20, show_default=True, type=int, help="Clusters to show.")
@click.option("--all-copies", is_flag=True, help="Do not collapse near-duplicate clusters.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def search_command(query: str, topics: tuple[str, ...], entities: tuple[str, ...],
                   countries: tuple[str, ...], languages: tuple[str, ...],
                   sources: tuple[str, ...], since: str | None, until: str | None, limit: int,
                   all_copies: bool, as_json: bool) -> None:
    """Search stories: QUERY (words, "phrases", -exclusions, a|b) plus filters.

    Near-duplicates (one story from many outlets) show as one line with a count.
    """
    from pipeline.cli import settings_or_exit

    settings = settings_or_exit()
    filters = Filters(list(topics), list(entities), list(countries), list(languages),
                      list(sources), since, until)
    try:
        result = search(settings, query, filters, limit=limit, collapse=not all_copies,
                        tags=("<em>", "</em>") if as_json else ("«", "»"))
    except SearchError as exc:
        raise click.UsageError(str(exc)) from None
    except ApiError as exc:
        click.echo(f"newswatch search: Elasticsearch refused the search: {exc.message}", err=True)
        sys.exit(1)
    except TransportError as exc:
        click.echo(f"newswatch search: cannot reach Elasticsearch at "
                   f"{settings.elasticsearch_url}: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        click.echo(_table(result))


@click.group("index")
def index_group() -> None:
    """The stories index: rollover (new write index) for the time-based scheme."""


@index_group.command("rollover")
@click.option("--max-age", help="Only if the write index is older than this, e.g. 30d.")
@click.option("--max-docs", type=int, help="Only if it holds at least this many stories.")
@click.option("--max-size", help="Only if its primary shard is this big, e.g. 30gb.")
def rollover_command(max_age: str | None, max_docs: int | None, max_size: str | None) -> None:
    """Start a new write index behind the alias (run from cron; idempotent with conditions)."""
    from pipeline.cli import settings_or_exit
    from processors.elastic import rollover

    settings = settings_or_exit()
    conditions: dict[str, object] = {}
    if max_age:
        conditions["max_age"] = max_age
    if max_docs:
        conditions["max_docs"] = max_docs
    if max_size:
        conditions["max_primary_shard_size"] = max_size
    try:
        result = rollover(settings, conditions or None)
    except (ApiError, TransportError) as exc:
        click.echo(f"newswatch index rollover: {exc}", err=True)
        sys.exit(1)
    if result.get("rolled_over"):
        click.echo(f"rolled over: {result['old_index']} -> {result['new_index']}")
    else:
        click.echo(f"not rolled over (conditions not met): write index {result['old_index']}")


COMMANDS: list[click.Command] = [search_command, index_group]
