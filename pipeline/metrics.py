"""Prometheus metrics of every stage, served on ``NEWSWATCH_METRICS_PORT`` (0: not served).

One process runs one stage, so the metrics of all stages live in this one
module and each process exports only those it moves. The names are listed in
README.md ("Metrics"), and a unit test checks that list against this module.

Labels stay bounded: stage names, outcomes and error kinds (``http_404``,
``timeout``: the ``kind`` of ``ingest.errors``), never URLs or story ids.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from kafka import KafkaConsumer
from prometheus_client import Counter, Gauge, Histogram, start_http_server

logger = logging.getLogger(__name__)

# -- the stage runner (fetcher, enricher, indexer, alerter) ------------------
MESSAGES = Counter(
    "newswatch_messages_total",
    "Messages handled by a stage, by outcome: consumed, forwarded, discarded, dead_letter",
    ["stage", "outcome"],
)
RETRIES = Counter(
    "newswatch_retries_total", "Processor attempts that failed and were retried in process",
    ["stage"],
)
PROCESS_SECONDS = Histogram(
    "newswatch_process_seconds", "Time in the processor per message, all attempts included",
    ["stage"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
STAGE_SECONDS = Histogram("newswatch_batch_seconds", "Time to process one batch", ["stage"])
CONSUMER_LAG = Gauge(
    "newswatch_consumer_lag", "Messages between the stage's position and the partition's end",
    ["stage", "topic", "partition"],
)

# -- the fetcher -------------------------------------------------------------
FETCHES = Counter(
    "newswatch_fetch_total", "Page fetch + extract attempts, by outcome (ok or the error kind)",
    ["outcome"],
)

# -- the poller --------------------------------------------------------------
POLLS = Counter(
    "newswatch_polls_total",
    "Feed polls by outcome (new, unchanged, not_modified, error) and reason (ok or the error kind)",
    ["outcome", "reason"],
)
POLL_SECONDS = Histogram(
    "newswatch_poll_seconds", "Time to poll one feed (request, parse, new entries)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
POLL_STORIES = Counter(
    "newswatch_poll_stories_total", "New entries produced to news.entries (delivered)",
)
POLL_UNDELIVERED = Counter(
    "newswatch_poll_undelivered_total",
    "Feeds whose new entries could not be delivered (their state is not saved; polled again)",
)

# -- memory of the enricher and the alerter ----------------------------------
DEDUP_WINDOW_STORIES = Gauge("newswatch_dedup_window_stories", "Stories in the near-duplicate window")
DEDUP_WINDOW_BYTES = Gauge(
    "newswatch_dedup_window_bytes", "Estimated bytes of the near-duplicate window",
)
ALERT_STATE_CLUSTERS = Gauge(
    "newswatch_alert_state_clusters", "(subscription, cluster) pairs the alerter remembers",
)
ALERTS = Counter("newswatch_alerts_total", "Alerts published", ["subscription", "event"])


def observe_record(stage: str, attempts: int, seconds: float) -> None:
    """Count one processed message: its processor time and its in-process retries."""
    PROCESS_SECONDS.labels(stage).observe(seconds)
    if attempts > 1:
        RETRIES.labels(stage).inc(attempts - 1)


_lag_labels: dict[str, set[tuple[str, str]]] = {}


def observe_lag(stage: str, consumer: KafkaConsumer) -> None:
    """Set the lag of each assigned partition from what the consumer already knows (no request).

    The high watermark comes with every fetch response; partitions this replica
    no longer owns are dropped from the gauge, so a rebalance leaves no stale lag.
    """
    seen: set[tuple[str, str]] = set()
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        labels = (tp.topic, str(tp.partition))
        CONSUMER_LAG.labels(stage, *labels).set(max(0, highwater - consumer.position(tp)))
        seen.add(labels)
    for labels in _lag_labels.get(stage, set()) - seen:
        with contextlib.suppress(KeyError):  # already gone
            CONSUMER_LAG.remove(stage, *labels)
    _lag_labels[stage] = seen


def track(gauge: Gauge, read: Callable[[], float]) -> None:
    """Let ``gauge`` read its value at scrape time (window sizes, state sizes)."""
    gauge.set_function(read)


def serve_metrics(port: int, addr: str = "127.0.0.1") -> None:
    """Expose /metrics on ``addr:port`` (compose sets addr 0.0.0.0 and publishes nothing); 0 disables."""
    if port:
        start_http_server(port, addr=addr)
        logger.info("metrics on http://%s:%d/metrics", addr, port)
