"""Helpers for jobs written in Python: report progress and outputs on the log.

    from ccspec import job
    job.progress(40, "epoch 2 of 5")
    job.output("accuracy", 0.973)

They print the job output protocol's lines (see `ccspec.progress`), flushed at once so the
runner sees them while the job runs, on any target.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

__all__ = ["output", "progress"]


def progress(percent: float, message: str | None = None, *, file: TextIO | None = None) -> None:
    line = f"# ccspec progress={percent:g}"
    if message is not None:
        line += " message=" + json.dumps(str(message))
    print(line, file=file or sys.stdout, flush=True)


def output(name: str, value: Any, *, file: TextIO | None = None) -> None:
    if not name or "=" in name or any(c.isspace() for c in name):
        raise ValueError(f"output name {name!r} must be one word without '='")
    print(
        f"# ccspec output {name}={json.dumps(value, default=str)}",
        file=file or sys.stdout,
        flush=True,
    )
