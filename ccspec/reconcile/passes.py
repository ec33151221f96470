"""The reconciler's own figures for `/metrics`: passes per workflow by outcome (`planned`,
`unchanged`: a resync that found the workflow's stamp unchanged and did not plan, `failed`),
a histogram of pass durations by outcome, and how many passes wait or run now.

Counted by the workflow controllers (ccspec.reconcile.controller) from their threads; read by
the server's metrics (ccspec.server.metrics) under `watch --serve`, from its threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["OUTCOMES", "PASS_BUCKETS", "PassLog", "PassSnapshot"]

# seconds; a pass that runs jobs lasts as long as they do
PASS_BUCKETS = (0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0, 60.0, 600.0, 3600.0)
OUTCOMES = ("planned", "unchanged", "failed")


@dataclass(frozen=True)
class PassSnapshot:
    """The figures at one moment; `buckets[outcome][i]`: passes of at most PASS_BUCKETS[i]
    seconds (not cumulative)."""

    passes: dict[tuple[str, str], int]  # (workflow, outcome) -> passes
    buckets: dict[str, list[int]]
    count: dict[str, int]
    seconds: dict[str, float]
    waiting: int = 0  # workflows with a pass due that has not started
    running: int = 0  # passes under way


@dataclass
class PassLog:
    """Counts passes; thread-safe."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _passes: dict[tuple[str, str], int] = field(default_factory=dict)
    _buckets: dict[str, list[int]] = field(
        default_factory=lambda: {o: [0] * len(PASS_BUCKETS) for o in OUTCOMES}
    )
    _count: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    _seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0.0))

    def count(self, workflow: str, seconds: float, outcome: str) -> None:
        with self._lock:
            key = (workflow, outcome)
            self._passes[key] = self._passes.get(key, 0) + 1
            self._count[outcome] += 1
            self._seconds[outcome] += seconds
            for i, bound in enumerate(PASS_BUCKETS):
                if seconds <= bound:
                    self._buckets[outcome][i] += 1
                    break

    def snapshot(self, *, waiting: int = 0, running: int = 0) -> PassSnapshot:
        with self._lock:
            return PassSnapshot(
                dict(self._passes),
                {o: list(b) for o, b in self._buckets.items()},
                dict(self._count),
                dict(self._seconds),
                waiting,
                running,
            )
