"""Which partition of ``news.entries`` a story goes to: the one of its host.

The key stays the story id (the design's rule: one key on every topic, the
Elasticsearch ``_id``), but the partition is chosen from the URL's registrable
domain. A consumer group gives each partition to one replica, so every story
of a host is fetched by the same fetcher process, and that process's per-host
clock (``ingest.fetch.Politeness``) is the only one that host sees: the per-host
rate holds with any number of fetcher replicas.

The registrable domain (``bbc.co.uk`` for ``news.bbc.co.uk``, from the public
suffix list bundled with courlan's ``tld``) rather than the host name keeps a
publisher's subdomains, which usually share servers, on one replica too.
"""

from __future__ import annotations

from typing import Any

import courlan
from kafka import KafkaProducer
from kafka.partitioner.default import murmur2

from pipeline.errors import PermanentError
from pipeline.kafka_io import ENTRIES
from pipeline.story import Story
from pipeline.urls import host_of


def registrable_domain(url: str) -> str:
    """``bbc.co.uk`` for ``https://news.bbc.co.uk/x``; the bare host name when it has
    no public suffix (an IP address, ``localhost``)."""
    try:
        domain = courlan.extract_domain(url, fast=False)
    except ValueError:
        domain = None
    return (domain or host_of(url)).lower()


def host_partition(url: str, partitions: int) -> int:
    """The partition (of ``partitions``) for the story at ``url``: murmur2 of the
    registrable domain, as Kafka's default partitioner hashes keys."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, not {partitions}")
    return (murmur2(registrable_domain(url).encode("utf-8")) & 0x7FFFFFFF) % partitions


def entry_record(story: Story, partitions: int) -> tuple[bytes, bytes, int]:
    """Key, value and partition of ``story`` on a topic of ``partitions`` partitions:
    the key is the story id, as on every topic; only the partition follows the host."""
    return story.id.encode(), story.to_bytes(), host_partition(story.url, partitions)


def send_by_host(producer: KafkaProducer, topic: str, story: Story) -> Any:
    """Produce ``story`` to ``topic`` with ``entry_record``; returns the send future.
    Every writer of ``news.entries`` goes through here."""
    partitions = producer.partitions_for(topic)  # metadata, cached after the first call
    if not partitions:
        raise RuntimeError(f"no partitions known for {topic}: run `newswatch setup` first")
    key, value, partition = entry_record(story, len(partitions))
    return producer.send(topic, key=key, value=value, partition=partition)


def entries_partition(producer: KafkaProducer, topic: str, value: bytes | None) -> int | None:
    """The host's partition when ``topic`` is ``news.entries`` (under any prefix) and
    ``value`` a story; ``None`` (Kafka's partitioner, by key) for anything else. For
    the writers that send a payload back where it came from: the retrier, ``dlq replay``."""
    if value is None or not topic.endswith(ENTRIES):
        return None
    try:
        story = Story.from_bytes(value)
    except PermanentError:
        return None  # dead-lettered by the fetcher again; any partition will do
    partitions = producer.partitions_for(topic)
    return host_partition(story.url, len(partitions)) if partitions else None
