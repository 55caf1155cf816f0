"""Readiness markers: a stage touches ``<ready_dir>/<name>`` once it is doing its work.

``make up`` waits for these files before it returns, and the compose health
checks test for them, so "running" means consuming, not merely started.
"""

from __future__ import annotations

import logging
import os

from pipeline.settings import Settings

logger = logging.getLogger(__name__)


def mark_ready(settings: Settings, name: str) -> None:
    """Record that stage ``name`` (this process) is ready; a no-op without a ready_dir."""
    if settings.ready_dir is None:
        return
    settings.ready_dir.mkdir(parents=True, exist_ok=True)
    marker = settings.ready_dir / name
    marker.write_text(f"{os.getpid()}\n", encoding="utf-8")
    logger.info("%s: ready", name)


def clear_ready(settings: Settings, name: str) -> None:
    """Remove the marker when the stage stops."""
    if settings.ready_dir is not None:
        (settings.ready_dir / name).unlink(missing_ok=True)
