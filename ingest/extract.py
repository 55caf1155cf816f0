"""HTML -> ``Content``: trafilatura for the body, news signals for the metadata.

The page is parsed once (trafilatura's own parser, so the tree is the one
``trafilatura.extract`` would build); the same tree feeds the news signals
(JSON-LD, meta tags, ``<time>``, bylines: ``ingest.signals``) and trafilatura's
body extraction. Every choice here was measured on both dev corpora, aeb and
news4k, and kept only if it lowers neither (bench/fetch/extraction_quality.py,
figures in bench/README.md).
"""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import charset_normalizer
from htmldate import find_date
from lxml.html import HtmlElement
from trafilatura import bare_extraction
from trafilatura.metadata import Document
from trafilatura.settings import Extractor
from trafilatura.utils import load_html, normalize_unicode
from trafilatura.xml import xmltotxt

from ingest.choose import choose_authors, choose_date, choose_title, fold
from ingest.errors import IngestPermanent
from ingest.signals import Signals, page_signals
from pipeline.story import Content, FeedEntry, FieldSource

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Comments off: bare trafilatura with comments scores lower on aeb (F1 0.953 vs 0.960).
INCLUDE_COMMENTS = False
# favor_precision: +0.004 F1 on aeb, +0.011 on news4k (same run). Kept: it helps both.
FAVOR_PRECISION = True
# Precision mode switches off trafilatura's own rescues for short results (the baseline
# pass), so a very short precision result is often a fragment (a reprint notice, a caption).
# Below this many characters the balanced cascade runs too and wins if it finds at least
# RESCUE_RATIO times more text. aeb +0.005, news4k 0.000 (it fires on 1 and 0 pages).
SHORT_TEXT = 500
RESCUE_RATIO = 2.0
# A JSON-LD articleBody this long is the whole story, not a teaser (teasers seen are cut at
# 500 characters). When less than JSONLD_OVERLAP of the extracted text's word 4-grams are in
# it, trafilatura took another block (a related story, a comment thread, a listing) and
# the publisher's own body is used instead. news4k +0.008, aeb 0.000 (fires on 4 and 0).
JSONLD_MIN_CHARS = 1000
JSONLD_OVERLAP = 0.25
# Less visible text than this is a navigation stub or a gallery ("Home"), not an article:
# the story is dead-lettered as no_text. Characters, not words, so that Chinese and Japanese
# pages count fairly. It empties no page of aeb or news4k (the shortest text bare
# trafilatura extracts there is 237 characters); it emptied pages only together with the
# comment prune_xpath, which is dropped (aeb 0.000, news4k -0.013).
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


def extraction_options(url: str | None, precision: bool = FAVOR_PRECISION) -> Extractor:
    return Extractor(output_format="txt", comments=INCLUDE_COMMENTS, precision=precision, url=url)


def _trafilatura_text(tree: HtmlElement, url: str | None, precision: bool) -> str:
    doc = bare_extraction(tree, options=extraction_options(url, precision))
    if doc is None or not isinstance(doc, Document) or doc.body is None:
        return ""
    # the same serialisation trafilatura.extract() uses for its txt output
    return str(normalize_unicode(xmltotxt(doc.body, False))).strip()


_WORD = re.compile(r"\w+")


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text)
    return {tuple(words[i:i + 4]) for i in range(max(1, len(words) - 3))}


def _overlap(text: str, reference: str) -> float:
    """Share of ``text``'s distinct word 4-grams that are also in ``reference``."""
    mine = _shingles(text)
    return len(mine & _shingles(reference)) / max(1, len(mine))


@dataclass(frozen=True)
class Choices:
    """The extraction choices, each on by default; the benchmark turns them off one by one."""

    precision: bool = FAVOR_PRECISION
    rescue: bool = True
    jsonld_body: bool = True
    min_chars: int = MIN_CHARS
    drop_headline: bool = True


def body_text(tree: HtmlElement, signals: Signals, url: str | None = None,
              choices: Choices = Choices()) -> tuple[str, str]:
    """``(text, signal)``: trafilatura's body, or the JSON-LD articleBody where it disagrees."""
    text = _trafilatura_text(tree, url, choices.precision)
    if choices.precision and choices.rescue and len(text) < SHORT_TEXT:
        balanced = _trafilatura_text(tree, url, False)
        if len(balanced) >= RESCUE_RATIO * max(1, len(text)):
            text = balanced
    jsonld = signals.first("body", "jsonld") if choices.jsonld_body else None
    if jsonld and len(jsonld) >= JSONLD_MIN_CHARS and (
        not text or _overlap(text, jsonld) < JSONLD_OVERLAP
    ):
        return normalize_unicode(jsonld), "jsonld"
    if len("".join(text.split())) < choices.min_chars:
        return "", "none"
    return (_without_headline(text, signals) if choices.drop_headline else text), "trafilatura"


def _without_headline(text: str, signals: Signals) -> str:
    """The text without a first line that is the headline (it is the title, not the body).

    trafilatura keeps an <h1> inside the article container; the headline is already
    the story's title. aeb +0.002, news4k +0.002 (it fires on 33 and 69 pages).
    """
    first, _, rest = text.partition("\n")
    if not rest.strip() or len(first) > 400:
        return text
    folded = fold(first)
    if any(len(value) >= len(first) // 2 and fold(value) == folded for _, value in signals.title):
        return rest.lstrip("\n")
    return text


def parse_html(html: str) -> HtmlElement | None:
    """The page as trafilatura parses it (one parse for signals and extraction)."""
    return load_html(html)


def article_text(html: str, url: str | None = None, choices: Choices = Choices()) -> str:
    """Body text only (what the benchmark scores); "" when there is no article."""
    tree = parse_html(html)
    return "" if tree is None else body_text(tree, page_signals(tree), url, choices)[0]


def _html_lang(html: str) -> str | None:
    match = _HTML_LANG.search(html[:5000])
    return match.group(1).lower() if match else None


def _language(signals: Signals, html: str) -> str | None:
    for _, value in signals.language:
        match = re.match(r"[A-Za-z]{2,3}\b", value)
        if match:
            return match.group(0).lower()
    return _html_lang(html)


def page_date(tree: HtmlElement, signals: Signals, url: str | None) -> tuple[datetime | None, str]:
    """The structured date when the page gives one; htmldate's quick search otherwise."""
    value, signal = choose_date(signals)
    if value is not None:
        return value, signal or "page"
    # htmldate without its extensive search: the structured signals above already cover
    # what the extensive search adds on news pages, at a fraction of the time
    found = find_date(tree, url=url, extensive_search=False, original_date=True)
    if not found:
        return None, "none"
    try:
        return datetime.fromisoformat(found).replace(tzinfo=UTC), "htmldate"
    except ValueError:
        return None, "none"


class _Picker:
    """Page value, else feed value, recording the source (and the page signal) of each field."""

    def __init__(self) -> None:
        self.sources: dict[str, FieldSource] = {}
        self.signals: dict[str, str] = {}

    def __call__(self, name: str, page_value: T | None, feed_value: T | None,
                 signal: str | None = None) -> T | None:
        if page_value:
            self.sources[name] = "page"
            if signal:
                self.signals[name] = signal
            return page_value
        if feed_value:
            self.sources[name] = "feed"
            return feed_value
        self.sources[name] = "none"
        return None


def extract_content(html: str, url: str | None = None, feed: FeedEntry | None = None) -> Content:
    """Extract the article from ``html``; raise ``IngestPermanent`` when there is no text."""
    tree = parse_html(html)
    signals = page_signals(tree) if tree is not None else Signals()
    text, text_signal = body_text(tree, signals, url) if tree is not None else ("", "none")
    if not text or tree is None:
        raise IngestPermanent("no_text", f"no article text extracted from {url or 'page'}")
    pick = _Picker()
    pick("text", text, None, text_signal)
    title, title_signal = choose_title(signals)
    names, author_signal = choose_authors(signals)
    date, date_signal = page_date(tree, signals, url)
    feed_date = feed.published_at if feed else None
    if date and feed_date and feed_date.date() == date.date():
        # the page gave the same day; the feed's timestamp is the more precise one
        published: datetime | None = feed_date
        pick.sources["published_at"] = "feed"
    else:
        published = pick("published_at", date, feed_date, date_signal)
    canonical = next((value for _, value in signals.canonical_url), None)
    return Content(
        title=pick("title", title, feed.title if feed else None, title_signal),
        text=text,
        author=pick("author", ", ".join(names), feed.author if feed else None, author_signal),
        published_at=published,
        site_name=pick("site_name", signals.site_name[0][1] if signals.site_name else None,
                       feed.feed_name if feed else None, signals.site_name[0][0]
                       if signals.site_name else None),
        language=pick("language", _language(signals, html), feed.language if feed else None),
        canonical_url=pick("canonical_url", canonical if canonical and canonical != url else
                           (canonical if _DECLARES_CANONICAL.search(html[:200_000]) else None),
                           None),
        description=pick("description", signals.description[0][1] if signals.description
                         else None, feed.summary if feed else None),
        sources=pick.sources,
        page_signals=pick.signals,
    )
