"""The line `ccspec apply` ends each workflow with: its jobs counted by state, the wall time,
and where the status file and the picture of the DAG are.

    quickstart: 2 succeeded, 1 up to date in 3.2s; status specs/quickstart.status.yaml, graph specs/quickstart.svg

And the plan it starts each workflow with when it applies several at once (one alone gets
the same lines from ccspec.console, then its live table on a terminal):

    quickstart: 2 to run, 1 up to date
      + train: create (never ran)

Built from what the runner returns (the plan and the outcome's job views); called by
`ccspec.cli.cmd_apply`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by the command only: `ccspec --help` stays fast
    from ccspec.engine import Outcome
    from ccspec.planner import Plan

__all__ = ["apply_summary", "state_counts"]

# the order states are named in: how the run went first, then what did not run
_ORDER = (
    "succeeded",
    "up to date",
    "failed",
    "timed_out",
    "lost",
    "cancelled",
    "skipped",
    "running",
    "launching",
    "queued",
    "pending",
)


def state_counts(plan: Plan, outcome: Outcome) -> dict[str, int]:
    """Jobs by final state; a job the plan found up to date counts as "up to date", not as
    the "succeeded" its view shows. A run with nothing to do returns no views: every job of
    the plan is then up to date."""
    untouched = {j.id for j in plan.jobs if j.action.value == "up_to_date"}
    counts: dict[str, int] = {}
    if not outcome.views:
        states = ["up to date" for _ in plan.jobs]
    else:
        states = [
            "up to date" if job_id in untouched else view.state.value
            for job_id, view in outcome.views.items()
        ]
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    rank = {s: i for i, s in enumerate(_ORDER)}
    return dict(sorted(counts.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def apply_summary(plan: Plan, outcome: Outcome, spec: Path, seconds: float) -> str:
    """One line: counts by state, wall time, and the status file and picture beside `spec`
    (those that exist)."""
    counts = state_counts(plan, outcome)
    said = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in counts.items()) or "no jobs"
    if outcome.interrupted:
        said += " (interrupted)"
    files = [
        f"{what} {_shown(spec.parent / f'{plan.workflow}{suffix}')}"
        for what, suffix in (("status", ".status.yaml"), ("graph", ".svg"))
        if (spec.parent / f"{plan.workflow}{suffix}").exists()
    ]
    return f"{plan.workflow}: {said} in {seconds:.1f}s" + (f"; {', '.join(files)}" if files else "")


def _shown(path: Path) -> str:
    """Relative to the current folder when it is under it, as the user named the spec."""
    try:
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
    except ValueError:  # another drive (Windows)
        return str(path)
