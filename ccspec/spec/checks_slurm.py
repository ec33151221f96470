"""Checks of the Slurm-only job keys (`array:`) against the rest of the workflow: an array
holds the members of one matrix job, submitted to a Slurm host.

Called by `ccspec.spec.validate` after `resolve`; pure (no I/O).
"""

from __future__ import annotations

from ccspec.errors import Diagnostic
from ccspec.spec.models import SlurmHost
from ccspec.spec.resolved import ResolvedWorkflow
from ccspec.spec.source import Source
from ccspec.spec.templating import has_template

__all__ = ["check_arrays"]


def check_arrays(workflow: ResolvedWorkflow, source: Source) -> list[Diagnostic]:
    """One error per job whose `array:` cannot hold: no matrix, or a host that is not Slurm."""
    problems: list[Diagnostic] = []
    for name, job in workflow.spec.jobs.items():
        if job.array is None or job.array is False:
            continue
        where = ("jobs", name, "array")
        if job.matrix is None:
            problems.append(
                source.diagnostic(
                    where,
                    f"job {name!r} has `array` but no `matrix`: a job array holds the members "
                    "of one matrix job; add a `matrix`, or remove `array`",
                    "array-without-matrix",
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
                        f"job {name!r} has `array` but runs on host {host!r} ({shown}): job "
                        "arrays exist only on Slurm hosts; set `host:` to a host of type "
                        "slurm, or remove `array`",
                        "array-not-slurm",
                    )
                )
    return problems
