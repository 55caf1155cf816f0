"""Alert subscriptions: YAML files naming topics and filters, one per file.

```yaml
name: foreign-fighters          # publishes to Kafka topic alerts.foreign-fighters
topics: [foreign-fighters]      # any of these tags (empty: any tagged story)
filters:                        # every filter given must hold; within one, any value
  languages: [en, fr]
  countries: [UA, CO]           # ISO 3166 alpha-2, against the story's countries
  entities: [Wagner Group]      # case-insensitive, against the story's entity names
  minimum_score: 0.82           # a tag counts only at or above this score (a probability)
output:
  webhook:                      # optional: HTTP POST of each alert
    url: https://hooks.example.org/newswatch
    headers: {Authorization: Bearer ...}
```

A typo in a key fails loading with the file name, rather than silently
matching everything.
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.kafka_io import ALERT_PREFIX
from pipeline.story import Story, TopicTag

logger = logging.getLogger(__name__)

# Kafka topic names allow [a-zA-Z0-9._-]; lower case keeps file names and topics aligned.
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,100}$"


class SubscriptionError(ValueError):
    """A subscription file that cannot be loaded (names the file and the problem)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Filters(_Strict):
    languages: list[str] = Field(default_factory=list)
    countries: list[str] = Field(default_factory=list)
    entities: list[str] = Field(default_factory=list)
    minimum_score: float = 0.0

    @field_validator("countries")
    @classmethod
    def _iso_codes(cls, values: list[str]) -> list[str]:
        codes = [v.strip().upper() for v in values]
        bad = [c for c in codes if len(c) != 2 or not c.isalpha()]
        if bad:
            raise ValueError(f"countries must be ISO 3166 alpha-2 codes, got {bad}")
        return codes

    @field_validator("languages")
    @classmethod
    def _lower(cls, values: list[str]) -> list[str]:
        return [v.strip().lower() for v in values]


class Webhook(_Strict):
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=10.0, gt=0)


class Output(_Strict):
    webhook: Webhook | None = None


class Subscription(_Strict):
    """One subscription; alerts go to Kafka topic ``alerts.<name>``."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    topics: list[str] = Field(default_factory=list)
    filters: Filters = Field(default_factory=Filters)
    output: Output = Field(default_factory=Output)

    @property
    def alert_topic(self) -> str:
        """The logical alert topic (pass it through ``settings.topic``)."""
        return ALERT_PREFIX + self.name

    def match(self, story: Story) -> list[TopicTag] | None:
        """The story's tags that satisfy this subscription, or None if it does not match."""
        enrichment = story.enrichment
        if enrichment is None:
            return None
        f = self.filters
        tags = [
            t for t in enrichment.topics
            if t.score >= f.minimum_score and (not self.topics or t.name in self.topics)
        ]
        if not tags:
            return None
        if f.languages and (enrichment.language or "").lower() not in f.languages:
            return None
        if f.countries and not {c.upper() for c in enrichment.countries} & set(f.countries):
            return None
        if f.entities:
            wanted = {e.casefold() for e in f.entities}
            if not {e.name.casefold() for e in enrichment.entities} & wanted:
                return None
        return tags


def load_subscription(path: Path) -> Subscription:
    """Parse one subscription file; any problem raises ``SubscriptionError`` naming it."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SubscriptionError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise SubscriptionError(f"{path}: expected a mapping with at least `name`")
    try:
        return Subscription.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SubscriptionError(f"{path}: {problems}") from None


def load_subscriptions(directory: Path) -> list[Subscription]:
    """Every ``*.yaml``/``*.yml`` subscription in ``directory`` (none if it is absent)."""
    if not directory.is_dir():
        logger.warning("subscriptions directory %s not found: no alerts", directory)
        return []
    paths = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    subscriptions = [load_subscription(p) for p in paths]
    seen: dict[str, Path] = {}
    for sub, path in zip(subscriptions, paths, strict=True):
        if sub.name in seen:
            raise SubscriptionError(f"{path}: name {sub.name!r} already used by {seen[sub.name]}")
        seen[sub.name] = path
    return subscriptions
