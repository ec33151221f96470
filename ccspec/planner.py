"""The planner: desired spec + recorded state -> what must run, and why. Pure: no I/O.

Called by `ccspec plan`, `ccspec apply` and the reconciler. A job runs when it never ran,
its fingerprint changed, its last attempt did not succeed, a job it needs runs in this plan
or ran again since this job's last success, or the user forces it (`--replace`). Each
planned job carries an `Action` and a `Reason` (a code and a detail) for people and tools;
the engine executes actions and never decides again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from ccspec.fingerprint import Fingerprint
from ccspec.spec.models import Resources
from ccspec.spec.resolved import ResolvedWorkflow
from ccspec.state.store import RecordedJob
from ccspec.states import ACTIVE, UNSUCCESSFUL, JobState

__all__ = ["RUN_ACTIONS", "Action", "Plan", "PlannedJob", "Reason", "make_plan"]


class Action(str, Enum):
    CREATE = "create"
    RERUN = "rerun"
    RETRY = "retry"
    ATTACH = "attach"  # an attempt from an earlier run is still out there: follow it
    UP_TO_DATE = "up_to_date"
    REMOVED = "removed"

    @property
    def symbol(self) -> str:
        return {
            "create": "+",
            "rerun": "~",
            "retry": "!",
            "attach": ">",
            "up_to_date": "=",
            "removed": "-",
        }[self.value]

    @property
    def words(self) -> str:
        return self.value.replace("_", " ")


RUN_ACTIONS = frozenset({Action.CREATE, Action.RERUN, Action.RETRY})


@dataclass(frozen=True)
class Reason:
    code: str  # machine-readable: never_ran, definition_changed, file_changed, ...
    detail: str  # for people: "script changed"

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True)
class PlannedJob:
    id: str
    name: str
    action: Action
    reason: Reason
    fingerprint: Fingerprint | None
    host: str | None
    dynamic: bool = False  # created on the fly when its upstream finishes
    array: int | None = None  # members per Slurm job array (`array:`)
    pack: int | None = None  # members per pack (`pack:`)
    resources: Resources | None = None  # a member's, for the resources of its pack
    timeout: float | None = None

    def line(self) -> str:
        return f"{self.action.symbol} {self.id}: {self.action.words} ({self.reason})"


@dataclass(frozen=True)
class Plan:
    workflow: str
    jobs: tuple[PlannedJob, ...]

    @property
    def to_run(self) -> list[PlannedJob]:
        return [j for j in self.jobs if j.action in RUN_ACTIONS]

    @property
    def is_empty(self) -> bool:
        """Nothing would run, attach or be removed."""
        return all(j.action is Action.UP_TO_DATE for j in self.jobs)

    def by_id(self) -> dict[str, PlannedJob]:
        return {j.id: j for j in self.jobs}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for j in self.jobs:
            out[j.action.value] = out.get(j.action.value, 0) + 1
        return out


_PART_REASONS = {
    "definition": ("definition_changed", "definition changed"),
    "file": ("file_changed", "{kind} changed"),
    "inputs": ("inputs_changed", "inputs changed"),
    "upstream": ("upstream_changed", "upstream changed"),
}


def make_plan(
    workflow: ResolvedWorkflow,
    fingerprints: Mapping[str, Fingerprint],
    recorded: Mapping[str, RecordedJob],
    *,
    replace: Iterable[str] = (),
    targets: Iterable[str] = (),
) -> Plan:
    replace_ids = _ids(workflow, replace)
    wanted = _with_ancestors(workflow, _ids(workflow, targets)) if targets else set(workflow.jobs)
    decided: dict[str, PlannedJob] = {}
    for job_id, job in workflow.jobs.items():  # topological order: parents are decided first
        if job_id not in wanted:
            continue
        rec = recorded.get(job_id)
        fp = fingerprints.get(job_id)
        action, reason = _decide(
            job_id, job.needs, job.script is not None, fp, rec, replace_ids, decided, recorded
        )
        if job.fanout_pending and action is not Action.UP_TO_DATE:
            reason = Reason(reason.code, f"{reason.detail}; jobs known after upstream")
        decided[job_id] = PlannedJob(
            job_id,
            job.name,
            action,
            reason,
            fp,
            job.host,
            dynamic=job.fanout_pending,
            array=job.array,
            pack=job.pack,
            resources=job.resources,
            timeout=job.timeout,
        )
    removed = []
    pending_groups = {j.name for j in workflow.jobs.values() if j.fanout_pending}
    for job_id, rec in sorted(recorded.items()):
        if job_id not in workflow.jobs and rec.name not in pending_groups and not targets:
            reason = (
                Reason(
                    "removed_running",
                    "no longer in the spec; still running: followed until it ends",
                )
                if rec.state in ACTIVE
                else Reason("not_in_spec", "no longer in the spec")
            )
            removed.append(PlannedJob(job_id, rec.name, Action.REMOVED, reason, None, None))
    return Plan(workflow.name, (*decided.values(), *removed))


def _decide(
    job_id: str,
    needs: tuple[str, ...],
    is_script: bool,
    fp: Fingerprint | None,
    rec: RecordedJob | None,
    replace: set[str],
    decided: Mapping[str, PlannedJob],
    recorded: Mapping[str, RecordedJob],
) -> tuple[Action, Reason]:
    if job_id in replace:
        return Action.RERUN, Reason("replaced", "forced with --replace")
    if rec is None or (
        rec.attempts == 0 and rec.success_seq is None and rec.state not in UNSUCCESSFUL
    ):
        return Action.CREATE, Reason("never_ran", "never ran")
    if rec.state in ACTIVE:
        if fp is not None and rec.fingerprint == fp.value:
            return Action.ATTACH, Reason("running", f"still {rec.state.value} from an earlier run")
        return Action.RERUN, Reason(
            "changed_while_running", "definition changed while it was running"
        )
    if rec.state in UNSUCCESSFUL:
        if (
            fp is not None
            and rec.fingerprint
            and rec.fingerprint != fp.value
            and rec.state is not JobState.SKIPPED
        ):
            return Action.RERUN, _changed(
                rec.parts, fp, is_script, f" since it {rec.state.value.replace('_', ' ')}"
            )
        detail = rec.state.value.replace("_", " ") + (f": {rec.reason}" if rec.reason else "")
        return Action.RETRY, Reason(f"last_{rec.state.value}", detail)
    if fp is not None and rec.success_fingerprint != fp.value:
        return Action.RERUN, _changed(rec.success_parts, fp, is_script)
    for parent in needs:
        planned = decided.get(parent)
        if planned is not None and planned.action in RUN_ACTIONS:
            return Action.RERUN, Reason("upstream_runs", f"{parent} will run")
    for parent in needs:
        prec = recorded.get(parent)
        if (
            prec is not None
            and prec.success_seq is not None
            and (rec.success_seq or 0) < prec.success_seq
        ):
            return Action.RERUN, Reason(
                "upstream_ran_again", f"{parent} ran again since this job succeeded"
            )
    return Action.UP_TO_DATE, Reason("up_to_date", "up to date")


def _changed(
    before: Mapping[str, str], fp: Fingerprint, is_script: bool, suffix: str = ""
) -> Reason:
    changed = [
        p for p in ("definition", "file", "inputs", "upstream") if before.get(p) != fp.parts.get(p)
    ]
    code, text = (
        _PART_REASONS[changed[0]] if changed else ("fingerprint_changed", "fingerprint changed")
    )
    return Reason(code, text.format(kind="script" if is_script else "notebook") + suffix)


def _ids(workflow: ResolvedWorkflow, names: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for name in names:
        out.update(workflow.groups.get(name, (name,) if name in workflow.jobs else ()))
    return out


def _with_ancestors(workflow: ResolvedWorkflow, ids: set[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(ids)
    while stack:
        job_id = stack.pop()
        if job_id in seen or job_id not in workflow.jobs:
            continue
        seen.add(job_id)
        stack.extend(workflow.jobs[job_id].needs)
    return seen
