"""Peak RSS of the enricher with a full near-duplicate window, against its compose limit.

    python bench/memory/enricher_full.py                # in process
    python bench/memory/enricher_full.py --kafka        # and then through run_stage on the real broker

Builds the enricher as ``newswatch run enricher`` does (topic rules, entities,
the window sized by NEWSWATCH_DEDUP_WINDOW_MB/_DAYS), fills the window to its
capacity the way the start-up read-back does (``remember``), then enriches the
421 real news4k bodies (../shared; synthetic ones without it). With
``--kafka`` those stories then go through the stage runner itself on a topic
prefix of its own (topics deleted afterwards), so Kafka clients and batches
count too.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from memstat import mib, peak_rss, real_bodies, rss, synthetic_texts, vocabulary

from pipeline.settings import Settings, load_settings
from pipeline.story import Content, Story
from processors.dedup import NearDuplicateIndex
from processors.enricher import Enricher

COMPOSE_LIMIT = 2**30  # docker-compose.yml: enricher mem_limit 1g


def through_kafka(base: Settings, enrich: Enricher, stories: list[Story]) -> None:
    from kafka import KafkaAdminClient, KafkaProducer

    from pipeline.kafka_io import ARTICLES, ENRICHED, ensure_topics, load_topic_specs
    from pipeline.stage import KafkaTopicSink, run_stage

    settings = base.model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:8]}.",
                                       "poll_timeout_ms": 500})
    ensure_topics(settings, load_topic_specs(settings.kafka_topics))
    try:
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        for story in stories:
            producer.send(settings.topic(ARTICLES), key=story.id.encode(), value=story.to_bytes())
        producer.flush()
        producer.close()
        run_stage("enricher", enrich, ARTICLES,
                  lambda p: KafkaTopicSink(p, settings.topic(ENRICHED)), settings,
                  idle_exit_after=5)
    finally:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        prefix = settings.topic_prefix
        admin.delete_topics([t for t in admin.list_topics() if t.startswith(prefix)])
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kafka", action="store_true", help="also run the stage on the broker")
    parser.add_argument("--words", type=int, default=120, help="words per synthetic window story")
    args = parser.parse_args()
    settings = load_settings()
    print(f"start: RSS {mib(rss())}")

    started = time.monotonic()
    enrich = Enricher.from_settings(settings)
    enrich.dedup = NearDuplicateIndex.from_settings(settings)
    window = enrich.dedup
    print(f"enricher built in {time.monotonic() - started:.1f} s: RSS {mib(rss())}")

    started = time.monotonic()
    vocab = vocabulary(settings.shared_dir)
    for i, text in enumerate(synthetic_texts(window.capacity, args.words, vocab, seed=7)):
        sid = f"{i:032x}"
        window.remember(sid, sid, text)
    gc.collect()
    print(f"window filled ({len(window):,} stories of capacity {window.capacity:,}, "
          f"{settings.dedup_window_mb:g} MiB bound) in {time.monotonic() - started:.0f} s: "
          f"RSS {mib(rss())}")

    bodies = real_bodies(settings.shared_dir) or [
        (f"Story {i}", t) for i, t in enumerate(synthetic_texts(421, 700, vocab, seed=9))]
    stories = [Story.from_link(f"https://bench.example/{i}", source="bench",
                               content=Content(title=title, text=body))
               for i, (title, body) in enumerate(bodies)]
    started = time.monotonic()
    for story in stories:
        enrich(story.model_copy(deep=True))
    print(f"enriched {len(stories)} real stories in {time.monotonic() - started:.1f} s: "
          f"RSS {mib(rss())}, window {len(window):,}")
    if args.kafka:
        through_kafka(settings, enrich, stories)
        print(f"through run_stage on the broker: RSS {mib(rss())}")
    peak = peak_rss()
    print(f"peak RSS {mib(peak)} = {peak / COMPOSE_LIMIT:.0%} of the 1 GiB compose limit; "
          f"headroom {mib(COMPOSE_LIMIT - peak)}")


if __name__ == "__main__":
    main()
