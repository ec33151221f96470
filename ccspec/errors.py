"""ccspec's errors and diagnostics, in one place.

Bad input is never an exception that escapes to the user: the spec pipeline collects
`Diagnostic` values (file, line, column, message) so one run reports every problem, the way
Terraform's tfdiags does. Exceptions are for conditions that stop a command::

    CcspecError                 anything ccspec reports to the user without a traceback
    ├── SpecInvalid             one or more specs have diagnostics (carries them)
    ├── UsageError              bad command-line input (exit 2)
    ├── StateFolderUnwritable   the state folder is full, read-only or failing (exit 5)
    └── TargetError             a place where jobs run misbehaved
        ├── TemporaryTargetError    retry later (connection dropped, scheduler busy)
        └── PermanentTargetError    retrying will not help (bad partition, auth refused)

The CLI catches `CcspecError` in one place; anything else is a bug (exit 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "CcspecError",
    "Diagnostic",
    "PermanentTargetError",
    "SpecInvalid",
    "StateFolderUnwritable",
    "TargetError",
    "TemporaryTargetError",
    "UsageError",
]


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
        return f"{self.file}:{self.line}:{self.col}: {self.message}"

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
