"""What the targets say, as the scheduler's events: a local process's exit (through its pidfd),
a remote host's answers (its worker thread posts them). The views reporters read are updated
on the way. Called by Engine.observed (ccspec.engine) once per pass of its loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ccspec import scheduler_types as ev
from ccspec.planner import Action
from ccspec.states import FINAL, JobState
from ccspec.targets.base import (
    LaunchAnswered,
    Status,
    StatusChanged,
    StatusUnknown,
    Submitted,
    TargetEvent,
)
from ccspec.targets.local import exit_time, lost_reason

if TYPE_CHECKING:
    from ccspec.engine import Engine, Run

__all__ = ["LocalExit", "Observed", "translate"]

UNKNOWN = "state unknown: "  # the message of a job whose host could not be asked


@dataclass(frozen=True)
class LocalExit:
    handle: str
    code: int | None


Observed = ev.Event | LocalExit | TargetEvent


def translate(engine: Engine, item: Observed) -> list[ev.Event]:
    match item:
        case LocalExit(handle, code):
            run = engine.by_handle.pop(handle, None)
            if run is None or engine.runs.get(run.job) is not run:
                return []
            return [exited(engine, run, code)]
        case LaunchAnswered(result):
            return submitted(engine, result)
        case StatusChanged(attempt_id, status):
            return remote_status(engine, attempt_id, status)
        case StatusUnknown(attempt_ids, reason):
            unknown(engine, attempt_ids, reason)
            return []
        case _:
            return [item]


def unknown(engine: Engine, attempt_ids: tuple[int, ...], reason: str) -> None:
    """The host could not be asked: its jobs' views say so until it answers again."""
    for attempt_id in attempt_ids:
        run = engine.by_attempt.get(attempt_id)
        view = engine.views.get(run.job) if run is not None else None
        if view is not None and view.message != f"{UNKNOWN}{reason}":
            view.message = f"{UNKNOWN}{reason}"
            engine.report("unknown", view)


def exited(engine: Engine, run: Run, code: int | None) -> ev.Event:
    ended = exit_time(run.run_dir) if run.run_dir is not None else None  # before a long read
    engine.mine(run, final=True)
    if code is None:
        # not our child, and its wrapper wrote no exit code: killed by KILL, or a full folder
        state, reason = JobState.LOST, lost_reason(run.run_dir)
    elif code == 0:
        state, reason = JobState.SUCCEEDED, None
    else:
        state = JobState.FAILED
        reason = f"exit code {code}" if code > 0 else f"killed by signal {-code}"
    return ev.Ended(run.job, run.number, state, code, reason, ended)


def submitted(engine: Engine, result: Submitted) -> list[ev.Event]:
    run = engine.by_attempt.get(result.attempt_id)
    view = engine.views.get(run.job) if run is not None else None
    if run is None or view is None or engine.runs.get(run.job) is not run:
        return []
    if result.handle is None:
        engine.by_attempt.pop(result.attempt_id, None)
        reason = result.error or "the host refused the job"
        return [ev.LaunchRefused(run.job, run.number, reason, result.temporary)]
    queues = engine.hosts().queues(view.host)
    run.handle = view.handle = result.handle
    view.started = engine.clock.time()
    view.state = JobState.QUEUED if queues else JobState.RUNNING
    engine.store.set_handle(
        result.attempt_id,
        result.handle,
        state=view.state,
        started=view.started,
        workflow=engine.workflow.name,
        job=view.id,
    )
    engine.report("queued" if queues else "started", view)
    return [ev.LaunchAccepted(run.job, run.number, queued=queues)]


def remote_status(engine: Engine, attempt_id: int, status: Status) -> list[ev.Event]:
    run = engine.by_attempt.get(attempt_id)
    view = engine.views.get(run.job) if run is not None else None
    if run is None or view is None or engine.runs.get(run.job) is not run:
        return []
    handle = status.extra.get("handle") if status.extra else None
    if handle and handle != view.handle:  # found in the run folder after a restart
        run.handle = view.handle = handle
        engine.store.set_handle(attempt_id, handle, state=view.state, started=view.started)
    if status.state in FINAL:
        engine.by_attempt.pop(attempt_id, None)
        engine.mine(run, final=True)
        return [
            ev.Ended(
                run.job,
                run.number,
                status.state,
                status.exit_code,
                status.reason,
                status.finished,
            )
        ]
    reachable_again = bool(view.message and view.message.startswith(UNKNOWN))
    if reachable_again:
        view.message = None
    removed = view.action is Action.REMOVED  # its reason says so, whatever the host's is
    if status.state is view.state and (removed or status.reason == view.reason):
        if reachable_again:
            engine.report("progress", view)
        return []
    if status.state is JobState.RUNNING and view.state is JobState.QUEUED:
        view.started = engine.clock.time()
        engine.store.set_handle(
            attempt_id,
            view.handle or "",
            state=JobState.RUNNING,
            started=view.started,
            workflow=engine.workflow.name,
            job=view.id,
        )
    view.state = status.state
    if not engine.scheduler.killing(view.id) and not removed:
        view.reason = status.reason
    engine.report(status.state.value, view)
    return [ev.StateSeen(run.job, run.number, status.state)]
