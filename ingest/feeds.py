"""The feed list: YAML (the project's format) and OPML (what feed readers export).

Loading never stops at the first bad entry: each invalid entry becomes a
``FeedProblem`` naming the file and position (line for YAML and OPML), and the
valid entries still load, so one typo does not take a whole source list down.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import yaml
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.urls import InvalidURL, canonical_url, host_of

logger = logging.getLogger(__name__)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> float:
    """Seconds from ``300``, ``"300"``, ``"5m"``, ``"1.5h"`` or ``"1d"``."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration (use e.g. 300, 5m, 2h, 1d): {value!r}")
    return float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]


class FeedSpec(BaseModel):
    """One feed of the list; ``url`` is the only required field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    name: str | None = None
    language: str | None = None  # a hint; the enricher detects the real language
    country: str | None = None  # ISO 3166 alpha-2 hint
    tags: tuple[str, ...] = ()
    min_interval: float | None = Field(default=None, gt=0)
    max_interval: float | None = Field(default=None, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        try:
            canonical_url(value)
        except InvalidURL as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"[A-Za-z]{2}", value):
            raise ValueError(f"country must be an ISO 3166 alpha-2 code, got {value!r}")
        return value.upper()

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        return value.strip().lower() if value else None

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(t.strip() for t in value.split(",") if t.strip())
        return value

    @field_validator("min_interval", "max_interval", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return None if value is None else parse_duration(value)

    @property
    def display_name(self) -> str:
        return self.name or host_of(self.url)


@dataclass(frozen=True)
class FeedProblem:
    """An entry that could not be loaded, and where it is."""

    file: str
    position: str  # "line 12" or "entry 3"
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.position}: {self.message}"


@dataclass
class FeedList:
    feeds: list[FeedSpec] = field(default_factory=list)
    problems: list[FeedProblem] = field(default_factory=list)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "entry"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def _add(result: FeedList, seen: set[str], file: str, position: str, raw: dict[str, Any]) -> None:
    try:
        spec = FeedSpec.model_validate(raw)
    except ValidationError as exc:
        result.problems.append(FeedProblem(file, position, _validation_message(exc)))
        return
    if spec.min_interval and spec.max_interval and spec.min_interval > spec.max_interval:
        result.problems.append(
            FeedProblem(file, position, "min_interval is larger than max_interval")
        )
        return
    key = canonical_url(spec.url)
    if key in seen:
        result.problems.append(FeedProblem(file, position, f"duplicate feed {spec.url}"))
        return
    seen.add(key)
    result.feeds.append(spec)


def load_yaml(text: str, file: str = "<yaml>") -> FeedList:
    """Feeds from a YAML document with a top-level ``feeds:`` list."""
    result = FeedList()
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "file"
        result.problems.append(FeedProblem(file, where, f"not valid YAML: {exc}"))
        return result
    if not isinstance(data, dict) or not isinstance(data.get("feeds"), list):
        result.problems.append(FeedProblem(file, "file", "expected a top-level 'feeds:' list"))
        return result
    # line numbers come from the composed node tree, values from safe_load
    lines: list[int] = []
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "feeds" and isinstance(value, yaml.SequenceNode):
                lines = [item.start_mark.line + 1 for item in value.value]
    seen: set[str] = set()
    for index, raw in enumerate(data["feeds"]):
        position = f"line {lines[index]}" if index < len(lines) else f"entry {index + 1}"
        if isinstance(raw, str):
            raw = {"url": raw}
        if not isinstance(raw, dict):
            result.problems.append(FeedProblem(file, position, "a feed must be a mapping with a url"))
            continue
        _add(result, seen, file, position, raw)
    return result


_OPML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, recover=False)


def load_opml(data: bytes, file: str = "<opml>") -> FeedList:
    """Feeds from OPML: every ``outline`` with an ``xmlUrl``; folders become tags."""
    result = FeedList()
    try:
        root = etree.fromstring(data, _OPML_PARSER)
    except etree.XMLSyntaxError as exc:
        result.problems.append(FeedProblem(file, f"line {exc.lineno}", f"not valid XML: {exc.msg}"))
        return result
    body = root.find("body")
    if root.tag != "opml" or body is None:
        result.problems.append(FeedProblem(file, "file", "expected <opml> with a <body>"))
        return result
    seen: set[str] = set()

    def walk(element: etree._Element, folders: tuple[str, ...]) -> None:
        for outline in element.iterchildren("outline"):
            attrs = {k: v for k, v in outline.attrib.items() if isinstance(k, str)}
            label = attrs.get("title") or attrs.get("text")
            if "xmlUrl" not in attrs:
                if len(outline):
                    walk(outline, (*folders, label) if label else folders)
                else:
                    result.problems.append(
                        FeedProblem(file, f"line {outline.sourceline}", "outline without xmlUrl")
                    )
                continue
            raw: dict[str, Any] = {"url": attrs["xmlUrl"], "name": label}
            for key in ("language", "country", "min_interval", "max_interval"):
                if attrs.get(key):
                    raw[key] = attrs[key]
            tags = list(folders)
            if attrs.get("category"):
                tags += [t.strip(" /") for t in attrs["category"].split(",") if t.strip(" /")]
            raw["tags"] = tuple(dict.fromkeys(tags))
            _add(result, seen, file, f"line {outline.sourceline}", raw)

    walk(body, ())
    return result


def load_feeds(path: Path) -> FeedList:
    """Load a feed list from ``path`` (OPML if it ends in .opml/.xml or starts with ``<``)."""
    data = path.read_bytes()
    if path.suffix.lower() in (".opml", ".xml") or data.lstrip()[:1] == b"<":
        feeds = load_opml(data, str(path))
    else:
        feeds = load_yaml(data.decode("utf-8", "replace"), str(path))
    for problem in feeds.problems:
        logger.warning("feed list: %s", problem)
    return feeds


def _spec_dict(spec: FeedSpec) -> dict[str, Any]:
    data = spec.model_dump(exclude_none=True, exclude_defaults=True)
    if "tags" in data:
        data["tags"] = list(data["tags"])
    return data


def to_yaml(feeds: list[FeedSpec]) -> str:
    """The feed list as YAML (``feeds:`` list)."""
    return yaml.safe_dump(
        {"feeds": [_spec_dict(f) for f in feeds]}, sort_keys=False, allow_unicode=True
    )


def to_opml(feeds: list[FeedSpec], title: str = "newswatch feeds") -> str:
    """The feed list as OPML 2.0; hints go in extra attributes, tags in ``category``."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<opml version="2.0">',
        f"  <head><title>{title}</title></head>",
        "  <body>",
    ]
    for spec in feeds:
        attrs = {"type": "rss", "text": spec.display_name, "title": spec.display_name,
                 "xmlUrl": spec.url}
        if spec.language:
            attrs["language"] = spec.language
        if spec.country:
            attrs["country"] = spec.country
        if spec.tags:
            attrs["category"] = ",".join(spec.tags)
        if spec.min_interval:
            attrs["min_interval"] = f"{spec.min_interval:g}"
        if spec.max_interval:
            attrs["max_interval"] = f"{spec.max_interval:g}"
        rendered = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
        lines.append(f"    <outline {rendered}/>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)
