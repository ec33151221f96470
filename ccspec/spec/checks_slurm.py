"""Checks of the Slurm-only job keys (`array:`, `pack:`) against the rest of the workflow:
an array or a pack holds members of one matrix job, submitted to a Slurm host, and a job
uses one of the two.

Called by `ccspec.spec.validate` after `resolve`; pure (no I/O).
"""

from __future__ import annotations

from ccspec.errors import Diagnostic
from ccspec.spec.models import Job, SlurmHost
from ccspec.spec.resolved import ResolvedWorkflow
from ccspec.spec.source import Source
from ccspec.spec.templating import has_template

__all__ = ["check_arrays"]

_WHAT = {"array": "a job array", "pack": "a pack"}


def _keys(job: Job) -> list[str]:
    found = []
    if job.array is not None and job.array is not False:
        found.append("array")
    if job.pack is not None:
        found.append("pack")
    return found


def check_arrays(workflow: ResolvedWorkflow, source: Source) -> list[Diagnostic]:
    """One error per job whose `array:` or `pack:` cannot hold: no matrix, a host that is
    not Slurm, or both keys at once."""
    problems: list[Diagnostic] = []
    for name, job in workflow.spec.jobs.items():
        keys = _keys(job)
        if not keys:
            continue
        key = keys[-1]
        where = ("jobs", name, key)
        if len(keys) == 2:
            problems.append(
                source.diagnostic(
                    where,
                    f"job {name!r} has both `array` and `pack`: its members go to Slurm either "
                    "as a job array or packed into shared jobs; keep one of the two",
                    "array-and-pack",
                )
            )
            continue
        if job.matrix is None:
            problems.append(
                source.diagnostic(
                    where,
                    f"job {name!r} has `{key}` but no `matrix`: {_WHAT[key]} holds the members "
                    f"of one matrix job; add a `matrix`, or remove `{key}`",
                    f"{key}-without-matrix",
                )
            )
            continue
        hosts = {j.host for j in workflow.jobs.values() if j.name == name}
        for host in sorted(h for h in hosts if not has_template(h)):
            kind = workflow.hosts.get(host)
            if not isinstance(kind, SlurmHost):
                shown = kind.type if kind is not None else "local"
                problems.append(
                    source.diagnostic(
                        where,
                        f"job {name!r} has `{key}` but runs on host {host!r} ({shown}): "
                        f"`{key}` works only on Slurm hosts; set `host:` to a host of type "
                        f"slurm, or remove `{key}`",
                        f"{key}-not-slurm",
                    )
                )
    return problems
