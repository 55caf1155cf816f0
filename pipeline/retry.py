"""The one backoff policy every retry in the pipeline uses (stage runner, indexer, webhooks)."""

from __future__ import annotations

from tenacity import wait_exponential_jitter
from tenacity.wait import wait_base

from pipeline.settings import Settings


def backoff(settings: Settings) -> wait_base:
    """Exponential backoff from ``retry_backoff_s`` up to ``retry_backoff_max_s``, with jitter
    of the same order as the first wait, so that replicas retrying together spread out."""
    return wait_exponential_jitter(
        multiplier=settings.retry_backoff_s,
        max=settings.retry_backoff_max_s,
        jitter=settings.retry_backoff_s,
    )
