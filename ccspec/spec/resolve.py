"""Resolve a workflow into concrete jobs: at plan time all of it (`resolve`), at launch time
one job whose fields or matrix read the outputs of the jobs it needs (`resolve_at_launch`,
with `upstream_context` building what its templates see as `jobs`).

`resolve` is called by `ccspec.spec.validate` (and so by plan/apply); the launch-time pair by
the engine and the runner. The work is the resolver's (ccspec.spec.resolver). Resolving reads
no files itself: file checks live in `ccspec.spec.checks` (called here for jobs rendered at
launch).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ccspec.errors import Diagnostic
from ccspec.spec.checks import check_launch_files
from ccspec.spec.models import Workflow
from ccspec.spec.rendering import suggest
from ccspec.spec.resolved import ResolvedJob, ResolvedWorkflow
from ccspec.spec.resolver import PATH_FIELDS, UPSTREAM_FIELDS, Resolver, job_context
from ccspec.spec.source import Source

__all__ = [
    "UPSTREAM_FIELDS",
    "job_context",
    "resolve",
    "resolve_at_launch",
    "suggest",
    "upstream_context",
]


def resolve(
    source: Source,
    workflow: Workflow,
    *,
    name: str,
    vars: dict[str, Any],
    file: Path,
    invalid: frozenset[str] = frozenset(),
) -> tuple[ResolvedWorkflow, list[Diagnostic]]:
    """`invalid` names jobs and hosts that failed the shape check (already reported)."""
    return Resolver(source, workflow, name, vars, file, invalid).run()


def resolve_at_launch(
    workflow: ResolvedWorkflow, job: ResolvedJob, upstream: dict[str, Any]
) -> tuple[list[ResolvedJob], list[str]]:
    """Render a job again now that the jobs it needs have finished: fields that read
    `jobs.X.outputs`, and a matrix taken from an upstream output (one job per combination).

    Returns the concrete jobs and the problems (as messages) that stop them from launching,
    among them the file checks of `validate` (a path may lead outside the repository only now).
    """
    resolver = Resolver(
        workflow.source,
        workflow.spec,
        workflow.name,
        dict(workflow.vars),
        workflow.file,
        frozenset(),
    )
    resolver.upstream = upstream
    resolver.all_ids = set(workflow.jobs)
    resolver.default_host = job.host
    definition = workflow.spec.jobs[job.name]
    combos = (
        resolver.combinations(job.name, definition) if job.fanout_pending else [dict(job.matrix)]
    )
    groups = {**workflow.groups}
    jobs = [
        j
        for combo in combos
        if combo is not None
        if (j := resolver.concrete_job(job.name, definition, combo, groups)) is not None
    ]
    problems = [d.message for d in resolver.diagnostics.values()]
    if not problems and (job.fanout_pending or job.deferred & PATH_FIELDS):
        # paths rendered only now obey the rules validate applied to the others
        problems = [d.message for d in check_launch_files(workflow, jobs)]
    return jobs, problems


def upstream_context(
    workflow: ResolvedWorkflow, job: ResolvedJob, outputs: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """`jobs` as templates see it: `jobs.X.outputs` for every job X in `needs` (by name or id).

    For a matrix job, `jobs.train.outputs` is the list of its members' outputs in id order,
    and `jobs.train.by_id` maps each member id to its outputs."""
    definition = workflow.spec.jobs[job.name]
    out: dict[str, Any] = {}
    for entry in definition.needs:
        members = workflow.groups.get(entry)
        if members is not None and (len(members) != 1 or members[0] != entry):
            out[entry] = {
                "outputs": [outputs.get(m, {}) for m in members],
                "by_id": {m: outputs.get(m, {}) for m in members},
            }
        else:
            out[entry] = {"outputs": outputs.get(entry, {}), "id": entry}
    return out
