"""Cutting feeds down before feedparser: newest entries, byte budget, DTD, and the decoder."""

from __future__ import annotations

import gzip
import zlib

import pytest

from ingest.errors import IngestPermanent
from ingest.feedtrim import MAX_ENTRY_BYTES, drop_internal_dtd, trim_feed
from ingest.inflate import decoder_for
from ingest.parse import parse_feed


def atom(entries: list[tuple[str, str | None]]) -> bytes:
    body = "".join(
        f"<entry><id>{link}</id><link href='{link}'/><title>{link}</title>"
        + (f"<updated>{date}</updated>" if date else "") + "</entry>"
        for link, date in entries
    )
    return (f'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>'
            f"{body}</feed>").encode()


def test_a_small_feed_passes_untouched() -> None:
    data = atom([("http://e.org/a", "2025-01-01T00:00:00Z")])
    trimmed = trim_feed(data, "u", 10, 100_000)
    assert trimmed.data is data and trimmed.problems == [] and trimmed.entries == 1


def test_newest_entries_are_kept_in_document_order() -> None:
    data = atom([("http://e.org/old", "2020-01-01T00:00:00Z"),
                 ("http://e.org/new", "2025-06-01T00:00:00+02:00"),
                 ("http://e.org/mid", "2023-01-01T00:00:00Z"),
                 ("http://e.org/newer", "2025-06-01T00:00:00Z")])
    parsed = parse_feed(data, "http://e.org/feed", max_entries=2)
    assert [e.link for e in parsed.entries] == ["http://e.org/new", "http://e.org/newer"]
    assert any("kept the 2 newest of 4" in p for p in parsed.problems)


def test_undated_entries_rank_by_position_after_dated_ones() -> None:
    data = atom([("http://e.org/u1", None), ("http://e.org/d", "Mon, 06 Jan 2025 10:00:00 GMT"),
                 ("http://e.org/u2", None), ("http://e.org/u3", None)])
    parsed = parse_feed(data, "http://e.org/feed", max_entries=2)
    assert [e.link for e in parsed.entries] == ["http://e.org/u1", "http://e.org/d"]


def test_byte_budget_keeps_what_fits_newest_first() -> None:
    entries = [(f"http://e.org/{i}{'x' * 5000}", f"2025-01-{i + 1:02d}T00:00:00Z") for i in range(20)]
    data = atom(entries)
    # each entry is about 15 kB (its link three times): five fit in 80 kB
    trimmed = trim_feed(data, "u", 100, 80_000)
    assert len(trimmed.data) <= 80_000
    parsed = parse_feed(data, "http://e.org/feed", max_entries=100, max_bytes=80_000)
    assert [e.link.split("x")[0] for e in parsed.entries] == [f"http://e.org/{i}" for i in range(15, 20)]


def test_an_oversized_entry_is_left_out() -> None:
    data = atom([("http://e.org/a", None), ("http://e.org/b" + "x" * MAX_ENTRY_BYTES, None)])
    trimmed = trim_feed(data, "u", 10, 10_000_000)
    assert b"http://e.org/a" in trimmed.data and b"xxxx" not in trimmed.data
    assert any("over" in p for p in trimmed.problems)


def test_a_feed_whose_head_is_over_the_budget_is_refused() -> None:
    big_title = b"<title>" + b"A" * 50_000 + b"</title>"
    data = atom([("http://e.org/a", None)]).replace(b"<title>A</title>", big_title)
    with pytest.raises(IngestPermanent) as info:
        trim_feed(data, "u", 10, 20_000)
    assert info.value.kind == "parse_budget"


def test_internal_dtd_is_dropped_but_the_doctype_kept() -> None:
    data = b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "b">]><rss/>'
    assert drop_internal_dtd(data) == (b'<?xml version="1.0"?><!DOCTYPE rss ><rss/>', True)
    plain = b'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "x.dtd"><rss/>'
    assert drop_internal_dtd(plain) == (plain, False)


def decode(encoding: str, raw: bytes, room: int = 10_000_000) -> bytes:
    decoder = decoder_for(encoding, "u")
    out = b"".join(decoder.feed(raw[:7], room)) + b"".join(decoder.feed(raw[7:], room))
    return out + b"".join(decoder.flush(room))


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "GZIP", "identity, gzip"])
def test_gzip_names(encoding: str) -> None:
    assert decode(encoding, gzip.compress(b"hello world" * 100)) == b"hello world" * 100


def test_deflate_wrapped_and_raw() -> None:
    assert decode("deflate", zlib.compress(b"abc" * 100)) == b"abc" * 100
    raw = zlib.compressobj(wbits=-15)
    assert decode("deflate", raw.compress(b"abc" * 100) + raw.flush()) == b"abc" * 100


def test_decoder_stops_soon_after_the_room_is_used() -> None:
    bomb = gzip.compress(bytes(50_000_000))
    pieces = list(decoder_for("gzip", "u").feed(bomb, 1_000_000))
    assert 1_000_000 < sum(map(len, pieces)) <= 1_000_000 + 256 * 1024


@pytest.mark.parametrize(("encoding", "body"), [("br", b"x"), ("gzip, gzip", b"x"), ("gzip", b"not gzip")])
def test_unusable_encodings_are_named(encoding: str, body: bytes) -> None:
    with pytest.raises(IngestPermanent) as info:
        decode(encoding, body)
    assert info.value.kind == "bad_encoding"
