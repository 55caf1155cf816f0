"""Content hashes and MinHash clusters: copies and light edits share a cluster id."""

from processors.dedup import NearDuplicateIndex, content_hash

STORY = (
    "Two Colombian nationals were captured while fighting for Russia near Pokrovsk, Ukraine's "
    "military intelligence said on Tuesday. The men told interrogators they had been recruited "
    "through online adverts promising two thousand dollars a month and a quick path to a Russian "
    "passport. Both said they had arrived in Moscow in the spring and were sent to an assault "
    "unit after two weeks of training. Colombia's foreign ministry said it was seeking consular "
    "access and warned citizens against travelling to join either army."
)
OTHER = (
    "Heavy rain flooded the lower town overnight and the river rose above the warning mark, the "
    "council said. Schools stayed closed and volunteers filled sandbags along the embankment while "
    "forecasters expected more showers through the weekend and the power company restored lines."
)


def test_content_hash_ignores_case_punctuation_and_spacing() -> None:
    assert content_hash("Hello,   World!") == content_hash("hello world")
    assert content_hash("Hello world") != content_hash("Hello there world")
    assert content_hash("  ") is None


def test_exact_and_lightly_edited_copies_share_the_first_story_id() -> None:
    index = NearDuplicateIndex()
    first = index.assign("a", STORY)
    assert first.cluster_id == "a" and first.duplicate_of is None
    exact = index.assign("b", STORY.upper())
    assert exact.cluster_id == "a" and exact.content_hash == first.content_hash
    edited = STORY.replace("on Tuesday", "on Tuesday, according to a statement") + " (Reuters)"
    edited = edited.replace("two thousand dollars", "2,000 US dollars")
    near = index.assign("c", edited)
    assert near.cluster_id == "a"
    assert near.content_hash != first.content_hash
    assert near.similarity is not None and 0.6 <= near.similarity < 1.0
    assert index.assign("d", OTHER).cluster_id == "d"


def test_a_redelivered_story_keeps_its_cluster() -> None:
    index = NearDuplicateIndex()
    index.assign("a", STORY)
    index.assign("b", OTHER)
    assert index.assign("b", OTHER).cluster_id == "b"
    assert len(index) == 2


def test_the_window_is_bounded_and_forgets_the_oldest() -> None:
    index = NearDuplicateIndex(capacity=2)
    index.assign("a", STORY)
    index.assign("b", OTHER)
    index.assign("c", "a completely different short text about the weather in the mountains today")
    assert len(index) == 2
    assert index.assign("d", STORY).cluster_id == "d"  # "a" was forgotten


def test_remembered_stories_from_elsewhere_are_joined() -> None:
    index = NearDuplicateIndex()
    index.remember("x", "cluster-x", STORY)
    assert index.assign("y", STORY + " Updated.").cluster_id == "cluster-x"


def test_short_texts_cluster_by_exact_hash_only() -> None:
    index = NearDuplicateIndex()
    assert index.minhash("too short to compare") is None
    index.assign("a", "Breaking: explosion heard")
    assert index.assign("b", "breaking explosion heard!").cluster_id == "a"
    assert index.assign("c", "Breaking: explosions heard").cluster_id == "c"
