"""Memory of a full alerter state, and the time its start-up replay takes.

    python bench/memory/alerter_state.py                       # 200,000 clusters in process
    python bench/memory/alerter_state.py --kafka 50000         # and a replay of 50,000 alerts

"Full" is one alerted cluster per story of a full near-duplicate window
(200,000 with the default 200 MiB window): a subscription cannot alert more
clusters than the window tells apart, and clusters older than
NEWSWATCH_ALERT_STATE_DAYS are forgotten. Every fourth cluster gets three
copies (update alerts), so the story-id sets are exercised too. Alerts carry
two topics with evidence snippets, as the real topic rules produce.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from memstat import mib, peak_rss, rss

from pipeline.settings import Settings, load_settings
from pipeline.story import Content, Evidence, Story, TopicTag
from processors.alerter import AlertState, AlertTopicReader, new_alert, update_alert
from processors.subscriptions import load_subscriptions

SNIPPET = ("Two Colombian nationals were captured while fighting for Russia near Pokrovsk, "
           "Ukraine's military intelligence said; they had been recruited through online adverts.")


def story(i: int, copy: int = 0) -> Story:
    url = f"https://outlet{copy}.example/2026/12/{i}/colombians-captured-fighting-for-russia"
    return Story.from_link(url, source=f"Outlet {copy}",
                           content=Content(title=f"Colombians captured near Pokrovsk ({i})",
                                           text=SNIPPET))


def tags() -> list[TopicTag]:
    return [TopicTag(name=name, score=4.5, evidence=[
        Evidence(text=SNIPPET, matched=["recruited", "fighting for"], start=0),
        Evidence(text=SNIPPET[40:], matched=["captured"], start=40)])
        for name in ("foreign-fighters", "private-military-companies")]


def alerts(settings: Settings, clusters: int):  # type: ignore[no-untyped-def]
    """The alerts of ``clusters`` clusters, in publication order."""
    sub = load_subscriptions(settings.subscriptions_dir)[0]
    topic_tags = tags()
    for i in range(clusters):
        first = new_alert(sub, story(i), topic_tags, settings.kibana_url, f"{i:032x}")
        yield first
        if i % 4 == 0:
            for copy in range(1, 4):
                first = update_alert(first, story(i, copy), topic_tags)
                yield first


def replay(settings: Settings, count: int) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    topic = f"bench-{uuid.uuid4().hex[:8]}.alerts.bench"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    try:
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                 linger_ms=50, batch_size=256_000)
        sent = 0
        for alert in alerts(settings, count):
            producer.send(topic, key=alert["story_id"].encode(), value=json.dumps(alert).encode())
            sent += 1
        producer.flush()
        producer.close()
        gc.collect()
        before = rss()
        # as processors.alerter.make_reader builds it
        consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                 enable_auto_commit=False, check_crcs=False)
        started = time.monotonic()
        state = AlertState(max_age_s=settings.alert_state_days * 86400)
        reader = AlertTopicReader(consumer, [topic], state)
        read = reader.catch_up()
        elapsed = time.monotonic() - started
        consumer.close()
        print(f"replay: {read:,} of {sent:,} alerts ({len(state):,} clusters) read back in "
              f"{elapsed:.1f} s ({read / elapsed:,.0f} alerts/s); RSS +{mib(rss() - before)}")
    finally:
        admin.delete_topics([topic])
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=200_000)
    parser.add_argument("--kafka", type=int, default=0, metavar="N",
                        help="also replay N clusters' alerts from a topic on the broker")
    args = parser.parse_args()
    settings = load_settings()
    state = AlertState(max_age_s=settings.alert_state_days * 86400)
    gc.collect()
    before = rss()
    started = time.monotonic()
    count = 0
    for alert in alerts(settings, args.clusters):
        state.record(alert)
        count += 1
    gc.collect()
    added = rss() - before
    print(f"state: {len(state):,} clusters from {count:,} alerts in "
          f"{time.monotonic() - started:.0f} s: RSS +{mib(added)} = "
          f"{added / len(state):,.0f} bytes/cluster")
    if args.kafka:
        del state
        gc.collect()
        replay(settings, args.kafka)
    print(f"process RSS {mib(rss())}, peak {mib(peak_rss())}")


if __name__ == "__main__":
    main()
