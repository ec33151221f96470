"""Waiting for a state database that another ccspec process is creating or migrating.

SQLite's busy timeout covers most waits, but not all: switching a new database to WAL, or
taking a lock that would deadlock with another connection's, fails at once with "database is
locked". `StateStore` (ccspec/state/store.py) runs the steps of opening the database through
`retry_busy`, which tries again with a bounded backoff and, if the database never frees up,
raises `StateBusy` naming it: commands started together on a fresh state folder all succeed.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

# StateBusy is re-exported: raised here
from ccspec.errors import StateBusy

__all__ = ["OPEN_PATIENCE", "StateBusy", "is_busy", "retry_busy"]

OPEN_PATIENCE = 30.0  # seconds opening a state database may wait for other processes
FIRST_DELAY = 0.005  # seconds before the first retry; doubled each time up to LONGEST_DELAY
LONGEST_DELAY = 0.25

_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6

T = TypeVar("T")


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite failed because another connection holds a lock (worth retrying)."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    text = str(exc)
    return "locked" in text or "busy" in text


def retry_busy(action: Callable[[], T], path: Path, patience: float = OPEN_PATIENCE) -> T:
    """`action()`, tried again while the database is busy, for up to `patience` seconds."""
    start = time.monotonic()
    delay = FIRST_DELAY
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            waited = time.monotonic() - start
            if not is_busy(exc):
                raise
            if waited + delay > patience:
                raise StateBusy(path, max(waited, patience), exc) from exc
            time.sleep(delay)
            delay = min(LONGEST_DELAY, delay * 2)
