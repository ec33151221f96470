"""The clock the engine reads: wall time for records, monotonic time for deadlines. Injected
so that tests move time by hand instead of sleeping; the default reads the system's."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch: what records and reports show."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: what deadlines are measured on."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()
