"""The host partitioner of news.entries: one host, one partition; the key stays the story id."""

from __future__ import annotations

from collections import Counter

import pytest

from pipeline.partition import entry_record, host_partition, registrable_domain
from pipeline.story import Story


def test_registrable_domain_groups_subdomains_and_keeps_bare_hosts() -> None:
    assert registrable_domain("https://news.bbc.co.uk/world/1") == "bbc.co.uk"
    assert registrable_domain("https://www.bbc.co.uk/sport") == "bbc.co.uk"
    assert registrable_domain("https://WWW.NYTimes.com/a") == "nytimes.com"
    # a private suffix (blogspot.com) is a publisher boundary too
    assert registrable_domain("https://a.blogspot.com/x") != registrable_domain("https://b.blogspot.com/x")
    assert registrable_domain("http://127.0.0.1:8080/a") == "127.0.0.1"
    assert registrable_domain("http://localhost:9/a") == "localhost"


def test_same_host_same_partition_whatever_the_path_or_subdomain() -> None:
    for partitions in (1, 2, 4, 8, 12):
        urls = [f"https://news.bbc.co.uk/story/{i}?page={i}" for i in range(50)]
        urls += [f"https://www.bbc.co.uk/sport/{i}" for i in range(50)]
        assert len({host_partition(u, partitions) for u in urls}) == 1
        assert all(0 <= host_partition(u, partitions) < partitions for u in urls)


def test_partition_is_stable_across_processes() -> None:
    # murmur2, as Kafka's default partitioner: a fixed function of the domain, not of
    # Python's per-process hash seed (a poller restart must not move hosts)
    assert host_partition("https://example.com/a", 8) == 1 == host_partition("http://www.example.com/b", 8)
    assert [host_partition(f"https://site{i}.com/", 8) for i in range(5)] == [6, 5, 4, 1, 6]


def test_hosts_spread_over_partitions() -> None:
    spread = Counter(host_partition(f"https://publisher{i}.example/a", 4) for i in range(400))
    assert set(spread) == {0, 1, 2, 3}
    assert min(spread.values()) > 60


def test_key_is_still_the_story_id() -> None:
    story = Story.from_link("https://news.bbc.co.uk/world/1?utm_source=rss", source="BBC")
    key, value, partition = entry_record(story, 4)
    assert key == story.id.encode()
    assert Story.from_bytes(value) == story
    assert partition == host_partition(story.url, 4)
    other = Story.from_link("https://www.bbc.co.uk/sport/2", source="BBC")
    other_key, _, other_partition = entry_record(other, 4)
    assert other_key != key and other_partition == partition


def test_a_topic_without_partitions_is_an_error() -> None:
    with pytest.raises(ValueError):
        host_partition("https://example.com/", 0)
