"""A fan-out replaced by its members, once its matrix is known: the members take its place
(in order) and jobs that needed it need every member. Used by the runner (fan-outs whose
upstream is up to date, at planning) and by the engine (fan-outs expanded at launch)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from ccspec.spec.resolved import ResolvedJob, ResolvedWorkflow

__all__ = ["expand_jobs", "with_members"]


def expand_jobs(
    jobs: Mapping[str, ResolvedJob], job_id: str, members: Sequence[ResolvedJob]
) -> dict[str, ResolvedJob]:
    ids = [m.id for m in members]
    out: dict[str, ResolvedJob] = {}
    for key, job in jobs.items():
        if key == job_id:
            out.update((m.id, m) for m in members)
            continue
        if job_id in job.needs:
            needs = tuple(n for need in job.needs for n in (ids if need == job_id else [need]))
            job = replace(job, needs=needs)
        out[key] = job
    return out


def with_members(
    workflow: ResolvedWorkflow, job_id: str, members: Sequence[ResolvedJob]
) -> ResolvedWorkflow:
    groups = {**workflow.groups, workflow.jobs[job_id].name: tuple(m.id for m in members)}
    return replace(workflow, jobs=expand_jobs(workflow.jobs, job_id, members), groups=groups)
