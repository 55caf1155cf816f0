"""deploy/local/stages.sh, as `make up` and `make down` use it: ready, restarted, stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.settings import Settings
from tests.support.processes import NEWSWATCH, settings_env

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "stages.sh"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _group_members(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True, text=True, check=True)
    rows = (line.split() for line in out.stdout.splitlines() if line.strip())
    return [int(pid) for pid, group in rows if int(group) == pgid]


def _wait_for_ready_pid(marker: Path, other_than: int | None, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.exists():
            text = marker.read_text().strip()
            if text and int(text) != other_than:
                return int(text)
        time.sleep(0.5)
    raise AssertionError(f"{marker} never named a new process")


def test_a_stage_is_supervised_and_stopped_without_leftovers(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    run_dir = tmp_path / "run"
    port = _free_port()
    env = settings_env(settings) | {
        "NEWSWATCH_LOCAL_RUN_DIR": str(run_dir),
        "NEWSWATCH_LOCAL_BIN": NEWSWATCH,
        "NEWSWATCH_LOCAL_STAGE_RESTART_DELAY": "1",
        # the enricher is the third stage: its metrics port is base + 2
        "NEWSWATCH_LOCAL_METRICS_BASE_PORT": str(port - 2),
    }

    def stages(*args: str) -> None:
        subprocess.run(["bash", str(SCRIPT), *args], env=env, check=True, timeout=180)

    stages("start", "enricher")
    supervisor = int((run_dir / "enricher.pid").read_text())
    try:
        first = _wait_for_ready_pid(run_dir / "ready" / "enricher", other_than=None)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            assert b"newswatch_dedup_window_stories" in response.read()
        # a stage that dies (as on an outage it cannot ride out) comes back by itself
        os.kill(first, signal.SIGKILL)
        second = _wait_for_ready_pid(run_dir / "ready" / "enricher", other_than=first)
        assert second in _group_members(supervisor)
        assert "exited with status 137; restarting" in (run_dir / "logs" / "enricher.log").read_text()
    finally:
        stages("stop", "enricher")
    assert _group_members(supervisor) == []
    assert not (run_dir / "enricher.pid").exists()
    assert not (run_dir / "ready" / "enricher").exists()
