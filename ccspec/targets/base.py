"""What a launch is, and the interface of this machine's target (`LocalTarget`). Remote
hosts (ssh, Slurm, WSL) implement the batch form of the same protocol, `Backend` in
`ccspec.targets.remote`, driven by a thread per host (`ccspec.targets.worker`).

Batch-first: `poll` takes every handle on the target at once, so 1,000 running jobs cost one
status query per host per poll. A query that fails answers `None` for a job ("unknown"),
never "failed".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ccspec.states import JobState

__all__ = ["Launch", "Status", "Target"]


@dataclass(frozen=True)
class Launch:
    """Everything a target needs to start one attempt."""

    workflow: str
    job_id: str
    attempt: int
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    run_dir: Path  # the wrapper writes pid and exit_code here
    log_path: Path
    timeout: float | None = None
    wrapped: bool = False  # argv already records pid and exit code (the run: wrapper)


@dataclass(frozen=True)
class Status:
    state: JobState
    exit_code: int | None = None
    reason: str | None = None
    finished: float | None = (
        None  # when it ended by its host's account (None: when ccspec learnt of it)
    )
    extra: Mapping[str, str] = field(default_factory=dict)


# (handle, exit code or None if it left none) -> None, from any thread
ExitCallback = Callable[[str, int | None], None]


class Target(Protocol):
    name: str

    def submit(self, launch: Launch, on_exit: ExitCallback) -> str:
        """Start the attempt detached; return its handle (pid, Slurm id...)."""

    def poll(self, handles: Mapping[str, Path]) -> dict[str, Status | None]:
        """States of attempts by handle (with their run folders); None means unknown."""

    def cancel(self, handle: str, run_dir: Path, *, force: bool = False) -> None:
        """Stop an attempt and everything it started."""

    def read_log(self, log_path: Path, offset: int, most: int = 1 << 20) -> bytes:
        """At most `most` log bytes from `offset` on."""
