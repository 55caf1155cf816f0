"""Running the real ``newswatch`` command as child processes in tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from pipeline.settings import Settings

NEWSWATCH = str(Path(sys.executable).parent / "newswatch")


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that reproduces ``settings`` in a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is not None:
            env[f"NEWSWATCH_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def newswatch(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one ``newswatch`` command to completion."""
    return subprocess.run(
        [NEWSWATCH, *args], env=settings_env(settings), capture_output=True, text=True, timeout=timeout
    )


class Stage:
    """A ``newswatch run STAGE`` process, stopped with SIGTERM like an operator would."""

    def __init__(self, settings: Settings, name: str, log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [NEWSWATCH, "run", name], env=settings_env(settings), stdout=self._log, stderr=subprocess.STDOUT
        )

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
