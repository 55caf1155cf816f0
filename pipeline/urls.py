"""Canonical URLs and story ids.

The story id is a hash of the canonical URL, so the same article reached by
``http://www.site/a?utm_source=rss`` and ``https://site/a`` is one story: one
Kafka key, one Elasticsearch ``_id``, idempotent on replay.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit, urlunsplit

import courlan


class InvalidURL(ValueError):
    """The text is not an absolute http(s) URL."""


def canonical_url(url: str) -> str:
    """Normalise ``url``: lower-case host, default port and tracking parameters
    dropped, query sorted, fragment removed (courlan does the parameter work)."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidURL(f"not an absolute http(s) URL: {url[:200]!r}")
    normalized = courlan.normalize_url(url, strict=False)
    parts = urlsplit(normalized)
    path = parts.path or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def identity_key(url: str) -> str:
    """The part of a canonical URL that decides identity: scheme and a leading
    ``www.`` are ignored, since publishers serve the same page under both."""
    parts = urlsplit(canonical_url(url))
    host = parts.netloc.removeprefix("www.")
    path = parts.path.rstrip("/") or "/"
    return f"{host}{path}" + (f"?{parts.query}" if parts.query else "")


def story_id(url: str) -> str:
    """A stable 32-hex-digit id for the story at ``url``."""
    return hashlib.sha256(identity_key(url).encode("utf-8")).hexdigest()[:32]


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()
