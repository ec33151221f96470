"""Which members of a matrix job go to Slurm together, as `ccspec plan` shows them: job
arrays (`array:`) and packs (`pack:`), with what a pack asks of Slurm. Called by
`ccspec.cli.plan_out`.

Members ready together are sent together, so the plan's chunks (in plan order, at most the
key's size each) are the batches of a run where every member is ready at once. A chunk of
one member is an ordinary Slurm job. A pack's resources follow Snakemake's rule for job
groups: with L members at once, L times a member's CPUs and memory (the sum over what runs
in parallel) and ceil(n / L) times its time (members of one lane run in series); L is the
most members a node's CPUs hold, at most n, known when the pack is submitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccspec.planner import Plan, PlannedJob

__all__ = ["Batch", "batch_line", "plan_batches"]


@dataclass(frozen=True)
class Batch:
    kind: str  # array | pack
    job: str  # the matrix job's name
    number: int  # 1, 2, ... among the job's batches
    members: tuple[str, ...]
    asks: str = ""  # a pack's resources, for people


def plan_batches(plan: Plan) -> list[Batch]:
    """The arrays and packs the plan's members to run go in, job by job."""
    chosen: dict[str, list[PlannedJob]] = {}
    for job in plan.to_run:
        if job.array or job.pack:
            chosen.setdefault(job.name, []).append(job)
    out: list[Batch] = []
    for name, jobs in chosen.items():
        first = jobs[0]
        size = first.pack or first.array or len(jobs)
        kind = "pack" if first.pack else "array"
        for number, start in enumerate(range(0, len(jobs), size), 1):
            ids = tuple(j.id for j in jobs[start : start + size])
            asks = _pack_asks(first, len(ids)) if kind == "pack" and len(ids) > 1 else ""
            out.append(Batch(kind, name, number, ids, asks))
    return out


def _pack_asks(job: PlannedJob, n: int) -> str:
    res = job.resources
    cpus = res.cpus if res and res.cpus else 1
    parts = [f"L x {cpus} CPUs"]
    if res and res.mem:
        parts.append(f"L x {res.mem}M memory")
    limit = (res.time if res and res.time else None) or job.timeout
    if limit:
        parts.append(f"ceil({n}/L) x {limit:g}s time")
    return f"L = min({n}, a node's CPUs / {cpus}) at once; asks " + ", ".join(parts)


def batch_line(batch: Batch) -> str:
    """`sbatch --array sweep #1: sweep-1, sweep-2` or `sbatch pack sweep #1: ... (asks)`."""
    if len(batch.members) == 1:
        return f"sbatch {batch.members[0]}: alone, a plain Slurm job"
    members = ", ".join(batch.members)
    if batch.kind == "array":
        return f"sbatch --array {batch.job} #{batch.number}: {members}"
    return f"sbatch pack {batch.job} #{batch.number}: {members} ({batch.asks})"
