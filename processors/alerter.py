"""The alerter stage: evaluate every subscription against every enriched story.

An alert is JSON on Kafka topic ``alerts.<subscription>``. One alert per story
cluster per subscription: the first matching story of a cluster publishes an
``"event": "new"`` alert keyed by its story id; each later copy (another
outlet, same cluster) publishes an ``"event": "update"`` with the SAME key, a
larger ``cluster_size`` and the copy under ``latest``. A consumer that wants
one message per cluster reads only ``new`` events, or keeps the last message
per key. A redelivered story that is already part of an alert publishes
nothing.

The alert topics are the alerter's memory: at start it reads the last
``NEWSWATCH_ALERT_STATE_DAYS`` of them (from the offsets ``offsets_for_times``
gives), and before each batch it reads what any replica has added since, so a
restart (or a second replica) does not alert a cluster twice. A cluster whose
last alert is older than that is forgotten (its next copy starts a new alert,
as the dedup window, bounded by age too, would give it a new cluster anyway).
A read that takes longer than ``CATCH_UP_TIMEOUT_S`` is logged and the stage
goes on with what it has: a slow broker costs at worst a repeated "new" alert,
never a stage that cannot start.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from pipeline.errors import PermanentError, TransientError
from pipeline.kafka_io import ENRICHED, TopicSpec, behind, drain, ensure_topics
from pipeline.metrics import ALERT_STATE_CLUSTERS, ALERTS, track
from pipeline.retry import backoff
from pipeline.settings import Settings
from pipeline.stage import run_stage, unchanged
from pipeline.story import Story, TopicTag
from processors.subscriptions import Subscription, Webhook, load_subscriptions

logger = logging.getLogger(__name__)

KIBANA_DATA_VIEW_ID = "newswatch-stories"
MAX_LISTED_COPIES = 50  # story ids listed in an alert; cluster_size keeps counting
CATCH_UP_TIMEOUT_S = 60.0


def kibana_link(kibana_url: str, story_id: str) -> str:
    """A Discover URL showing exactly this story (rison state, as Kibana writes it)."""
    app = (
        f"(dataSource:(dataViewId:{KIBANA_DATA_VIEW_ID},type:dataView),"
        f"query:(language:kuery,query:'id:\"{story_id}\"'))"
    )
    state = f"_g=(time:(from:now-5y,to:now))&_a={quote(app, safe=':(),')}"
    return f"{kibana_url.rstrip('/')}/app/discover#/?{state}"


def _tag_json(tag: TopicTag) -> dict[str, Any]:
    return {
        "name": tag.name,
        "score": tag.score,  # calibrated probability where the topic has a meaning check
        "rule_score": tag.rule_score,
        "evidence": [e.model_dump(exclude_none=True) for e in tag.evidence],
    }


def _copy(story: Story) -> dict[str, Any]:
    published = story.published_at
    return {
        "story_id": story.id, "title": story.title, "url": story.url, "source": story.source,
        "published_at": published.isoformat() if published else None,
    }


def new_alert(sub: Subscription, story: Story, tags: list[TopicTag], kibana_url: str,
              cluster_id: str) -> dict[str, Any]:
    """The first alert of a cluster for ``sub``."""
    return {
        "event": "new",
        "subscription": sub.name,
        **_copy(story),
        "topics": [_tag_json(t) for t in tags],
        "cluster_id": cluster_id,
        "cluster_size": 1,
        "cluster_story_ids": [story.id],
        "kibana_url": kibana_link(kibana_url, story.id),
        "alerted_at": datetime.now(UTC).isoformat(),
    }


def update_alert(previous: dict[str, Any], story: Story, tags: list[TopicTag]) -> dict[str, Any]:
    """The cluster's alert annotated with one more copy (same key as the first alert)."""
    alert = dict(previous)
    alert["event"] = "update"
    alert["cluster_size"] = int(previous.get("cluster_size", 1)) + 1
    alert["cluster_story_ids"] = [*previous.get("cluster_story_ids", []), story.id][
        :MAX_LISTED_COPIES
    ]
    alert["latest"] = {**_copy(story), "topics": [_tag_json(t) for t in tags]}
    alert["alerted_at"] = datetime.now(UTC).isoformat()
    return alert


class ClusterState:
    """One cluster's latest alert and the stories already part of it, kept compact.

    The alert is only read when another copy of the cluster arrives, so it is
    kept as deflated JSON (~1/5 of the dict); story ids as a tuple (no set per
    cluster). bench/memory/alerter_state.py measures the bytes per cluster.
    """

    __slots__ = ("_blob", "at", "story_ids")

    def __init__(self, alert: dict[str, Any], at: float = 0.0, raw: bytes | None = None) -> None:
        self._blob = b""
        self.set(alert, raw)
        self.story_ids: tuple[str, ...] = ()
        self.at = at  # Unix time of the cluster's last alert

    @property
    def alert(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(zlib.decompress(self._blob))
        return value

    def set(self, alert: dict[str, Any], raw: bytes | None = None) -> None:
        """Keep ``alert``; ``raw``, its JSON as read from Kafka, saves encoding it again
        (a replay's time went to that)."""
        if raw is None:
            # "latest" is replaced by every update: a copy of it kept here is never read
            kept = {k: v for k, v in alert.items() if k != "latest"}
            raw = json.dumps(kept, ensure_ascii=False).encode("utf-8")
        self._blob = zlib.compress(raw, 1)

    def add_story(self, story_id: str) -> None:
        if story_id not in self.story_ids:
            self.story_ids = (*self.story_ids, story_id)


class AlertState:
    """(subscription, cluster id) -> the latest alert, rebuilt from the alert topics.

    Clusters are kept in the order of their last alert, so the ones not alerted
    for ``max_age_s`` are forgotten from the front.
    """

    def __init__(self, max_age_s: float = 7 * 86400,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_age_s = max_age_s
        self.clock = clock
        self.clusters: OrderedDict[tuple[str, str], ClusterState] = OrderedDict()

    def __len__(self) -> int:
        return len(self.clusters)

    def get(self, sub: str, cluster_id: str) -> ClusterState | None:
        self.expire()
        return self.clusters.get((sub, cluster_id))

    def record(self, alert: dict[str, Any], at: float | None = None,
               raw: bytes | None = None) -> None:
        """Remember an alert (one we produced, or one read back from a topic at its record
        time, with its JSON bytes as ``raw``)."""
        at = self.clock() if at is None else at
        if at < self.clock() - self.max_age_s:
            return
        key = (str(alert.get("subscription")), str(alert.get("cluster_id")))
        state = self.clusters.get(key)
        if state is None:
            key = (sys.intern(key[0]), key[1])  # one subscription name, not one per cluster
            state = self.clusters[key] = ClusterState(alert, at, raw)
        else:
            state.set(alert, raw)
        state.at = max(state.at, at)
        self.clusters.move_to_end(key)
        state.add_story(str(alert.get("story_id")))
        latest = alert.get("latest") or {}
        if latest.get("story_id"):
            state.add_story(str(latest["story_id"]))
        self.expire()

    def expire(self) -> int:
        """Forget the clusters last alerted longer than ``max_age_s`` ago; returns how many."""
        cutoff = self.clock() - self.max_age_s
        dropped = 0
        while self.clusters:
            key, state = next(iter(self.clusters.items()))
            if state.at >= cutoff:
                break
            del self.clusters[key]
            dropped += 1
        return dropped


class AlertTopicReader:
    """Reads the alert topics (the state's time window, then incrementally) into an AlertState."""

    def __init__(self, consumer: KafkaConsumer, topics: list[str], state: AlertState,
                 timeout_s: float = CATCH_UP_TIMEOUT_S) -> None:
        self.consumer = consumer
        self.state = state
        self.timeout_s = timeout_s
        partitions: list[TopicPartition] = []
        for topic in topics:
            for p in sorted(consumer.partitions_for_topic(topic) or {0}):
                partitions.append(TopicPartition(topic, p))
        self.partitions = partitions
        consumer.assign(partitions)
        if not partitions:
            return
        # start at the first alert within the state's window, not at the topic's beginning
        since_ms = int((state.clock() - state.max_age_s) * 1000)
        by_time = consumer.offsets_for_times({tp: since_ms for tp in partitions})
        ends = consumer.end_offsets(partitions)
        for tp in partitions:
            found = by_time.get(tp)
            consumer.seek(tp, found.offset if found is not None else ends[tp])

    def catch_up(self) -> int:
        """Read the alerts published so far (within ``timeout_s``); returns how many were read."""
        ends = self.consumer.end_offsets(self.partitions)
        read = 0
        for record in drain(self.consumer, ends, timeout_s=self.timeout_s):
            try:
                at = record.timestamp / 1000 if record.timestamp > 0 else None
                self.state.record(json.loads(record.value), at, record.value)
                read += 1
            except (ValueError, TypeError):
                logger.warning("alerter: unreadable alert at %s:%s offset %s",
                               record.topic, record.partition, record.offset)
        left = behind(self.consumer, ends)
        if left:
            logger.warning("alerter: reading the alert topics stopped short (time limit %.0fs, or "
                           "an end never reached); going on with "
                           "%d alerts read, %d not yet (a cluster among them may be alerted "
                           "as new again)", self.timeout_s, read, left)
        return read


def post_webhook(webhook: Webhook, alert: dict[str, Any], settings: Settings) -> None:
    """POST the alert, retrying connection errors, 429 and 5xx with backoff."""
    for attempt in Retrying(
        stop=stop_after_attempt(settings.max_attempts),
        wait=backoff(settings),
        retry=retry_if_exception_type((TransientError, httpx.TransportError)),
        reraise=True,
    ):
        with attempt:
            response = httpx.post(webhook.url, json=alert, headers=webhook.headers,
                                  timeout=webhook.timeout_s)
            if response.status_code == 429 or response.status_code >= 500:
                raise TransientError(f"webhook {webhook.url} answered {response.status_code}")
            if response.status_code >= 400:
                raise PermanentError(f"webhook {webhook.url} answered {response.status_code}")


class AlertSink:
    """Matches each forwarded story against the subscriptions; publishes alerts at flush."""

    def __init__(self, settings: Settings, subscriptions: list[Subscription],
                 producer: KafkaProducer, reader: AlertTopicReader) -> None:
        self.settings = settings
        self.subscriptions = subscriptions
        self.producer = producer
        self.reader = reader
        self._pending: list[tuple[Story, ConsumerRecord]] = []

    def emit(self, story: Story, record: ConsumerRecord) -> None:
        self._pending.append((story, record))

    def _alerts_for(self, story: Story) -> list[tuple[Subscription, dict[str, Any]]]:
        out = []
        state = self.reader.state
        for sub in self.subscriptions:
            tags = sub.match(story)
            if tags is None:
                continue
            cluster_id = (story.enrichment.cluster_id if story.enrichment else None) or story.id
            known = state.get(sub.name, cluster_id)
            if known is None:
                alert = new_alert(sub, story, tags, self.settings.kibana_url, cluster_id)
            elif story.id in known.story_ids:
                continue  # redelivered: this copy is already part of the alert
            else:
                alert = update_alert(known.alert, story, tags)
            state.record(alert)
            out.append((sub, alert))
        return out

    def flush(self) -> list[tuple[ConsumerRecord, Exception]]:
        """Publish the batch's alerts (and webhooks); webhook failures are dead-lettered."""
        pending, self._pending = self._pending, []
        if not pending:
            return []
        self.reader.catch_up()  # what other replicas (or our previous life) published
        futures = []
        published: list[tuple[str, str]] = []  # (subscription, event), counted once delivered
        hooks: list[tuple[ConsumerRecord, Webhook, dict[str, Any]]] = []
        for story, record in pending:
            for sub, alert in self._alerts_for(story):
                topic = self.settings.topic(sub.alert_topic)
                value = json.dumps(alert, ensure_ascii=False).encode("utf-8")
                futures.append(self.producer.send(topic, key=alert["story_id"].encode(),
                                                  value=value))
                published.append((sub.name, str(alert["event"])))
                logger.info("alerter: %s alert for cluster %s (%s) on %s", alert["event"],
                            alert["cluster_id"], story.id, topic)
                if sub.output.webhook is not None:
                    hooks.append((record, sub.output.webhook, alert))
        self.producer.flush()
        for future in futures:
            future.get(timeout=30)  # a Kafka failure raises: nothing committed, batch redone
        for name, event in published:
            ALERTS.labels(name, event).inc()
        failures: list[tuple[ConsumerRecord, Exception]] = []
        for record, webhook, alert in hooks:
            try:
                post_webhook(webhook, alert, self.settings)
            except (PermanentError, TransientError, httpx.HTTPError) as exc:
                # The Kafka alert stands; the dead letter records the missed delivery.
                failures.append((record, PermanentError(f"webhook delivery failed: {exc}")))
        return failures


def make_reader(settings: Settings, subscriptions: list[Subscription]) -> AlertTopicReader:
    """A group-less consumer over every alert topic, positioned at the state's time window."""
    # check_crcs=False: kafka-python checks CRC32C in pure Python (2/3 of a replay's time,
    # measured in bench/memory); the broker checked each batch when it was written, and an
    # alert that does not parse is skipped and logged anyway
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                             client_id="newswatch-alerter-state", check_crcs=False)
    topics = [settings.topic(s.alert_topic) for s in subscriptions]
    state = AlertState(max_age_s=settings.alert_state_days * 86400)
    reader = AlertTopicReader(consumer, topics, state)
    track(ALERT_STATE_CLUSTERS, lambda: len(state.clusters))
    logger.info("alerter: %d earlier alerts read from %d topics", reader.catch_up(), len(topics))
    return reader


def run(settings: Settings) -> None:
    """Run the alerter until SIGTERM: news.enriched -> alerts.<subscription>."""
    subscriptions = load_subscriptions(settings.subscriptions_dir)
    ensure_topics(settings, [TopicSpec(s.alert_topic, partitions=1) for s in subscriptions])
    reader = make_reader(settings, subscriptions)
    try:
        run_stage("alerter", unchanged, ENRICHED,
                  lambda producer: AlertSink(settings, subscriptions, producer, reader), settings)
    finally:
        reader.consumer.close()

