"""The planner is pure: spec + recorded state in, actions with reasons out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ccspec.fingerprint import Facts, fingerprints
from ccspec.planner import make_plan
from ccspec.spec.resolved import ResolvedWorkflow
from ccspec.state.store import RecordedJob
from ccspec.states import JobState
from tests.conftest import SpecWriter

SPEC = """
    version: 1
    vars: {n: 1}
    jobs:
      a: {run: "echo {{ vars.n }}"}
      b: {run: echo b, needs: [a], resources: {mem: 1G}}
      c: {run: echo c, needs: [b]}
      d: {run: echo d}
"""


def recorded_ok(
    workflow: ResolvedWorkflow, seq_base: int = 1, **overrides: Any
) -> dict[str, RecordedJob]:
    fps = fingerprints(workflow, Facts())
    out = {}
    for i, (job_id, fp) in enumerate(fps.items()):
        out[job_id] = RecordedJob(
            workflow.name,
            job_id,
            job_id,
            JobState.SUCCEEDED,
            None,
            fp.value,
            fp.parts,
            fp.value,
            fp.parts,
            seq_base + i,
            {},
            1,
            seq_base + i,
            0.0,
        )
    for job_id, changes in overrides.items():
        out[job_id] = _with(out[job_id], changes)
    return out


def _with(rec: RecordedJob, changes: Mapping[str, Any]) -> RecordedJob:
    from dataclasses import replace

    return replace(rec, **changes)


def actions(
    workflow: ResolvedWorkflow, recorded: Mapping[str, RecordedJob], **kw: Any
) -> dict[str, tuple[str, str]]:
    plan = make_plan(workflow, fingerprints(workflow, Facts()), recorded, **kw)
    return {j.id: (j.action.value, j.reason.code) for j in plan.jobs}


@pytest.fixture
def wf(check: SpecWriter) -> ResolvedWorkflow:
    report = check(SPEC)
    assert report.workflow is not None
    return report.workflow


def test_never_ran(wf: ResolvedWorkflow) -> None:
    assert set(actions(wf, {}).values()) == {("create", "never_ran")}


def test_nothing_changed_is_empty(wf: ResolvedWorkflow) -> None:
    plan = make_plan(wf, fingerprints(wf, Facts()), recorded_ok(wf))
    assert plan.is_empty and not plan.to_run


def test_changed_var_reruns_the_job_and_its_descendants_only(
    wf: ResolvedWorkflow, check: SpecWriter
) -> None:
    old = recorded_ok(wf)
    new = check(SPEC, n=2).workflow
    assert new is not None
    assert actions(new, old) == {
        "a": ("rerun", "definition_changed"),
        "b": ("rerun", "upstream_changed"),
        "c": ("rerun", "upstream_changed"),
        "d": ("up_to_date", "up_to_date"),
    }


def test_scheduler_settings_are_not_part_of_the_fingerprint(
    wf: ResolvedWorkflow, check: SpecWriter
) -> None:
    old = recorded_ok(wf)
    edited = SPEC.replace(
        "resources: {mem: 1G}}", "resources: {mem: 64G, cpus: 8}, timeout: 1h, retries: 3}"
    )
    assert edited != SPEC
    bigger = check(edited).workflow
    assert bigger is not None
    assert all(a == "up_to_date" for a, _ in actions(bigger, old).values())


def test_failed_job_is_retried_and_descendants_follow(wf: ResolvedWorkflow) -> None:
    rec = recorded_ok(
        wf, b={"state": JobState.FAILED, "reason": "exit code 1"}, c={"state": JobState.SKIPPED}
    )
    got = actions(wf, rec)
    assert got["b"] == ("retry", "last_failed") and got["c"] == ("retry", "last_skipped")
    assert got["a"] == ("up_to_date", "up_to_date")


def test_upstream_ran_again_since_last_success(wf: ResolvedWorkflow) -> None:
    rec = recorded_ok(wf)
    rec["a"] = _with(rec["a"], {"success_seq": 100})  # a succeeded again after b and c did
    got = actions(wf, rec)
    assert got["b"] == ("rerun", "upstream_ran_again") and got["c"] == ("rerun", "upstream_runs")


def test_replace_and_target(wf: ResolvedWorkflow) -> None:
    rec = recorded_ok(wf)
    assert actions(wf, rec, replace=["b"])["b"] == ("rerun", "replaced")
    assert actions(wf, rec, replace=["b"])["c"] == ("rerun", "upstream_runs")
    targeted = actions(wf, {}, targets=["b"])
    assert set(targeted) == {"a", "b"}


def test_running_attempt_is_attached_not_relaunched(wf: ResolvedWorkflow) -> None:
    rec = recorded_ok(wf, d={"state": JobState.RUNNING})
    assert actions(wf, rec)["d"] == ("attach", "running")


def test_removed_jobs(wf: ResolvedWorkflow) -> None:
    rec = recorded_ok(wf)
    rec["old"] = _with(rec["d"], {"id": "old", "name": "old"})
    assert actions(wf, rec)["old"] == ("removed", "not_in_spec")
