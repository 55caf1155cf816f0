"""One frozen settings object, read from ``NEWSWATCH_*`` environment variables.

A typo in a variable name (``NEWSWATCH_KAFKA_BOOTSTRAP_SERVER``) or a value of
the wrong type fails at start-up with a message naming the variable, rather
than silently falling back to a default (quix-streams ``ApplicationConfig``,
mediacloud/rss-fetcher ``config.py``).
"""

from __future__ import annotations

import itertools
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PREFIX = "NEWSWATCH_"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY_DIR = REPO_ROOT / "deploy"


class SettingsError(RuntimeError):
    """Raised when the environment holds an unknown or invalid setting."""


class Settings(BaseSettings):
    """Every knob of every stage; each field is ``NEWSWATCH_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="forbid")

    # Services
    kafka_bootstrap: str = "127.0.0.1:9092"
    elasticsearch_url: str = "http://127.0.0.1:9200"
    elasticsearch_username: str | None = None
    elasticsearch_password: str | None = None
    kibana_url: str = "http://127.0.0.1:5601"

    # Topics (names are settings so a test run or a second deployment can share a broker)
    topic_prefix: str = ""
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)

    # Data files
    feeds: Path = DEPLOY_DIR / "feeds.yaml"
    topics_dir: Path = DEPLOY_DIR / "topics"
    subscriptions_dir: Path = DEPLOY_DIR / "subscriptions"
    index_template: Path = DEPLOY_DIR / "elasticsearch" / "index-template.json"
    kafka_topics: Path = DEPLOY_DIR / "kafka" / "topics.yaml"
    index_alias: str = "news-stories"

    # Stage runner
    batch_size: int = Field(default=100, ge=1)
    poll_timeout_ms: int = Field(default=1000, ge=10)
    max_attempts: int = Field(default=3, ge=1)
    retry_backoff_s: float = Field(default=0.5, ge=0)
    retry_backoff_max_s: float = Field(default=10.0, ge=0)
    # a consumer that does not poll for this long leaves its group (kafka-python's default)
    max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    # A consumer out of a stable group (joining, syncing, no coordinator), or with every
    # commit refused, for this long exits so that its supervisor starts a fresh one
    # (kafka-python 3.0.12 sometimes never finishes a rejoin: pipeline/liveness.py).
    # Above the longest batch a stage takes: a rebalance waits for every member's next poll.
    group_stuck_s: float = Field(default=120, gt=0)
    metrics_port: int = Field(default=0, ge=0)  # 0 = no Prometheus endpoint
    # compose sets 0.0.0.0 so Prometheus on the compose network can scrape; no port is published
    metrics_addr: str = "127.0.0.1"
    # A stage touches <ready_dir>/<stage> once it is consuming (make up, compose health checks)
    ready_dir: Path | None = None
    # Delayed retries of transient failures: one retry topic per tier (news.retry.1 ..), each
    # message waits its tier's delay; after the last tier it is dead-lettered. "60,300,1800".
    # (NoDecode: the value is "60,300", not JSON; the validator below parses it)
    retry_delays_s: Annotated[tuple[float, ...], NoDecode] = (60, 300, 1800, 7200, 21600)

    # Poller
    poll_interval_s: float = Field(default=900, gt=0)
    poll_min_interval_s: float = Field(default=300, gt=0)
    poll_max_interval_s: float = Field(default=86400, gt=0)
    poller_once: bool = False
    poller_shard: str = Field(default="0/1", pattern=r"^\d+/[1-9]\d*$")  # "i/n": this replica's share
    poller_concurrency: int = Field(default=100, ge=1)  # feeds in flight per poller process
    poller_per_host: int = Field(default=2, ge=1)  # feeds in flight per host
    poller_full_fetch_s: float = Field(default=86400, gt=0)  # ignore validators after this long
    max_feed_bytes: int = Field(default=20_000_000, gt=0)
    # entries taken from one poll of a feed, newest first (a feed listing thousands is cut)
    feed_max_entries: int = Field(default=500, ge=1)
    # the parse budget: bytes of entries handed to feedparser per poll (about 2 s per MB)
    feed_parse_max_bytes: int = Field(default=2_000_000, ge=10_000)

    # Fetcher
    user_agent: str = "newswatch/0.1 (+{contact})"
    contact_url: str = "https://github.com/newswatch/newswatch"
    connect_timeout_s: float = Field(default=10, gt=0)
    read_timeout_s: float = Field(default=20, gt=0)
    total_timeout_s: float = Field(default=60, gt=0)
    max_page_bytes: int = Field(default=5_000_000, gt=0)
    max_redirects: int = Field(default=5, ge=0)
    fetch_concurrency: int = Field(default=8, ge=1)
    per_host_delay_s: float = Field(default=1.0, ge=0)
    # entries held in memory waiting for their host's turn; above it the fetcher pauses
    # its partitions (still polling, so it stays in its group)
    fetch_max_waiting: int = Field(default=2000, ge=1)
    respect_robots: bool = True
    allow_private_networks: bool = False

    # Enricher and alerter memory
    dedup_window_mb: float = Field(default=200, gt=0)  # near-duplicate window, bytes bound
    dedup_window_days: float = Field(default=7, gt=0)  # ... and age bound
    alert_state_days: float = Field(default=7, gt=0)  # alerter: clusters remembered (and replayed)

    # Shared corpora for tests and benchmarks (absent in a user's clone)
    shared_dir: Path = REPO_ROOT.parent / "shared"

    @field_validator("retry_delays_s", mode="before")
    @classmethod
    def _parse_delays(cls, value: object) -> object:
        # "60,300,1800" from the environment; "(60.0, 300.0)" is what str() of the
        # tuple gives, so a child process can be handed the settings of its parent.
        if isinstance(value, str):
            parts = [p.strip() for p in value.strip().strip("()[]").split(",")]
            return tuple(p for p in parts if p)
        return value

    @field_validator("retry_delays_s")
    @classmethod
    def _check_delays(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("at least one retry tier (delay in seconds) is needed")
        if any(d < 0 for d in value):
            raise ValueError("retry delays cannot be negative")
        if any(b < a for a, b in itertools.pairwise(value)):
            raise ValueError("retry delays must grow from one tier to the next")
        return value

    @property
    def http_user_agent(self) -> str:
        return self.user_agent.format(contact=self.contact_url)

    def topic(self, name: str) -> str:
        """The broker-side name of a logical topic such as ``news.entries``."""
        return f"{self.topic_prefix}{name}"


# Variables of the native-stack scripts (deploy/local/*.sh): not settings of the program.
SCRIPTS_PREFIX = PREFIX + "LOCAL_"


def _check_unknown(environ: dict[str, str]) -> None:
    known = {PREFIX + name.upper() for name in Settings.model_fields}
    unknown = sorted(
        k for k in environ
        if k.startswith(PREFIX) and not k.startswith(SCRIPTS_PREFIX) and k not in known
    )
    if unknown:
        raise SettingsError(
            f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from ``environ`` (default ``os.environ``); fail fast on any mistake."""
    env = dict(os.environ if environ is None else environ)
    _check_unknown(env)
    values = {
        name: env[PREFIX + name.upper()]
        for name in Settings.model_fields
        if PREFIX + name.upper() in env
    }
    try:
        # Values are passed explicitly so that a test can pass its own mapping;
        # the env source would otherwise read os.environ as well.
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{PREFIX}{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment that reproduces ``settings`` in a child process: this process's
    variables without its own ``NEWSWATCH_*``, plus one ``NEWSWATCH_*`` per set field."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is not None:
            env[f"NEWSWATCH_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
