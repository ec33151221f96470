"""ccspec's errors and diagnostics, in one place.

Bad input is never an exception that escapes to the user: the spec pipeline collects
`Diagnostic` values (file, line, column, message) so one run reports every problem, the way
Terraform's tfdiags does. Exceptions are for conditions that stop a command::

    CcspecError                 anything ccspec reports to the user without a traceback
    ├── SpecInvalid             one or more specs have diagnostics (carries them)
    ├── UsageError              bad command-line input (exit 2)
    ├── StateFolderUnwritable   the state folder is full, read-only or failing (exit 5)
    ├── StateBusy               the state database stayed locked by another process (exit 1)
    ├── LeaseHeld               another apply holds the workflow's lease (exit 1)
    ├── LeaseLost               another apply took the lease over while this one ran (exit 4)
    ├── AttemptNumberTaken      the attempt's number is recorded already (exit 1; the engine
    │                           catches it: another runner launched that attempt)
    ├── ApiError                an HTTP status for `ccspec serve` (ccspec.server.errors:
    │                           NotFound 404, Conflict 409, Invalid 422, ...)
    └── TargetError             a place where jobs run misbehaved
        ├── TemporaryTargetError    retry later (connection dropped, scheduler busy)
        │   └── HostUnreachable     the host could not be reached this time
        └── PermanentTargetError    retrying will not help (bad partition, auth refused)

The CLI catches `CcspecError` in one place; anything else is a bug (exit 3). `ccspec serve`
translates any of them in one exception handler too (ccspec.server.errors.failure: an
ErrorBody with the status of its class). The modules that raise the state and host errors
(ccspec.state.store, ccspec.state.busy, ccspec.targets.shells) re-export them under their
old names.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3

__all__ = [
    "AttemptNumberTaken",
    "CcspecError",
    "Diagnostic",
    "HostUnreachable",
    "LeaseHeld",
    "LeaseLost",
    "PermanentTargetError",
    "SpecInvalid",
    "StateBusy",
    "StateFolderUnwritable",
    "TargetError",
    "TemporaryTargetError",
    "UsageError",
]


# what str.splitlines breaks a line at, and the escape that stands for it
_ONE_LINE = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in one spec file. Lines and columns are 1-based (0 means unknown)."""

    file: str
    line: int
    col: int
    message: str
    code: str = field(default="invalid", compare=False)
    severity: str = field(default="error", compare=False)

    def __str__(self) -> str:
        """`file:line:col: message` on one line: a line break in the message (a quoted name
        or path) is written as its escape, as `repr` writes it."""
        return f"{self.file}:{self.line}:{self.col}: {self.message}".translate(_ONE_LINE)

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }


class CcspecError(Exception):
    """An error reported to the user as a message, never as a traceback."""

    exit_code = 1


class UsageError(CcspecError):
    exit_code = 2


class StateFolderUnwritable(CcspecError):
    """The state folder cannot be written (disk full, read-only, over quota, I/O error):
    raised by ccspec.state.unwritable, with a message naming the folder and what to do."""

    exit_code = 5

    def __init__(self, folder: str, message: str) -> None:
        self.folder = folder
        super().__init__(message)


class StateBusy(CcspecError):
    """The state database stayed locked by other processes for longer than we wait."""

    def __init__(self, path: Path, waited: float, cause: sqlite3.OperationalError) -> None:
        super().__init__(
            f"{path} stayed locked for {waited:.0f}s ({cause}): another process holds it "
            "(a ccspec command stuck mid-write, or a program with the database open); "
            "stop that process, then run the command again"
        )
        self.path = path


class LeaseHeld(CcspecError):
    """Another runner holds the workflow's lease."""

    def __init__(self, workflow: str, pid: int, host: str, since: float) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
        self.doing = f"being applied by pid {pid} on {host} since {stamp}"
        super().__init__(
            f"workflow {workflow!r} is {self.doing}; wait for it, run `ccspec cancel`, or pass --wait"
        )
        self.pid = pid
        self.host = host
        self.since = since


class LeaseLost(CcspecError):
    """Another runner took the workflow's lease over while this one ran: it did not renew the
    lease in time (it was stopped, or stalled), so the lease expired and was taken. The
    runner launches nothing more and leaves its running jobs to the new holder."""

    exit_code = 4

    def __init__(self, workflow: str, holder: tuple[int, str, float] | None) -> None:
        if holder is None:
            who = "another apply"
        else:
            pid, host, since = holder
            who = f"pid {pid} on {host} at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))}"
        super().__init__(
            f"workflow {workflow!r} was taken over by {who}: this apply did not renew its lease in "
            "time, so it launched nothing more and left its running jobs to the new holder"
        )
        self.workflow = workflow
        self.taken_by = holder


class AttemptNumberTaken(CcspecError):
    """An attempt of the job already has the number asked for (or a higher one)."""

    def __init__(self, workflow: str, job: str, number: int, highest: int) -> None:
        super().__init__(
            f"job {job!r} of workflow {workflow!r} already has attempt {highest}; "
            f"attempt {number} cannot be recorded again"
        )
        self.number = number
        self.highest = highest


class SpecInvalid(CcspecError):
    """Raised by the Python API when a spec has diagnostics."""

    exit_code = 2

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        lines = "\n".join(f"{d} [{d.code}]" for d in diagnostics)
        super().__init__(f"{len(diagnostics)} problem(s) in the specs:\n{lines}")


class TargetError(CcspecError):
    """A target (local, ssh, slurm, wsl) failed to do what was asked."""


class TemporaryTargetError(TargetError):
    """Worth retrying after a delay: the job's state is unknown, not failed."""


class PermanentTargetError(TargetError):
    """Retrying will not help: the job fails with this message as its reason."""


class HostUnreachable(TemporaryTargetError):
    """The host could not be reached this time; the caller retries later."""
