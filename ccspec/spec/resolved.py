"""A validated workflow, expanded: concrete jobs with templates rendered and defaults applied.

Produced by `ccspec.spec.resolve`, consumed by the planner, the engine and the graph/status
writers. Inert data: nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccspec.spec.models import Host, Job, Resources, Workflow

__all__ = ["ResolvedJob", "ResolvedWorkflow"]


@dataclass(frozen=True, slots=True)
class ResolvedJob:
    """One concrete job. Fields listed in `deferred` still hold their template text: they
    use upstream outputs and are rendered when those jobs finish."""

    id: str
    name: str  # the key under `jobs:`; equals `id` unless the job has a matrix
    kind: str  # run | script | notebook
    host: str
    matrix: Mapping[str, Any] = field(default_factory=dict)
    run: str | None = None
    shell: str | None = None
    script: str | None = None  # relative to the spec's folder
    args: tuple[Any, ...] = ()
    interpreter: str | None = None
    notebook: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    kernel: str | None = None
    needs: tuple[str, ...] = ()  # ids
    inputs: tuple[str, ...] = ()
    env: Mapping[str, Any] = field(default_factory=dict)
    workdir: str | None = None
    resources: Resources = field(default_factory=Resources)
    retries: int = 0
    timeout: float | None = None
    array: int | None = None  # members per Slurm job array (`array:`); None: one sbatch each
    pack: int | None = None  # members per pack, one Slurm job (`pack:`)
    deferred: frozenset[str] = frozenset()  # fields that wait for upstream outputs
    upstream: frozenset[str] = frozenset()  # job names/ids whose outputs the templates read
    fanout_pending: bool = False  # the matrix itself comes from an upstream output


@dataclass(frozen=True)
class ResolvedWorkflow:
    name: str
    file: Path  # the spec file
    base_dir: Path  # relative paths in the spec resolve against this folder
    spec: Workflow
    vars: Mapping[str, Any]
    jobs: Mapping[str, ResolvedJob]  # by id, in a topological order
    hosts: Mapping[str, Host]
    groups: Mapping[str, tuple[str, ...]]  # job name -> ids of its expansions
    # the parsed file, for rendering at launch
    source: Any = field(default=None, compare=False, repr=False)

    def job_definition(self, job: ResolvedJob) -> Job:
        return self.spec.jobs[job.name]
