"""HTML -> ``Content``: trafilatura with metadata, feed fallbacks, field sources.

The body text is produced exactly as ``trafilatura.extract(include_comments=False)``
produces it (same options, same text serialisation), so the extraction score
is at least bare trafilatura's; metadata comes from the same single pass.
"""

from __future__ import annotations

import codecs
import logging
import re
from datetime import UTC, datetime
from typing import TypeVar

import charset_normalizer
from trafilatura import bare_extraction
from trafilatura.metadata import Document
from trafilatura.settings import Extractor
from trafilatura.utils import normalize_unicode
from trafilatura.xml import xmltotxt

from ingest.errors import IngestPermanent
from pipeline.story import Content, FeedEntry, FieldSource

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Measured on ../shared/corpora/aeb (bench/fetch/extraction_quality.py): comments
# off scores higher than trafilatura's library default (F1 0.960 vs 0.953), and
# favor_precision higher still (F1 0.964 vs 0.960, P 0.958 vs 0.942, R 0.971 vs 0.978);
# for news, boilerplate in the body (comment counters, share bars) costs more than
# a missed sentence, so precision wins.
INCLUDE_COMMENTS = False
FAVOR_PRECISION = True
# Comment sections, counters and "N comments" links: trafilatura's own comment
# removal misses counters inside the article; on aeb this pruning changes nothing
# (F1 0.9641 with and without) while real news pages lose the "12 comments" line.
PRUNE_XPATH = (
    "//*[contains(translate(@class,'COMMENT','comment'),'comment')"
    " or contains(translate(@id,'COMMENT','comment'),'comment')]"
)
# Less visible text than this is a gallery, a video page or a navigation stub, not an
# article. Characters, not words, so that Chinese and Japanese pages count fairly.
MIN_CHARS = 100

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
# trafilatura reads a language from <meta> only; most news sites declare <html lang>
_HTML_LANG = re.compile(r"""<html[^>]*?\slang\s*=\s*["']?([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)?""", re.I)
_DECLARES_CANONICAL = re.compile(
    r"""rel\s*=\s*["']?canonical|property\s*=\s*["']og:url""", re.I
)


# Python codecs that ``codecs.lookup`` accepts but that no web page is written in: a page
# declaring one of these is mis-declared, and decoding with it would garble or crash
_NOT_PAGE_CHARSETS = frozenset({"undefined", "idna", "punycode", "unicode-escape",
                                "raw-unicode-escape", "unicode-internal"})


def _known_codec(name: str | None) -> str | None:
    """The codec for a declared charset, or None when it is unknown or not a text charset.

    ``codecs.lookup`` also knows bytes-to-bytes and str-to-str transforms (base64, zlib,
    hex, bz2, uu, quopri, rot13) and "undefined", which raise on ``bytes.decode``; a
    page that declares one of them is treated as if it declared nothing.
    """
    if not name:
        return None
    try:
        info = codecs.lookup(name.strip().strip("\"'"))
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_PAGE_CHARSETS:
        return None
    try:
        b"<p>".decode(info.name)
    except (UnicodeError, LookupError):
        return None
    return info.name


def decode_html(body: bytes, header_charset: str | None = None) -> tuple[str, str]:
    """Decode page bytes: BOM, then the HTTP charset, then ``<meta charset>``, then detection.

    Invalid byte sequences become U+FFFD rather than failing the story; a declared
    charset that is not a text charset is ignored like an unknown one.
    """
    for bom, name in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"),
                      (codecs.BOM_UTF16_BE, "utf-16")):
        if body.startswith(bom):
            return body.decode(name, "replace").lstrip("\ufeff"), name
    meta = _META_CHARSET.search(body[:4096])
    for candidate in (header_charset, meta.group(1).decode("ascii", "ignore") if meta else None):
        codec = _known_codec(candidate)
        if codec is None:
            continue
        try:
            return body.decode(codec), codec
        except UnicodeError:
            logger.debug("declared charset %s does not decode the page", codec)
    best = charset_normalizer.from_bytes(body[:200_000]).best()
    codec = _known_codec(best.encoding if best else None) or "utf-8"
    return body.decode(codec, "replace"), codec


def header_charset(content_type: str | None) -> str | None:
    """The ``charset=`` parameter of a Content-Type header, if any."""
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


def extraction_options(url: str | None) -> Extractor:
    return Extractor(
        output_format="txt", comments=INCLUDE_COMMENTS, precision=FAVOR_PRECISION,
        with_metadata=True, url=url,
    )


def _extract(html: str, url: str | None) -> tuple[Document | None, str]:
    """One trafilatura pass: the document (metadata) and its body text ("" if too short)."""
    doc = bare_extraction(html, options=extraction_options(url), prune_xpath=PRUNE_XPATH)
    if doc is None or not isinstance(doc, Document) or doc.body is None:
        return None, ""
    # the same serialisation trafilatura.extract() uses for its txt output
    text = normalize_unicode(xmltotxt(doc.body, False)).strip()
    return doc, (text if len("".join(text.split())) >= MIN_CHARS else "")


def article_text(html: str, url: str | None = None) -> str:
    """Body text only (what the benchmark scores); "" when there is no article."""
    return _extract(html, url)[1]


def _pick(sources: dict[str, FieldSource], name: str, page_value: T | None,
          feed_value: T | None) -> T | None:
    """The page's value, else the feed's, recording which one was used."""
    if page_value:
        sources[name] = "page"
        return page_value
    if feed_value:
        sources[name] = "feed"
        return feed_value
    sources[name] = "none"
    return None


def _html_lang(html: str) -> str | None:
    match = _HTML_LANG.search(html[:5000])
    return match.group(1).lower() if match else None


def _page_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def extract_content(html: str, url: str | None = None, feed: FeedEntry | None = None) -> Content:
    """Extract the article from ``html``; raise ``IngestPermanent`` when there is no text."""
    doc, text = _extract(html, url)
    if doc is None or not text:
        raise IngestPermanent("no_text", f"no article text extracted from {url or 'page'}")
    sources: dict[str, FieldSource] = {"text": "page"}

    def pick(name: str, page_value: T | None, feed_value: T | None) -> T | None:
        return _pick(sources, name, page_value, feed_value)

    page_date = _page_date(doc.date)
    feed_date = feed.published_at if feed else None
    if page_date and feed_date and feed_date.date() == page_date.date():
        # the page gave the same day; the feed's timestamp is the more precise one
        published: datetime | None = feed_date
        sources["published_at"] = "feed"
    else:
        published = pick("published_at", page_date, feed_date)
    declared_canonical = bool(doc.url) and (
        doc.url != url or bool(_DECLARES_CANONICAL.search(html[:200_000]))
    )
    return Content(
        title=pick("title", doc.title, feed.title if feed else None),
        text=text,
        author=pick("author", doc.author, feed.author if feed else None),
        published_at=published,
        site_name=pick("site_name", doc.sitename, feed.feed_name if feed else None),
        language=pick("language", doc.language or _html_lang(html),
                      feed.language if feed else None),
        canonical_url=pick("canonical_url", doc.url if declared_canonical else None, None),
        description=pick("description", doc.description, feed.summary if feed else None),
        sources=sources,
    )
