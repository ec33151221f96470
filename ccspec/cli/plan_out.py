"""How `ccspec plan` shows a plan: `plan_text` for people, `plan_document` for `--json`.

A job a matrix creates at run time (from an upstream output) whose `host:` is a template
cannot name its host before the upstream has run: like Terraform's "(known after apply)", its
`host` is null and `known_after_apply` lists "host"; the template itself is not a host.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by the command only: `ccspec --help` stays fast
    from ccspec.planner import Plan, PlannedJob

__all__ = ["job_line", "plan_document", "plan_text"]


def plan_text(plan: Plan) -> str:
    """The workflow's counts, then one line a job, then the Slurm arrays and packs."""
    from ccspec.cli.plan_batches import batch_line, plan_batches

    counts = ", ".join(f"{n} {a.replace('_', ' ')}" for a, n in plan.counts().items())
    return "\n".join(
        [
            f"{plan.workflow}: {counts}",
            *(f"  {job_line(j)}" for j in plan.jobs),
            *(f"  {batch_line(b)}" for b in plan_batches(plan)),
        ]
    )


def job_line(job: PlannedJob) -> str:
    """`~ train: rerun (script changed)`; the reason is left out where it only repeats the
    action (`= prepare: up to date`)."""
    words = job.action.words
    reason = str(job.reason)
    return f"{job.action.symbol} {job.id}: {words}" + ("" if reason == words else f" ({reason})")


def plan_document(plan: Plan) -> dict[str, object]:
    """The plan of one workflow as `plan --json` prints it."""
    from ccspec.cli.plan_batches import plan_batches

    return {
        "name": plan.workflow,
        "counts": plan.counts(),
        "jobs": [_job_document(j) for j in plan.jobs],
        "batches": [
            {"kind": b.kind, "job": b.job, "members": list(b.members), "asks": b.asks}
            for b in plan_batches(plan)
        ],
    }


def _job_document(job: PlannedJob) -> dict[str, object]:
    unknown = job.dynamic and job.host is not None and ("{{" in job.host or "{%" in job.host)
    return {
        "id": job.id,
        "name": job.name,
        "action": job.action.value,
        "reason_code": job.reason.code,
        "reason": job.reason.detail,
        "host": None if unknown else job.host,
        "known_after_apply": ["host"] if unknown else [],
        "dynamic": job.dynamic,
        "fingerprint": job.fingerprint.value if job.fingerprint else None,
    }
