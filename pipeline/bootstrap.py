"""``newswatch setup``: everything the stages expect to exist, created idempotently."""

from __future__ import annotations

from collections.abc import Iterator

from pipeline.kafka_io import (
    ALERT_PREFIX,
    TopicSpec,
    ensure_topics,
    expand_topic_specs,
    load_topic_specs,
)
from pipeline.settings import Settings


def bootstrap(settings: Settings, *, elasticsearch: bool = True) -> Iterator[str]:
    """Create topics (pipeline and alert topics) and the index; yields one line per step."""
    from processors.subscriptions import load_subscriptions

    specs = expand_topic_specs(settings, load_topic_specs(settings.kafka_topics))
    subscriptions = load_subscriptions(settings.subscriptions_dir)
    specs += [TopicSpec(ALERT_PREFIX + sub.name, partitions=1) for sub in subscriptions]
    created = ensure_topics(settings, specs)
    yield f"kafka: {len(specs)} topics, {len(created)} created"
    if elasticsearch:
        from processors.elastic import bootstrap_index

        for line in bootstrap_index(settings):
            yield f"elasticsearch: {line}"
