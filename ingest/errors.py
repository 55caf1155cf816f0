"""Ingest failures that carry a ``kind`` for feed health ("timeout", "http_404", ...).

They subclass the pipeline's ``PermanentError``/``TransientError`` so the stage
runner dead-letters or retries them like any other.
"""

from __future__ import annotations

from pipeline.errors import PermanentError, TransientError


class IngestPermanent(PermanentError):
    """Retrying cannot help (404, not HTML, private address, nothing to extract)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class IngestTransient(TransientError):
    """Worth retrying later (timeout, 429, 5xx); ``retry_after`` is the server's wish, if any."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


def error_kind(exc: BaseException) -> str:
    """A short label for health reports and counters."""
    return getattr(exc, "kind", None) or type(exc).__name__
