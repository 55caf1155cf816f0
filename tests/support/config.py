"""Settings for unit tests that fetch from the local test server (no Kafka, no Elasticsearch)."""

from __future__ import annotations

from typing import Any

from pipeline.settings import Settings, load_settings


def local_settings(**overrides: Any) -> Settings:
    """Settings that may fetch 127.0.0.1, without politeness delays and with short timeouts;
    ``overrides`` are field names (``per_host_delay_s=0.5``)."""
    env = {
        "NEWSWATCH_ALLOW_PRIVATE_NETWORKS": "true",
        "NEWSWATCH_PER_HOST_DELAY_S": "0",
        "NEWSWATCH_TOTAL_TIMEOUT_S": "3",
        "NEWSWATCH_READ_TIMEOUT_S": "2",
        "NEWSWATCH_CONNECT_TIMEOUT_S": "2",
    }
    env.update({f"NEWSWATCH_{k.upper()}": str(v) for k, v in overrides.items()})
    return load_settings(env)
