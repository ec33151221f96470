"""What the targets say, as the scheduler's events. Every target speaks the same typed events
(ccspec.targets.base): LaunchAnswered (this machine's answers to a batch, a remote host's
through its worker thread), StatusChanged (a local child's exit with the final Status this
machine's target computed, a remote host's polls, a re-attached local attempt found ended)
and StatusUnknown. The views reporters read are updated on the way. Called by
Engine.observed and Engine.submit (ccspec.engine) once per pass of its loop."""

from __future__ import annotations

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

if TYPE_CHECKING:
    from ccspec.engine import Engine

__all__ = ["Observed", "status_changed", "submitted", "translate"]

UNKNOWN = "state unknown: "  # the message of a job whose host could not be asked


Observed = ev.Event | TargetEvent


def translate(engine: Engine, item: Observed) -> list[ev.Event]:
    match item:
        case LaunchAnswered(result):
            return submitted(engine, result)
        case StatusChanged(attempt_id, status):
            return status_changed(engine, attempt_id, status)
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


def submitted(engine: Engine, result: Submitted) -> list[ev.Event]:
    run = engine.by_attempt.get(result.attempt_id)
    view = engine.views.get(run.job) if run is not None else None
    if run is None or view is None or engine.runs.get(run.job) is not run:
        return []
    if result.handle is None:
        engine.by_attempt.pop(result.attempt_id, None)
        reason = result.error or "the host refused the job"
        return [ev.LaunchRefused(run.job, run.number, reason, result.temporary)]
    queues = run.remote and engine.hosts().queues(view.host)
    run.handle = view.handle = result.handle
    view.started = engine.clock.time()  # the same instant in views and records
    view.state = JobState.QUEUED if queues else JobState.RUNNING
    engine.store.set_handle(
        result.attempt_id,
        result.handle,
        state=view.state,
        started=view.started,
        workflow=engine.workflow.name,
        job=view.id,
        soon=not run.remote,  # a local pid is found again in its run folder
    )
    engine.report("queued" if queues else "started", view)
    return [ev.LaunchAccepted(run.job, run.number, queued=queues)]


def status_changed(engine: Engine, attempt_id: int, status: Status) -> list[ev.Event]:
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
        run.usage = status.usage
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
