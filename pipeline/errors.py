"""The outcomes a processor can signal besides returning a story.

A stage has exactly three outcomes (mediacloud/story-indexer ``worker.py``):
forward, discard (counted), dead-letter. Everything else is a transient
failure that the runner retries with backoff before dead-lettering.
"""


class Discard(Exception):
    """Drop this story on purpose (not news, filtered out); counted, logged once."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PermanentError(Exception):
    """Retrying cannot help (malformed input, unextractable page): dead-letter it."""


class TransientError(Exception):
    """Worth retrying (timeout, 5xx, 429); dead-lettered once the retries run out."""
