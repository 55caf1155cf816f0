"""The outcomes a processor can signal besides returning a story.

A stage has exactly three outcomes (mediacloud/story-indexer ``worker.py``):
forward, discard (counted), dead-letter. ``TransientError`` asks for a retry
later: a few quick attempts in process, then the delayed retry tiers
(``news.retry.N``, see ``pipeline.retry``), then the dead-letter topic. Any
other exception is a bug or an unknown failure: retried in process with
backoff, then dead-lettered.
"""

from __future__ import annotations


class Discard(Exception):
    """Drop this story on purpose (not news, filtered out); counted, logged once."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PermanentError(Exception):
    """Retrying cannot help (malformed input, unextractable page): dead-letter it."""


class TransientError(Exception):
    """Worth retrying later (timeout, 5xx, 429, a site down for a while).

    The runner retries it in process a few times, then sends the message to the
    delayed retry tiers (growing delays, minutes to hours), and dead-letters it
    after the last tier. ``retry_after`` is the server's wish in seconds (an HTTP
    ``Retry-After``): when set, no quick in-process retry is made and the first
    tier at least that long is used.
    """

    def __init__(self, reason: str = "", retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
