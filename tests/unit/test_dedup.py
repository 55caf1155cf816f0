"""Content hashes and MinHash clusters: copies and light edits share a cluster id."""

from processors.dedup import REBUILD_EVERY, NearDuplicateIndex, content_hash

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


WEATHER = "a completely different short text about the weather in the mountains today"


def _sized(stories: int, **kwargs: float) -> NearDuplicateIndex:
    """A window whose byte bound holds exactly ``stories`` stories."""
    entry = NearDuplicateIndex.array_bytes_per_entry() + 420
    return NearDuplicateIndex(max_bytes=stories * entry, **kwargs)  # type: ignore[arg-type]


def test_the_window_is_bounded_in_bytes_and_forgets_the_oldest() -> None:
    index = _sized(2)
    assert index.capacity == 2
    index.assign("a", STORY)
    index.assign("b", OTHER)
    index.assign("c", WEATHER)
    assert len(index) == 2
    assert index.nbytes <= index.max_bytes
    assert index.assign("d", STORY).cluster_id == "d"  # "a" was forgotten
    assert index.assign("e", OTHER + " More.").cluster_id == "e"  # and then "b"
    assert index.assign("f", WEATHER).cluster_id == "f"  # and then "c" (exact hash too)


def test_the_window_forgets_stories_older_than_its_age_bound() -> None:
    now = [1_000_000.0]
    index = NearDuplicateIndex(max_age_s=3600, clock=lambda: now[0])
    index.assign("a", STORY)
    now[0] += 1800
    index.assign("b", OTHER)
    assert len(index) == 2
    now[0] += 1801  # "a" is now older than an hour, "b" is not
    assert index.assign("c", OTHER + " Updated.").cluster_id == "b"
    assert index.assign("d", STORY).cluster_id == "d"
    assert len(index) == 3  # b, c, d
    # a story read back with an old record time is not let in at all
    index.remember("old", "cluster-old", WEATHER, at=now[0] - 7200)
    assert index.assign("w", WEATHER).cluster_id == "w"


def test_slots_reused_after_many_insertions_never_match_stale_band_hashes() -> None:
    # more stories than REBUILD_EVERY through a small ring: the sorted band index is
    # rebuilt while slots are reused, and only live stories may be returned
    index = _sized(50)
    words = [f"word{i}" for i in range(400)]
    for i in range(REBUILD_EVERY + 100):
        text = " ".join(words[(i * 7 + j * 13) % 400] for j in range(40))
        index.assign(f"s{i}", text)
    assert len(index) == 50
    index.assign("copy", STORY)
    assert index.assign("copy2", STORY + " (AP)").cluster_id == "copy"


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


def test_the_stage_window_is_sized_by_settings() -> None:
    from pipeline.settings import load_settings

    index = NearDuplicateIndex.from_settings(
        load_settings({"NEWSWATCH_DEDUP_WINDOW_MB": "1", "NEWSWATCH_DEDUP_WINDOW_DAYS": "0.5"}))
    assert index.capacity == 2**20 // index.entry_bytes
    assert index.max_age_s == 43200


def test_a_story_is_found_through_the_sorted_band_index_after_a_rebuild() -> None:
    index = _sized(REBUILD_EVERY + 10)
    index.assign("first", STORY)
    words = [f"word{i}" for i in range(400)]
    for i in range(REBUILD_EVERY):  # the re-sort runs: "first" moves from the dict to the arrays
        index.assign(f"s{i}", " ".join(words[(i * 7 + j * 13) % 400] for j in range(40)))
    assert index._sorted_slots.shape[1] >= REBUILD_EVERY  # re-sorted, "first" among them
    edited = STORY.replace("on Tuesday", "on Tuesday, a statement said") + " (Reuters)"
    assert index.assign("copy", edited).cluster_id == "first"
