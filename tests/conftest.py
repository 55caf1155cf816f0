"""Shared fixtures.

Integration tests (marked ``integration``) talk to the real Kafka broker and
Elasticsearch node that ``make test`` starts (deploy/local/services.sh). They
fail, never skip, when those are unreachable: run ``make test``, or
``pytest -m "not integration"`` for the unit tests alone.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.settings import Settings, load_settings
from tests.support.site import LocalSite

REPO_ROOT = Path(__file__).resolve().parent.parent


def _reachable(host_port: str) -> bool:
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def site() -> Iterator[LocalSite]:
    """A real HTTP server on 127.0.0.1 with routes the test adds."""
    server = LocalSite()
    yield server
    server.close()


@pytest.fixture
def shared_dir() -> Path:
    """../shared (corpora); tests that need it skip with a message when it is absent."""
    path = load_settings().shared_dir
    if not path.is_dir():
        pytest.skip(f"shared corpora not found at {path} (set NEWSWATCH_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def services() -> dict[str, str]:
    """Addresses of the real Kafka broker and Elasticsearch node; fails if they are down."""
    base = load_settings()
    kafka = base.kafka_bootstrap.split(",")[0]
    es = base.elasticsearch_url.split("://", 1)[-1].rstrip("/")
    down = [name for name, addr in (("Kafka", kafka), ("Elasticsearch", es)) if not _reachable(addr)]
    if down:
        pytest.fail(
            f"{' and '.join(down)} not reachable ({kafka}, {es}): run `make test`, which starts "
            "them with deploy/local/services.sh, or `pytest -m 'not integration'`",
            pytrace=False,
        )
    return {"kafka": base.kafka_bootstrap, "elasticsearch": base.elasticsearch_url}


@pytest.fixture
def make_settings(services: dict[str, str]) -> Callable[..., Settings]:
    """Settings isolated per test: own topic prefix and index alias, topics created."""

    def factory(create_topics: bool = True, **overrides: Any) -> Settings:
        from pipeline.kafka_io import ensure_topics, load_topic_specs

        run = uuid.uuid4().hex[:8]
        env = {k: v for k, v in os.environ.items() if k.startswith("NEWSWATCH_")}
        env.update(
            {
                "NEWSWATCH_TOPIC_PREFIX": f"t{run}.",
                "NEWSWATCH_INDEX_ALIAS": f"test-{run}-stories",
                "NEWSWATCH_PARTITIONS": "2",
                "NEWSWATCH_ALLOW_PRIVATE_NETWORKS": "true",
                "NEWSWATCH_RETRY_BACKOFF_S": "0.05",
                "NEWSWATCH_RETRY_BACKOFF_MAX_S": "0.2",
                "NEWSWATCH_PER_HOST_DELAY_S": "0",
                "NEWSWATCH_POLL_TIMEOUT_MS": "300",
            }
        )
        env.update({f"NEWSWATCH_{k.upper()}": str(v) for k, v in overrides.items()})
        settings = load_settings(env)
        if create_topics:
            ensure_topics(settings, load_topic_specs(settings.kafka_topics))
        return settings

    return factory


@pytest.fixture(scope="session")
def newswatch_image() -> str:
    """The project's image, built once per session with podman (cached across runs:
    deploy/local/containers.sh rebuilds only when the image's inputs changed)."""
    from tests.support.containers import BUILD_TIMEOUT_S, IMAGE, containers_sh

    result = containers_sh("build", timeout=BUILD_TIMEOUT_S)
    if result.returncode != 0:
        pytest.fail(f"deploy/local/containers.sh build failed:\n{result.stderr[-4000:]}", pytrace=False)
    return IMAGE
