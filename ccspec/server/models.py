"""Response and request models of the status API: what `/docs` and `/openapi.json` document.

Built by `ccspec.server.reader` from the state store and the spec files; serialised once per
change of the store and cached as bytes. Fields that have no value are left out of the JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ccspec.spec.models import NAME_PATTERN
from ccspec.states import JobState

__all__ = [
    "JOB_PATTERN",
    "AddJob",
    "AddNeed",
    "AttemptInfo",
    "ErrorBody",
    "EventInfo",
    "Health",
    "JobDetail",
    "JobInfo",
    "Phase",
    "Problem",
    "ResourceUsage",
    "WorkflowDetail",
    "WorkflowHead",
    "WorkflowList",
    "WorkflowSummary",
    "Written",
]

# A job id is a job name, plus one slug per matrix value for a fan-out's members (`train-cnn`).
JOB_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,199}$"

Phase = Literal["pending", "running", "succeeded", "failed", "invalid"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(_Model):
    """One problem, as `ccspec validate` reports it (`text` is its output line)."""

    text: str = Field(
        ..., description="file:line:col: message [code], as printed by `ccspec validate`"
    )
    message: str
    code: str = Field(
        ...,
        description="e.g. unknown-key, unknown-need, dependency-cycle; `request` for a bad request",
    )
    file: str | None = None
    line: int | None = None
    col: int | None = None
    severity: str = "error"


class ErrorBody(_Model):
    """Every error response: a sentence, and for 422 each problem found."""

    detail: str
    problems: list[Problem] = Field(default_factory=list)


class WorkflowSummary(_Model):
    name: str = Field(..., description="The workflow's name")
    phase: Phase = Field(
        ..., description="pending | running | succeeded | failed | invalid (the spec has errors)"
    )
    counts: dict[str, int] = Field(..., description="Recorded jobs by state")
    total: int = Field(..., description="Recorded jobs")
    description: str | None = None
    spec: str | None = Field(
        None, description="The spec file (as last applied, else found under the specs folder)"
    )
    applied: bool = Field(..., description="The workflow has records in the state store")
    updated: datetime | None = Field(None, description="When a job of it last changed")
    last_event: int = Field(0, description="Id of its newest event (see /api/events)")
    errors: list[str] = Field(
        default_factory=list, description="Problems of the spec file as it is now"
    )


class WorkflowList(_Model):
    workflows: list[WorkflowSummary]


class ResourceUsage(_Model):
    """What an attempt used, as its wrapper (or sacct) measured it."""

    wall: float | None = Field(None, description="Wall time, seconds")
    cpu: float | None = Field(
        None, description="CPU time (user + system) of its processes, seconds"
    )
    max_rss: int | None = Field(None, description="Peak memory (largest RSS of one process), bytes")
    warning: str | None = Field(
        None,
        description="Set when it used far less or far more than its `resources` asked "
        "(peak memory under 10% or over 100% of `mem`; CPU time / wall time under 25% or "
        "over 150% of `cpus`, for attempts of 10 s or more)",
    )


class JobInfo(_Model):
    id: str = Field(..., description="Job id (a matrix member's id carries its values: train-cnn)")
    name: str = Field(..., description="The key under `jobs:` in the spec")
    state: JobState
    reason: str | None = Field(None, description="Why it is in this state (failed, skipped...)")
    host: str | None = None
    attempt: int = Field(0, description="Attempts ever launched")
    fingerprint: str | None = Field(None, description="Fingerprint of the last launch")
    started: datetime | None = None
    finished: datetime | None = None
    seconds: float | None = Field(None, description="Run time so far, or of the finished attempt")
    exit_code: int | None = None
    progress: float | None = Field(
        None, ge=0, le=100, description="Percent, from `# ccspec progress=N` lines"
    )
    message: str | None = None
    outputs: dict[str, Any] = Field(
        default_factory=dict, description="From `# ccspec output k=v` lines (secrets masked)"
    )
    needs: list[str] = Field(default_factory=list, description="Jobs it needs, from the spec")
    updated: datetime | None = None
    usage: ResourceUsage | None = Field(None, description="What the last attempt used")


class WorkflowHead(WorkflowSummary):
    vars: dict[str, Any] = Field(
        default_factory=dict, description="The spec's vars; secret ones show ***"
    )


class WorkflowDetail(WorkflowHead):
    jobs: list[JobInfo] = Field(..., description="Every recorded job, in the spec's order")
    planned: list[str] = Field(
        default_factory=list, description="Jobs in the spec that never ran (not yet recorded)"
    )


class AttemptInfo(_Model):
    number: int
    host: str
    state: JobState
    handle: str | None = Field(None, description="pid, Slurm job id...")
    reason: str | None = None
    exit_code: int | None = None
    fingerprint: str | None = None
    created: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    progress: float | None = None
    message: str | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    usage: ResourceUsage | None = Field(None, description="What the attempt used")
    log: str = Field(..., description="URL of this attempt's log")


class JobDetail(JobInfo):
    workflow: str
    succeeded_fingerprint: str | None = Field(
        None,
        description="Fingerprint of the last success: the job is up "
        "to date while it equals the fingerprint the spec gives it now",
    )
    fingerprint_parts: dict[str, str] = Field(
        default_factory=dict, description="What the fingerprint hashes, part by part"
    )
    attempts: list[AttemptInfo] = Field(
        default_factory=list, description="Every attempt, oldest first"
    )
    log: str | None = Field(None, description="URL of the last attempt's log")


class EventInfo(_Model):
    """One change of the recorded state (the `data:` of a server-sent event)."""

    id: int | None = Field(
        None, description="Event id (none for progress ticks, which are not stored)"
    )
    time: datetime
    workflow: str
    kind: str = Field(
        ..., description="state, launching, running, succeeded, failed, removed, progress..."
    )
    job: str | None = None
    attempt_id: int | None = Field(
        None, description="The attempt's id in the state store (not its number)"
    )
    state: JobState | None = Field(None, description="The job's state after this event")
    progress: float | None = None
    message: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class Health(_Model):
    status: Literal["ok"]
    version: str
    writable: bool = Field(..., description="Write endpoints are enabled (--allow-write)")


class AddJob(_Model):
    """A job to add: its name and its fields, as written under `jobs:` in a spec."""

    name: str = Field(..., pattern=NAME_PATTERN, description="Job name")
    job: dict[str, Any] = Field(
        ...,
        description="The job's fields (run/script/notebook, needs, ...); see /api/schema",
        json_schema_extra={"example": {"run": "python plot.py", "needs": ["summarise"]}},
    )


class AddNeed(_Model):
    """A dependency to add: `job` needs `needs`."""

    job: str = Field(..., pattern=NAME_PATTERN)
    needs: str = Field(..., pattern=NAME_PATTERN)


class Written(_Model):
    """What a write changed."""

    workflow: str
    spec: str = Field(..., description="The spec file written, relative to the specs folder")
    created: bool = Field(False, description="The file is new")
