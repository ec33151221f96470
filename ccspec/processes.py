"""Process liveness on this machine, shared by the state store (lease holders) and the
local target (detached jobs)."""

from __future__ import annotations

import os
import sys

__all__ = ["pid_alive"]


def pid_alive(pid: int | None) -> bool:
    """Whether `pid` runs; a zombie (exited, not yet reaped) does not."""
    if not pid:
        return False
    if sys.platform == "win32":  # pragma: no cover - no Windows here
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
