"""CPU seconds and peak memory of a running process, read from /proc (Linux).

The benchmark reads every stage and both service JVMs this way, before and after the
load, so start-up work (the enricher loading its model, the JVMs warming up) is left out
of the per-story figures while the peak RSS (VmHWM) still covers the whole life.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSample:
    pid: int
    user_s: float
    system_s: float

    @property
    def total_s(self) -> float:
        return self.user_s + self.system_s


def cpu_of(pid: int) -> CpuSample | None:
    """utime + stime of ``pid`` and of its reaped children; None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ")"
    fields = raw[raw.rindex(")") + 2:].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return CpuSample(pid, (utime + cutime) / CLOCK_TICKS, (stime + cstime) / CLOCK_TICKS)


def memory_of(pid: int) -> dict[str, int] | None:
    """VmHWM (peak RSS) and VmRSS of ``pid`` in bytes; None when it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    out = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) * 1024  # the kernel writes kB
    return out


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def live_pid(pid_file: Path) -> int | None:
    """The pid written in ``pid_file`` when that process is alive."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None
