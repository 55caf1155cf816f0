"""Content-Encoding decoded by hand, with the output bounded while it streams.

httpx inflates each network chunk completely before the caller can count it,
so a 20 MB-capped fetch of stacked gzip (``Content-Encoding: gzip, gzip``)
grew to gigabytes before the cap was checked. Here the body is read raw and
inflated at most ``STEP`` bytes at a time, and the caller's room is checked
after every step, so a bomb costs about the size cap, never more.

Only one layer of gzip or deflate is accepted (the only ones we ask for in
``Accept-Encoding``); stacked or unknown encodings are refused by name, as no
real news server stacks them.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from ingest.errors import IngestPermanent

ACCEPT_ENCODING = "gzip, deflate"
STEP = 256 * 1024  # output per inflate call: what a bomb can add before the cap is checked


class Decoder:
    """Turns raw body bytes into decoded ones; ``feed`` and ``flush`` yield pieces of at
    most ``STEP`` bytes, and stop as soon as more than ``room`` bytes came out."""

    def feed(self, data: bytes, room: int) -> Iterator[bytes]:
        if data:
            yield data

    def flush(self, room: int) -> Iterator[bytes]:
        return iter(())


class _Inflate(Decoder):
    def __init__(self, encoding: str, url: str) -> None:
        self.encoding = encoding
        self.url = url
        self._zlib: zlib._Decompress | None = None
        self._gzip = encoding == "gzip"

    def _start(self, data: bytes) -> zlib._Decompress:
        if self._gzip:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # "deflate" is meant to be zlib-wrapped, but some servers send raw deflate
        wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)

    def _bad(self, exc: zlib.error) -> IngestPermanent:
        return IngestPermanent("bad_encoding", f"invalid {self.encoding} body from {self.url}: {exc}")

    def feed(self, data: bytes, room: int) -> Iterator[bytes]:
        if self._zlib is None:
            if not data:
                return
            self._zlib = self._start(data)
        inflater = self._zlib
        while data and not inflater.eof:
            try:
                out = inflater.decompress(data, STEP)
            except zlib.error as exc:
                raise self._bad(exc) from None
            yield out
            room -= len(out)
            if room < 0:
                return
            data = inflater.unconsumed_tail
        # bytes after the end of the stream (a trailer of junk) are ignored, as httpx does

    def flush(self, room: int) -> Iterator[bytes]:
        if self._zlib is None or self._zlib.eof:
            return
        try:
            out = self._zlib.flush()  # small: feed() already drained the input
        except zlib.error as exc:
            raise self._bad(exc) from None
        if out:
            yield out


def decoder_for(content_encoding: str | None, url: str) -> Decoder:
    """The decoder for a ``Content-Encoding`` header; refuses stacked and unknown ones."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return Decoder()
    if len(codings) > 1:
        raise IngestPermanent(
            "bad_encoding", f"stacked content encodings refused ({content_encoding}) from {url}"
        )
    coding = {"x-gzip": "gzip"}.get(codings[0], codings[0])
    if coding not in ("gzip", "deflate"):
        raise IngestPermanent("bad_encoding", f"unsupported content encoding {coding!r} from {url}")
    return _Inflate(coding, url)
