"""``newswatch setup``: everything the stages expect to exist, created idempotently.

It lives here, above ``pipeline/``, because it needs what the processors define: the
alert topics of the subscriptions and the Elasticsearch index (``pipeline/`` is the
ground layer and imports neither ``ingest`` nor ``processors``)."""

from __future__ import annotations

from collections.abc import Iterator

import click

from pipeline.kafka_io import (
    ALERT_PREFIX,
    TopicSpec,
    ensure_topics,
    expand_topic_specs,
    load_topic_specs,
)
from pipeline.settings import Settings
from processors.subscriptions import load_subscriptions


def bootstrap(settings: Settings, *, elasticsearch: bool = True) -> Iterator[str]:
    """Create topics (pipeline and alert topics) and the index; yields one line per step."""
    specs = expand_topic_specs(settings, load_topic_specs(settings.kafka_topics))
    subscriptions = load_subscriptions(settings.subscriptions_dir)
    specs += [TopicSpec(ALERT_PREFIX + sub.name, partitions=1) for sub in subscriptions]
    created = ensure_topics(settings, specs)
    yield f"kafka: {len(specs)} topics, {len(created)} created"
    if elasticsearch:
        from processors.elastic import bootstrap_index

        for line in bootstrap_index(settings):
            yield f"elasticsearch: {line}"


@click.command()
@click.option("--skip-elasticsearch", is_flag=True, help="Only create the Kafka topics.")
def setup(skip_elasticsearch: bool) -> None:
    """Create Kafka topics, alert topics and the Elasticsearch index (idempotent)."""
    from pipeline.cli import settings_or_exit

    settings = settings_or_exit()
    for line in bootstrap(settings, elasticsearch=not skip_elasticsearch):
        click.echo(line)


COMMANDS = [setup]
