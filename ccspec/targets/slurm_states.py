"""Slurm's job states as ccspec's, and the squeue and sacct lines they come in. Used by
`ccspec.targets.slurm` (polls) and `ccspec.targets.slurm_pack` (members of a pack).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ccspec.states import JobState
from ccspec.targets.base import Status
from ccspec.targets.slurm_array import SLURM_ID

__all__ = ["SlurmRecord", "final", "map_state", "parse_sacct", "parse_squeue"]

QUEUED_STATES = {
    "PENDING",
    "CONFIGURING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESV_DEL_HOLD",
    "SUSPENDED",
}
RUNNING_STATES = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING"}
FINAL_REASONS = {
    "TIMEOUT": (JobState.TIMED_OUT, "Slurm's time limit was reached (TIMEOUT)"),
    "NODE_FAIL": (JobState.FAILED, "the node failed (NODE_FAIL)"),
    "OUT_OF_MEMORY": (JobState.FAILED, "out of memory (OUT_OF_MEMORY)"),
    "BOOT_FAIL": (JobState.FAILED, "the node failed to boot (BOOT_FAIL)"),
    "DEADLINE": (JobState.FAILED, "the job missed its deadline (DEADLINE)"),
    "PREEMPTED": (JobState.FAILED, "preempted by Slurm (PREEMPTED)"),
    "REVOKED": (JobState.FAILED, "revoked by Slurm (REVOKED)"),
    "SPECIAL_EXIT": (JobState.FAILED, "held in a special exit state (SPECIAL_EXIT)"),
}


@dataclass(frozen=True)
class SlurmRecord:
    state: str
    exit_code: int | None = None
    reason: str | None = None


def map_state(record: SlurmRecord, file_code: int | None) -> Status:
    """A Slurm state (from squeue or sacct) as a ccspec status, with the reason."""
    state = record.state.split()[0].rstrip("+") if record.state else ""
    if state in QUEUED_STATES:
        reason = record.reason if record.reason and record.reason != "None" else None
        return Status(
            JobState.QUEUED, None, f"{state.lower()}: {reason}" if reason else state.lower()
        )
    if state in RUNNING_STATES:
        return Status(JobState.RUNNING)
    code = file_code if file_code is not None else record.exit_code
    if state == "COMPLETED":
        if code in (None, 0):
            return Status(JobState.SUCCEEDED, 0)
        return Status(JobState.FAILED, code, f"exit code {code}")
    if state == "FAILED":
        return Status(
            JobState.FAILED, code, f"exit code {code}" if code else "failed in Slurm (FAILED)"
        )
    if state == "CANCELLED":
        return Status(JobState.CANCELLED, code, "cancelled in Slurm (scancel)")
    if state in FINAL_REASONS:
        mapped, reason = FINAL_REASONS[state]
        return Status(mapped, code, reason)
    return (
        Status(JobState.RUNNING, None, f"Slurm state {state}")
        if state
        else Status(JobState.RUNNING)
    )


def final(state: str) -> bool:
    name = state.split()[0].rstrip("+") if state else ""
    return name not in QUEUED_STATES and name not in RUNNING_STATES


def parse_squeue(text: str) -> tuple[dict[str, SlurmRecord], bool]:
    body, _, tail = text.partition("@@rc ")
    body = body.replace("@@squeue\n", "", 1)
    rc = tail.strip().split()[0] if tail.strip() else "1"
    records: dict[str, SlurmRecord] = {}
    for line in body.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and SLURM_ID.match(parts[0]):
            records[parts[0]] = SlurmRecord(parts[1], None, parts[2])
    # "Invalid job id" only means squeue forgot every id asked for: ask sacct instead
    ok = rc == "0" or (not records and "Invalid job id" in body)
    return records, ok


_EXIT = re.compile(r"^(\d+):(\d+)$")


def parse_sacct(text: str) -> dict[str, SlurmRecord]:
    records: dict[str, SlurmRecord] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 3 or not SLURM_ID.match(parts[0]):  # skip steps (123.batch), blank lines
            continue
        match = _EXIT.match(parts[2].strip())
        code = int(match.group(1)) if match else None
        records[parts[0]] = SlurmRecord(parts[1], code)  # the last record wins (requeued jobs)
    return records
