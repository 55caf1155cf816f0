"""Running the real ``newswatch`` command as child processes in tests."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from pipeline.settings import Settings, child_environment

NEWSWATCH = str(Path(sys.executable).parent / "newswatch")




def newswatch(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one ``newswatch`` command to completion."""
    return subprocess.run(
        [NEWSWATCH, *args], env=child_environment(settings), capture_output=True, text=True, timeout=timeout
    )


class Stage:
    """A ``newswatch run STAGE`` process, stopped with SIGTERM like an operator would."""

    def __init__(self, settings: Settings, name: str, log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [NEWSWATCH, "run", name], env=child_environment(settings), stdout=self._log,
            stderr=subprocess.STDOUT,
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
