"""The run's own Kafka and Elasticsearch, stopped and started through deploy/local/services.sh
(the disruptive tests: test_resilience.py, test_group_liveness.py)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.settings import Settings

SERVICES = Path(__file__).resolve().parents[2] / "deploy" / "local" / "services.sh"


def services(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """deploy/local/services.sh with this test run's own NEWSWATCH_LOCAL_* variables."""
    return subprocess.run(["bash", str(SERVICES), *args], env=dict(os.environ),
                          capture_output=True, text=True, timeout=timeout)


def check_services_are_ours(settings: Settings, which: str) -> None:
    """Fail unless services.sh (with this run's variables) runs the service the tests use."""
    env = dict(line.split("=", 1) for line in services("env").stdout.splitlines() if "=" in line)
    wanted = {"kafka": ("KAFKA_BOOTSTRAP_SERVERS", settings.kafka_bootstrap),
              "elasticsearch": ("ELASTICSEARCH_URL", settings.elasticsearch_url.rstrip("/"))}
    key, address = wanted[which]
    status = services("status", which)
    if env.get(key) != address or status.returncode != 0:
        pytest.fail(
            f"this case restarts {which} with deploy/local/services.sh, which (with this run's "
            f"NEWSWATCH_LOCAL_* variables) manages {env.get(key)} ({status.stdout.strip()}), "
            f"while the tests use {address}: start the services with the same variables "
            "(make test does), so that no one else's service is touched",
            pytrace=False,
        )


def services_ok(*args: str) -> None:
    result = services(*args)
    assert result.returncode == 0, f"services.sh {' '.join(args)}: {result.stdout}{result.stderr}"


@contextmanager
def restored(which: str) -> Iterator[None]:
    """Whatever happens inside, ``which`` is running again afterwards."""
    try:
        yield
    finally:
        services_ok("start", which)
