"""When to try again after failures: exponential backoff with a cap, on an injected clock.

Pure (the caller passes the time in), so its rule is tested without waiting. Used by the
reconciler (`ccspec watch`): a pass that raises is tried again after 1 s, 2 s, 4 s ... at most
the resync interval, until one succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backoff"]

_MAX_DOUBLINGS = 62  # beyond this a float delay overflows long before any cap matters


@dataclass
class Backoff:
    """Failures in a row and the time of the next try. `first` seconds after the first
    failure, doubling (`factor`) with each further one, never more than `cap`."""

    first: float = 1.0
    cap: float = 30.0
    factor: float = 2.0
    failures: int = 0
    due: float | None = None  # the clock's time of the next try; None while nothing fails

    def delay(self) -> float:
        """Seconds from the last failure to the next try (0 while nothing fails)."""
        if not self.failures:
            return 0.0
        doublings = min(self.failures - 1, _MAX_DOUBLINGS)
        return max(0.0, min(self.cap, self.first * self.factor**doublings))

    def failed(self, now: float) -> float:
        """One more failure at `now`; returns when to try again."""
        self.failures += 1
        self.due = now + self.delay()
        return self.due

    def succeeded(self) -> None:
        self.failures = 0
        self.due = None

    def wait(self, now: float) -> float | None:
        """Seconds from `now` until the next try (0 when it is due), None while nothing fails."""
        if self.due is None:
            return None
        return max(0.0, self.due - now)
