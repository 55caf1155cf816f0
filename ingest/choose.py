"""Choose title, authors and publication date among a page's signals.

The orders below are measured, not guessed: ``bench/fetch/extraction_quality.py
--signals`` prints, for every signal, how often it is present on news4k and how
often it is right when present (date to the day, title and authors exact after
the bench's normalisation); the first signal present in the order wins. Figures
of the run that chose them are in bench/README.md.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, tzinfo
from email.utils import parsedate_to_datetime

from ingest.signals import AUTHOR_SPLIT, Signals

# right when present on news4k: h1 0.92 (when it agrees with another title signal),
# twitter:title 0.64, og:title 0.66, JSON-LD headline 0.70 but present on fewer pages,
# <title> 0.14 (it carries the site name)
TITLE_ORDER = ("h1", "twitter:title", "og:title", "jsonld", "title-tag")
# JSON-LD datePublished 0.82 right when present, meta tags 0.80, microdata 0.79,
# <time datetime> 0.83 on half of the pages but only as the last resort: the first
# <time> of a page is as often a "related story" or "updated" date
DATE_ORDER = ("jsonld", "meta", "microdata", "time")
# JSON-LD author 0.87 right when present, meta 0.78, rel=author 0.86, microdata 0.84,
# byline classes 0.63 (they pick up roles, outlets and dates), links to an author page
# 0.77 but on 40 % of pages, related-story lists among them. rel=author before meta
# scores the same on news4k; meta first spares the tree walk that rel=author, microdata,
# bylines and author links need on most pages. Author links last: before the bylines,
# the whole choice scored one page less (0.860 against 0.862, before the last clean-up)
AUTHOR_ORDER = ("jsonld", "meta", "rel-author", "microdata", "byline", "author-link")

# credited beside a reporter ("Jane Doe, The Associated Press"), an agency is the
# distributor, not an author; alone, it is the byline and stays
WIRE_AGENCIES = frozenset({
    "associated press", "the associated press", "ap", "reuters", "afp", "agence france-presse",
    "agence france presse", "ani", "pti", "ians", "upi", "dpa", "efe", "xinhua", "bloomberg",
    "bloomberg news", "press association", "pa media", "anadolu", "kyodo", "yonhap",
})
# a role or a credential run on after the name in byline markup ("Rick Lane Contributor",
# "Lauren Manaker MS"); "editor" is left alone: "Executive Content Editor" is a byline
_ROLE_TAIL = re.compile(r"\s+(?:(?i:contributor|contributing writer|staff writer|senior writer)|"
                        r"MS|MPH|RDN?|LDN?|RN|CDCES)\s*$")
_CREDENTIAL = re.compile(r"^(?:MS|MPH|RDN?|LDN?|RN|CDCES)$")

# signals that only ``Signals.walk`` adds
WALKED = frozenset({"rel-author", "microdata", "byline", "author-link"})

_TITLE_PARTS = re.compile("\\s+[|\\-\u2013\u2014:\u00b7\u2022\u00bb]\\s+")
_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?)?"
                  r"\s*(Z|[+-]\d{2}:?\d{2})?", re.I)
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201c": '"',
                         "\u201d": '"', "\u201e": '"', "\u2013": "-", "\u2014": "-"})
_US = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")


def fold(text: str | None) -> str:
    """Case, accents, quotes and spacing folded: to compare names and titles."""
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(text.casefold().translate(_QUOTES).split()).strip(" .")


def parse_date(value: str | None) -> datetime | None:
    """ISO 8601 (with or without zone), RFC 2822 or US m/d/Y; the day as the page wrote it."""
    if not value:
        return None
    match = _ISO.search(value)
    if match:
        year, month, day, hour, minute, second, zone = match.groups()
        tz: tzinfo = UTC
        if zone and zone.upper() != "Z":
            offset = zone.replace(":", "")
            tz = datetime.strptime(offset, "%z").tzinfo or UTC
        try:
            return datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                            int(second or 0), tzinfo=tz)
        except ValueError:
            return None
    try:
        parsed = parsedate_to_datetime(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (TypeError, ValueError, IndexError):
        pass
    us = _US.search(value)
    if us:
        try:
            return datetime(int(us[3]), int(us[1]), int(us[2]), tzinfo=UTC)
        except ValueError:
            return None
    return None


def _site_names(signals: Signals) -> set[str]:
    return {fold(value) for _, value in signals.site_name if value}


def _strip_site(title: str, sites: set[str]) -> str:
    """'Story | The Daily World' -> 'Story' when the affix is the site's own name."""
    parts = _TITLE_PARTS.split(title)
    while len(parts) > 1 and fold(parts[-1]) in sites:
        parts.pop()
    while len(parts) > 1 and fold(parts[0]) in sites:
        parts.pop(0)
    if len(parts) == len(_TITLE_PARTS.split(title)):
        return title
    # rejoin what is left with the separators that stood between those parts
    start = title.find(parts[0])
    end = title.rfind(parts[-1]) + len(parts[-1])
    return title[start:end].strip()


def choose_title(signals: Signals) -> tuple[str | None, str | None]:
    """``(title, signal)``: the <h1> when another title signal confirms it, else by TITLE_ORDER.

    The <h1> is the headline as readers see it (no site name), where og:title and the
    JSON-LD headline are often a different, search-engine headline. On some sites the
    first <h1> is the logo or the section: a short <h1> (under three words) or one
    that names the site is taken only when another title signal contains it.
    """
    sites = _site_names(signals)
    others = [_strip_site(value, sites) for source, value in signals.title if source != "h1"]
    h1 = signals.first("title", "h1")
    if h1:
        folded = fold(h1)
        agrees = any(folded in fold(o) or (fold(o) and fold(o) in folded) for o in others)
        looks_like_a_headline = len(folded.split()) >= 3 and not any(s in folded for s in sites if s)
        if not others or agrees or looks_like_a_headline:
            return h1, "h1"
    for source in TITLE_ORDER[1:]:
        value = signals.first("title", source)
        if value:
            return _strip_site(value, sites), source
    return (h1, "h1") if h1 else (None, None)


def choose_date(signals: Signals) -> tuple[datetime | None, str | None]:
    for source in DATE_ORDER:
        if source == "microdata":
            signals.walk()
        for signal, value in signals.date:
            parsed = parse_date(value) if signal == source else None
            if parsed is not None:
                return parsed, source
    return None, None


def _outlet_names(signals: Signals) -> set[str]:
    """The site's names, folded, with and without "The", and the parts of a name such as
    "Telegram & Gazette" (the author splitter cuts bylines at "&" too)."""
    names = set()
    for site in _site_names(signals):
        for part in [site, *AUTHOR_SPLIT.split(site)]:
            part = part.strip()
            if part:
                names.update({part, part.removeprefix("the ")})
    return names


def _without_outlet(name: str, outlets: set[str]) -> str:
    """"Elizabeth Flores USA TODAY" -> "Elizabeth Flores": a byline that runs the outlet's
    name (or a role) on after the person's, as markup without separators reads."""
    words = _ROLE_TAIL.sub("", name).split()
    for k in range(1, len(words)):
        tail = fold(" ".join(words[k:]))
        # "USA TODAY NETWORK" after the name of a "USA TODAY" page
        if tail in outlets or any(tail.startswith(f"{o} ") for o in outlets if " " in o):
            head = " ".join(words[:k])
            return "" if fold(head) == "the" else head
    return " ".join(words)


def choose_authors(signals: Signals) -> tuple[list[str], str | None]:
    """Names by AUTHOR_ORDER, without the outlet's own name (a byline "USA TODAY" is no
    person) and, when a person is named too, without a wire agency credited beside them."""
    site = _outlet_names(signals)
    outlets = site | WIRE_AGENCIES  # what a name may run on into
    for source in AUTHOR_ORDER:
        if source in WALKED:
            signals.walk()
        for signal, names in signals.authors:
            if signal != source:
                continue
            people = [_without_outlet(n, outlets) for n in names
                      if fold(n) not in site and not _CREDENTIAL.match(n)]
            people = [n for n in people if n]
            if any(fold(n) not in WIRE_AGENCIES for n in people):
                people = [n for n in people if fold(n) not in WIRE_AGENCIES]
            if people:
                return list(dict.fromkeys(people)), source
    return [], None


def same_day(value: datetime | None, day: date | None) -> bool:
    return value is not None and day is not None and value.date() == day
