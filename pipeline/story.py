"""The one document type that travels on every topic: ``Story``.

JSON on the wire (readable with any Kafka client, e.g. kcat), one section per
stage. External data (feedparser entries, HTTP responses, trafilatura output)
is turned into these models where it enters, never passed around as dicts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import PermanentError
from pipeline.urls import canonical_url, story_id

SCHEMA_VERSION = 1

FieldSource = Literal["page", "feed", "detected", "none"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    # Unknown fields from a newer producer are kept rather than dropped, so an
    # older stage in a rolling upgrade forwards them untouched.
    model_config = ConfigDict(extra="allow")


class FeedEntry(_Model):
    """What the poller learned from the feed about this story."""

    feed_url: str
    feed_name: str | None = None
    entry_id: str | None = None
    link: str
    title: str | None = None
    summary: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    language: str | None = None  # the feed's declared language: a hint only
    country: str | None = None  # the feed list's country hint (ISO 3166 alpha-2)
    tags: list[str] = Field(default_factory=list)
    discovered_at: datetime = Field(default_factory=utcnow)


class FetchResult(_Model):
    """How the page was fetched."""

    final_url: str
    status: int
    content_type: str | None = None
    charset: str | None = None
    bytes: int = 0
    redirects: list[str] = Field(default_factory=list)
    elapsed_ms: int = 0
    fetched_at: datetime = Field(default_factory=utcnow)


class Content(_Model):
    """The extracted article, and where each field came from."""

    title: str | None = None
    text: str = ""
    author: str | None = None
    published_at: datetime | None = None
    site_name: str | None = None
    language: str | None = None
    canonical_url: str | None = None
    description: str | None = None
    sources: dict[str, FieldSource] = Field(default_factory=dict)
    # for fields taken from the page: which signal gave them ("jsonld", "og:title", "h1",
    # "time", "htmldate", "trafilatura"...). Free text, so a new signal needs no schema change
    # and an older stage in a rolling upgrade still reads the story.
    page_signals: dict[str, str] = Field(default_factory=dict)
    extractor: str = "trafilatura"


class Evidence(_Model):
    """One matched passage that supports a tag."""

    text: str
    matched: list[str] = Field(default_factory=list)
    start: int | None = None


class TopicTag(_Model):
    name: str
    # with a meaning check: the calibrated probability that the story is on topic (0..1);
    # a topic without one: the rule sum over its threshold (1.0 = just tagged)
    score: float
    rule_score: float | None = None  # the rules' part, where a meaning check decided
    evidence: list[Evidence] = Field(default_factory=list)


class Entity(_Model):
    name: str
    type: Literal["person", "organization", "place", "nationality", "other"]
    country: str | None = None  # ISO 3166 alpha-2, for places and nationalities
    mentions: int = 1


class Enrichment(_Model):
    language: str | None = None
    language_confidence: float | None = None
    entities: list[Entity] = Field(default_factory=list)
    countries: list[str] = Field(default_factory=list)  # ISO 3166 alpha-2
    topics: list[TopicTag] = Field(default_factory=list)
    keyphrases: list[str] = Field(default_factory=list)
    content_hash: str | None = None
    cluster_id: str | None = None


class Story(_Model):
    """A news story; ``id`` is the hash of the canonical URL (Kafka key, ES ``_id``)."""

    schema_version: int = SCHEMA_VERSION
    id: str
    url: str
    source: str | None = None  # the outlet: feed name or host
    feed: FeedEntry | None = None
    fetch: FetchResult | None = None
    content: Content | None = None
    enrichment: Enrichment | None = None

    @classmethod
    def from_link(cls, link: str, **fields: object) -> Story:
        """A new story for ``link``; its id and url come from the canonical form."""
        url = canonical_url(link)
        return cls(id=story_id(url), url=url, **fields)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> Story:
        """Decode a Kafka value; anything undecodable is a permanent error (dead-letter)."""
        if raw is None:
            raise PermanentError("empty message value")
        try:
            story = cls.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "value"
            raise PermanentError(f"undecodable story: {where}: {first['msg']}") from None
        if story.schema_version > SCHEMA_VERSION:
            raise PermanentError(
                f"story schema_version {story.schema_version} is newer than {SCHEMA_VERSION}"
            )
        return story

    @property
    def title(self) -> str | None:
        if self.content and self.content.title:
            return self.content.title
        return self.feed.title if self.feed else None

    @property
    def text(self) -> str:
        return self.content.text if self.content else ""

    @property
    def published_at(self) -> datetime | None:
        if self.content and self.content.published_at:
            return self.content.published_at
        return self.feed.published_at if self.feed else None
