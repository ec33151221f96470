"""Job states (DESIGN.md, contract) and what they mean for planning."""

from __future__ import annotations

from enum import Enum

__all__ = ["ACTIVE", "FINAL", "UNSUCCESSFUL", "JobState"]


class JobState(str, Enum):
    PENDING = "pending"  # waiting for the jobs it needs
    QUEUED = "queued"  # ready, waiting for a slot (or in a scheduler's queue)
    LAUNCHING = "launching"  # recorded intent: a launch is under way
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # a job it needs did not succeed
    LOST = "lost"  # vanished from every source of truth

    def __str__(self) -> str:
        return self.value


FINAL = frozenset(
    {
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.TIMED_OUT,
        JobState.CANCELLED,
        JobState.SKIPPED,
        JobState.LOST,
    }
)
UNSUCCESSFUL = FINAL - {JobState.SUCCEEDED}
# an attempt may be out there
ACTIVE = frozenset({JobState.LAUNCHING, JobState.RUNNING, JobState.QUEUED})
