"""What the engine reports: a JobView per job (read by the console, the status writer and the
reconciler while the run goes on) and the Outcome of a run."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccspec.planner import Action, Plan
from ccspec.spec.resolved import ResolvedJob
from ccspec.state.store import Attempt, LeaseLost, RecordedJob
from ccspec.states import JobState
from ccspec.usage import Usage

__all__ = ["JobView", "Outcome", "OutputsOf", "initial_views"]


@dataclass
class JobView:
    """What the engine knows of one job now; reporters read these."""

    id: str
    name: str
    host: str
    state: JobState
    action: Action
    reason: str | None = None
    attempt: int = 0  # the number of its latest recorded attempt
    attempt_id: int | None = None
    handle: str | None = None
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    progress: float | None = None
    message: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None
    log_path: Path | None = None
    usage: Usage | None = None  # of the latest attempt, once it ended (ccspec.usage)
    usage_warning: str | None = None


@dataclass(frozen=True)
class Outcome:
    views: dict[str, JobView]
    interrupted: bool
    lost: LeaseLost | None = None  # another apply took the workflow over mid-run

    @property
    def failed(self) -> list[JobView]:
        bad = (JobState.FAILED, JobState.TIMED_OUT, JobState.LOST)
        return [v for v in self.views.values() if v.state in bad]

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(
            v.state is JobState.SUCCEEDED for v in self.views.values()
        )


def initial_views(
    plan: Plan,
    jobs: Mapping[str, ResolvedJob],
    recorded: Mapping[str, RecordedJob],
    last: Mapping[str, Attempt],
) -> dict[str, JobView]:
    """A view per planned job; an up-to-date one shows what its last (successful) run did."""
    views: dict[str, JobView] = {}
    for planned in plan.jobs:
        if planned.action is Action.REMOVED or planned.id not in jobs:
            continue
        job = jobs[planned.id]
        rec = recorded.get(planned.id)
        done = planned.action is Action.UP_TO_DATE
        view = JobView(
            planned.id,
            job.name,
            job.host,
            JobState.SUCCEEDED if done else JobState.PENDING,
            planned.action,
            reason=None if done else str(planned.reason),
            fingerprint=planned.fingerprint.value if planned.fingerprint else None,
            attempt=rec.attempts if rec else 0,
        )
        if done and rec is not None:
            view.outputs = dict(rec.outputs)  # as stored: secrets masked
            attempt = last.get(planned.id)
            if attempt is not None and attempt.state is JobState.SUCCEEDED:
                view.started, view.finished = attempt.started, attempt.finished
                view.exit_code, view.progress = attempt.exit_code, attempt.progress
                view.message, view.host = attempt.message, attempt.host
                view.usage, view.usage_warning = attempt.usage, attempt.usage_warning
        views[planned.id] = view
    return views


class OutputsOf(Mapping[str, Any]):
    """Outputs of jobs by id, read from the views on demand (no copy per launch)."""

    def __init__(self, views: dict[str, JobView]) -> None:
        self._views = views

    def __getitem__(self, key: str) -> Any:
        return self._views[key].outputs

    def __iter__(self) -> Iterator[str]:
        return iter(self._views)

    def __len__(self) -> int:
        return len(self._views)
