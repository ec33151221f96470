"""Resource usage of one attempt: its wall time, CPU time (user + system, of the whole process
tree the job waited for) and peak memory (the largest RSS of one process of the tree), and
the warning shown when a job used far less or far more than its `resources` asked.

The wrapper (templates/run-wrapper.sh, job-wrapper.sh) writes the usage line as the second
line of the run folder's exit-code file as the job ends; the engine reads it
(`attempt_usage`) when it records the end. On remote hosts (ssh, Slurm, WSL) the same
wrappers write it, and the host's poll brings it with the attempt's final status. Shown by
`ccspec status`, the status file, the API, the dashboard and `ccspec report`.

Thresholds of the warning (`usage_warning`):
- memory: peak RSS above 100% of `resources.mem` (the job risks being killed by a scheduler
  that enforces it), or below 10% of it (the ask keeps other jobs waiting);
- CPU: for jobs of at least MIN_WALL seconds, CPU time / wall time below 25% of
  `resources.cpus` (the cores asked for sat idle), or above 150% of it (the job ran more
  threads than it asked for and competes with its neighbours).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccspec.spec.models import Resources

__all__ = [
    "MIN_WALL",
    "Usage",
    "attempt_usage",
    "format_bytes",
    "parse_usage",
    "read_usage",
    "usage_warning",
]

MIN_WALL = 10.0  # seconds: shorter jobs are mostly start-up, their CPU share says little
MEM_LOW, MEM_HIGH = 0.10, 1.00  # of resources.mem
CPU_LOW, CPU_HIGH = 0.25, 1.50  # of resources.cpus
_TICK = 0.01  # /proc/PID/stat counts CPU in USER_HZ ticks, 100 a second on Linux


@dataclass(frozen=True)
class Usage:
    """An attempt's measured usage; a field is None when it was not measured."""

    wall: float | None = None  # seconds
    cpu: float | None = None  # seconds, user + system
    max_rss: int | None = None  # bytes

    def cpu_share(self) -> float | None:
        """Cores kept busy on average (CPU time / wall time)."""
        if self.cpu is None or not self.wall:
            return None
        return self.cpu / self.wall


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "."))  # EPOCHREALTIME follows the locale's decimal point
    except ValueError:
        return None


def parse_usage(text: str) -> Usage | None:
    """The wrapper's usage line: `t USER SYS KB START END` (CPU in ticks, from the shell) or
    `s USER SYS KB START END` (CPU in seconds, from getrusage); `-` where unknown."""
    parts = text.split()
    if len(parts) != 6 or parts[0] not in ("s", "t"):
        return None
    user, system, kb, start, end = (_number(p) for p in parts[1:])
    scale = _TICK if parts[0] == "t" else 1.0
    cpu = None if user is None or system is None else round((user + system) * scale, 3)
    wall = None if start is None or end is None or end < start else round(end - start, 3)
    rss = None if kb is None or kb <= 0 else int(kb) * 1024
    return Usage(wall, cpu, rss)


def attempt_usage(run_dir: Path | str | None) -> Usage | None:
    """The usage a local attempt's wrapper recorded in its run folder: the exit-code file's
    second line (an older wrapper's file `usage`). A remote attempt's (ssh, Slurm, WSL) comes
    with its final status from the host's poll (ccspec.targets.base.Status)."""
    if run_dir is None:
        return None
    return read_usage(Path(run_dir, "exit_code")) or read_usage(Path(run_dir, "usage"))


def read_usage(path: Path) -> Usage | None:
    """The usage line in the file `path` (a usage file, or an exit-code file's second line)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        text = os.read(fd, 512).decode(errors="replace")
    except OSError:
        text = ""
    finally:
        os.close(fd)
    for line in text.splitlines():
        if (found := parse_usage(line)) is not None:
            return found
    return None


def usage_warning(usage: Usage | None, resources: Resources) -> str | None:
    """Why the job's `resources` do not fit what it used (None: they fit, or not known)."""
    if usage is None:
        return None
    cpus, mem_mb = resources.cpus, resources.mem
    notes = []
    if mem_mb and usage.max_rss is not None:
        asked = mem_mb * 1024 * 1024
        if usage.max_rss > asked * MEM_HIGH:
            notes.append(f"peak memory {format_bytes(usage.max_rss)} is over the {mem_mb}M asked")
        elif usage.max_rss < asked * MEM_LOW:
            notes.append(
                f"peak memory {format_bytes(usage.max_rss)} is under 10% of the {mem_mb}M asked"
            )
    share = usage.cpu_share()
    if cpus and share is not None and (usage.wall or 0.0) >= MIN_WALL:
        if share < cpus * CPU_LOW:
            notes.append(f"it kept {share:.2f} of the {cpus} CPUs asked busy (under 25%)")
        elif share > cpus * CPU_HIGH:
            notes.append(f"it kept {share:.2f} CPUs busy, over the {cpus} asked")
    return "; ".join(notes) or None


def format_bytes(count: int | None) -> str:
    """`52428800` -> `50.0M` (binary units, as `resources.mem` counts them)."""
    if count is None:
        return "-"
    size = float(count)
    for unit in ("B", "K", "M", "G"):
        if size < 1024:
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}T"
