"""News-specific signals read from a parsed page: JSON-LD, meta tags, ``<time>``, bylines.

Generic extractors read the visible text; news sites also describe the story for
search engines and social networks (schema.org ``NewsArticle`` JSON-LD, Open Graph
and ``article:`` meta tags, ``<time datetime>``, ``rel=author`` / byline markup).
``page_signals`` collects every candidate value with the name of the signal it
came from; ``ingest.extract`` chooses between them in an order measured on the
corpora (``bench/fetch/extraction_quality.py --signals``), not in page order.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from lxml.html import HtmlElement

# schema.org types whose headline / dates / author describe the story itself
_ARTICLE_TYPES = re.compile(r"(Article|BlogPosting|Report|LiveBlogPosting)$")
_CONTROL = re.compile(r"[\x00-\x1f]")
_SPACE = re.compile(r"\s+")
# "By Jane Doe", "Written by ...", "Por ...", "Von ..."; the word is not part of the name
_BY = re.compile(r"^\s*(?:[\w ]{0,30}?\s)?(?:by|par|por|von|door)\b[:\s]+", re.I)
# a byline goes on with a date, a role or a place after these
_BYLINE_TAIL = re.compile(r"\s*(?:\||\u2022|\u00b7|\u2014|\u2013|\bupdated\b|\bpublished\b|"
                          r"\bon\s+\w+day\b|\b\d{1,2}:\d{2}\b|\b(?:19|20)\d{2}\b|"
                          r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}\b)"
                          r".*$", re.I)
AUTHOR_SPLIT = re.compile(r"\s*(?:,|;|&|\band\b|\bund\b|\by\b|\bet\b)\s*", re.I)
# words that say a value is a role, an outlet department or a placeholder, not a person
_NOT_A_NAME = re.compile(r"^(?:admin|editor|editors|contributor|guest|author|by|share|follow|more|"
                         r"unknown|none|null)$|\b(?:staff|reports?|correspondent|desk|team|newsroom|"
                         r"editorial|wire|chief|officer|director|president|head of)\b|https?://|@|"
                         r"\d|\.(?:com|net|org|in)\b", re.I)

META_DATE_NAMES = (
    "article:published_time", "og:published_time", "published_time", "datepublished",
    "pubdate", "publishdate", "publish-date", "publish_date", "article.published",
    "sailthru.date", "parsely-pub-date", "dc.date.issued", "dc.date", "dcterms.created",
    "date", "cxenseparse:recs:publishtime", "article_date_original", "original-publish-date",
)
META_AUTHOR_NAMES = ("author", "article:author", "parsely-author", "sailthru.author",
                     "dc.creator", "byl", "cxenseparse:author", "twitter:creator")


@dataclass
class Signals:
    """Candidate values per field, each as ``(signal, value)`` in the page's order."""

    title: list[tuple[str, str]] = field(default_factory=list)
    authors: list[tuple[str, list[str]]] = field(default_factory=list)
    date: list[tuple[str, str]] = field(default_factory=list)
    body: list[tuple[str, str]] = field(default_factory=list)
    site_name: list[tuple[str, str]] = field(default_factory=list)
    description: list[tuple[str, str]] = field(default_factory=list)
    canonical_url: list[tuple[str, str]] = field(default_factory=list)
    language: list[tuple[str, str]] = field(default_factory=list)
    # the tree whose byline and microdata walk has not run yet (see ``walk``)
    pending: HtmlElement | None = None

    def first(self, name: str, signal: str) -> Any:
        """The first value that ``signal`` gave for field ``name``, or None."""
        return next((value for source, value in getattr(self, name) if source == signal), None)

    def walk(self) -> Signals:
        """Add the byline, rel=author and microdata signals (a walk over the whole tree).

        It costs about 2 ms a page, a twentieth of the extraction, so it runs only when
        a choice needs it: JSON-LD and meta tags already name the author and the date
        on most news pages.
        """
        if self.pending is not None:
            tree, self.pending = self.pending, None
            _walk(tree, self)
        return self


def clean(text: str | None) -> str:
    return _SPACE.sub(" ", text or "").strip()


def _unescaped(text: str) -> str:
    """JSON-LD strings often carry HTML entities (``&#8217;``) that no parser has decoded."""
    return clean(html.unescape(text)) if "&" in text else clean(text)


def _json_objects(tree: HtmlElement) -> Iterator[dict[str, Any]]:
    """Every JSON object in the page's JSON-LD blocks, @graph members and lists flattened."""
    for script in tree.iterfind(".//script"):
        if "ld+json" not in (script.get("type") or "").lower():
            continue
        raw = (script.text or "").strip().removeprefix("<!--").removesuffix("-->")
        try:
            data = json.loads(raw)
        except ValueError:
            try:  # raw newlines and tabs inside strings are common and invalid JSON
                data = json.loads(_CONTROL.sub(" ", raw))
            except ValueError:
                continue
        stack = [data]
        while stack:
            item = stack.pop(0)
            if isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict):
                yield item
                graph = item.get("@graph")
                if isinstance(graph, (list, dict)):
                    stack.append(graph)
                main = item.get("mainEntity")
                if isinstance(main, dict):
                    stack.append(main)


def _types(obj: dict[str, Any]) -> list[str]:
    kind = obj.get("@type")
    return [str(k) for k in kind] if isinstance(kind, list) else [str(kind or "")]


def _names(value: Any) -> list[str]:
    """Person names from a JSON-LD ``author`` value: a string, an object, or a list of them."""
    items = value if isinstance(value, list) else [value]
    names: list[str] = []
    for item in items:
        if isinstance(item, dict) and "Organization" in " ".join(_types(item)):
            continue  # schema.org says it is the outlet or an agency, not a person
        name = item.get("name") if isinstance(item, dict) else item
        if isinstance(name, list):
            name = " ".join(str(n) for n in name)
        if isinstance(name, str):
            names.extend(split_authors(_unescaped(name)))
    return names


def split_authors(text: str) -> list[str]:
    """"By Jane Doe and John Roe | Updated 5 May" -> ["Jane Doe", "John Roe"]."""
    text = _BYLINE_TAIL.sub("", _BY.sub("", clean(text)))
    names = [clean(part).strip(" .,-") for part in AUTHOR_SPLIT.split(text)]
    return [n for n in names if 1 < len(n) <= 60 and not _NOT_A_NAME.search(n)]


def _jsonld(tree: HtmlElement, out: Signals) -> None:
    for obj in _json_objects(tree):
        types = _types(obj)
        article = any(_ARTICLE_TYPES.search(t) for t in types)
        signal = "jsonld" if article else "jsonld-other"
        if not article and not any(t in {"WebPage", "ItemPage"} for t in types):
            if "Organization" in " ".join(types) or "WebSite" in types:
                name = obj.get("name")
                if isinstance(name, str) and clean(name):
                    out.site_name.append(("jsonld", clean(name)))
            continue
        headline = obj.get("headline") or obj.get("name")
        if isinstance(headline, str) and clean(headline):
            out.title.append((signal, _unescaped(headline)))
        for key in ("datePublished", "dateCreated"):
            if isinstance(obj.get(key), str) and obj[key].strip():
                out.date.append((signal, obj[key].strip()))
                break
        names = _names(obj.get("author") or obj.get("creator"))
        if names:
            out.authors.append((signal, names))
        body = obj.get("articleBody")
        if article and isinstance(body, str) and body.strip():
            out.body.append(("jsonld", body.strip()))
        publisher = obj.get("publisher")
        if isinstance(publisher, dict) and isinstance(publisher.get("name"), str):
            out.site_name.append(("jsonld", clean(publisher["name"])))


def _meta(tree: HtmlElement, out: Signals) -> None:
    metas: dict[str, str] = {}
    for meta in tree.iterfind(".//meta"):
        key = (meta.get("property") or meta.get("name") or meta.get("itemprop") or "").strip().lower()
        content = clean(meta.get("content"))
        if key and content and key not in metas:
            metas[key] = content
    for key in ("og:title", "twitter:title"):
        if key in metas:
            out.title.append((key, metas[key]))
    for key in META_DATE_NAMES:
        if key in metas:
            out.date.append(("meta", metas[key]))
    for key in META_AUTHOR_NAMES:
        names = split_authors(metas.get(key, ""))
        if names:
            out.authors.append(("meta", names))
    for key, target in (("og:site_name", out.site_name), ("og:description", out.description),
                        ("description", out.description), ("og:url", out.canonical_url),
                        ("og:locale", out.language), ("content-language", out.language)):
        if key in metas:
            target.append(("meta", metas[key]))


# one walk of the tree for every markup signal (separate XPath queries cost 3 ms a page)
_MARKUP = etree.XPath(
    '//*[@itemprop="datePublished" or @itemprop="author" or @rel="author" or (@class and ('
    'contains(@class, "byline") or contains(@class, "author-name")'
    ' or contains(@class, "author__name") or contains(@class, "AuthorName")'
    ' or contains(@class, "AuthorLink") or contains(@class, "authors")))'
    ' or (self::a and (contains(@href, "/author/") or contains(@href, "/authors/")'
    ' or contains(@href, "/writer/") or contains(@href, "/writers/")))]'
)
_BYLINE_CLASSES = ("byline", "author-name", "author__name", "AuthorName", "AuthorLink", "authors")
# a link to an author's page: /author/jane-doe, /writer/1207921/Jane__Doe/
_AUTHOR_HREF = re.compile(r"/(?:authors?|writers?)/[^/?#]+")


def _element_names(element: HtmlElement) -> list[str]:
    if element.get("itemprop") == "author":
        named = element.find('.//*[@itemprop="name"]')
        if named is not None:
            return split_authors(named.get("content") or named.text_content())
        return split_authors(element.get("content") or element.text_content())
    return split_authors(element.text_content())


def _markup(tree: HtmlElement, out: Signals) -> None:
    """<title>, <h1>, the first <time datetime>, canonical link, <html lang>."""
    title = tree.find(".//title")
    if title is not None and clean(title.text_content()):
        out.title.append(("title-tag", clean(title.text_content())))
    h1 = tree.find(".//h1")
    if h1 is not None and clean(h1.text_content()):
        out.title.append(("h1", clean(h1.text_content())))
    time = tree.find(".//time[@datetime]")
    if time is not None:
        out.date.append(("time", time.get("datetime", "").strip()))
    link = tree.find('.//link[@rel="canonical"]')
    if link is not None and link.get("href"):
        out.canonical_url.append(("link", link.get("href", "").strip()))
    root_lang = tree.get("lang") or tree.get("{http://www.w3.org/XML/1998/namespace}lang")
    if root_lang:
        out.language.append(("html-lang", root_lang.strip()))


def _walk(tree: HtmlElement, out: Signals) -> None:
    """Microdata dates and authors, rel=author links, byline classes, author-page links."""
    bylines = links = 0
    for element in _MARKUP(tree):
        itemprop = element.get("itemprop")
        if itemprop == "datePublished":
            value = element.get("datetime") or element.get("content")
            if value:
                out.date.append(("microdata", value.strip()))
            continue
        if itemprop == "author":
            signal = "microdata"
        elif element.get("rel") == "author" and element.tag == "a":
            signal = "rel-author"
        elif (element.get("rel") != "author" and bylines == 0
              and any(c in (element.get("class") or "") for c in _BYLINE_CLASSES)):
            # class names that mark bylines on many CMSs; the first such element is the story's
            signal, bylines = "byline", 1
        elif element.tag == "a" and links < 3 and _AUTHOR_HREF.search(element.get("href") or ""):
            # the first links to author pages (a story's byline comes before the "more
            # from" lists); only a last resort, see ingest/choose.py
            signal, links = "author-link", links + 1
        else:
            continue
        names = _element_names(element)
        if names:
            out.authors.append((signal, names))


def page_signals(tree: HtmlElement, walk: bool = False) -> Signals:
    """The page's news signals, read from the tree without changing it.

    The walk for bylines and microdata is left for ``Signals.walk`` unless ``walk``.
    """
    out = Signals(pending=tree)
    _jsonld(tree, out)
    _meta(tree, out)
    _markup(tree, out)
    return out.walk() if walk else out
