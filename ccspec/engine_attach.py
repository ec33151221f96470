"""Re-attach: attempts an earlier (killed) runner left are followed, never launched twice.
Each one becomes the scheduler's events (Attached, and Ended when it is over already), the
same path a launch's outcome takes, for local and remote hosts alike. Called once by
Engine.run (ccspec.engine) before anything launches."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ccspec import scheduler_types as ev
from ccspec.engine_views import JobView
from ccspec.planner import Action
from ccspec.progress import LogMiner
from ccspec.state.store import Attempt
from ccspec.states import FINAL, JobState
from ccspec.targets.base import Status, Tracked, launched_at

if TYPE_CHECKING:
    from ccspec.engine import Engine

__all__ = ["NEVER_REACHED", "REMOVED_RUNNING", "attach"]

REMOVED_RUNNING = "removed from the spec; still running"  # followed until it ends, then forgotten
NEVER_REACHED = "never started: the runner stopped before the launch reached the host"
NEVER_STARTED = "the launch was recorded but the job never started"


def attach(engine: Engine) -> list[ev.Event]:
    active = engine.store.active_attempts(engine.workflow.name)
    fenced = _never_reached(engine, active)
    unstarted = _never_started_here(engine, active)
    events: list[ev.Event] = []
    for attempt in active:
        view = engine.views.get(attempt.job)
        host = engine.workflow.hosts.get(attempt.host)
        if attempt.id in fenced:  # it never reached its host, and now never will: launched again
            _never_started(engine, attempt, view, NEVER_REACHED)
        elif host is not None and host.type != "local":
            engine.kept.add(attempt.job)  # not forgotten before its end is recorded
            if view is None and attempt.run_dir and attempt.log_path:
                view = _removed_view(engine, attempt)
            if view is not None and attempt.run_dir and attempt.log_path:
                events += _follow(engine, attempt, view, attempt.handle, None)
        elif view is None and host is None and attempt.host != "local":
            engine.kept.add(attempt.job)  # on a host the spec no longer names: nobody can ask it
        elif attempt.id in unstarted:
            _never_started(engine, attempt, view, NEVER_STARTED)
        else:
            events += _attach_local(engine, attempt, view)
    return events


def _attach_local(engine: Engine, attempt: Attempt, view: JobView | None) -> list[ev.Event]:
    status = engine.local.poll([_tracked(attempt)])[attempt.id]
    handle = attempt.handle
    if handle is None and status is not None:  # found in its run folder
        handle = status.extra.get("handle")
    view = view or _removed_view(engine, attempt)
    if view is None:  # the job is not planned (--target): just settle the record
        if status is not None and status.state in FINAL:
            engine.store.finish_attempt(
                attempt.id,
                status.state,
                exit_code=status.exit_code,
                reason=status.reason,
                outputs={},
                progress=None,
                message=None,
            )
        return []
    if attempt.handle is None and handle is not None:
        engine.store.set_handle(attempt.id, handle)
    return _follow(engine, attempt, view, handle, status)


def _follow(
    engine: Engine, attempt: Attempt, view: JobView, handle: str | None, status: Status | None
) -> list[ev.Event]:
    """Follow an attempt like one this runner launched: a local one is polled (it is not
    this runner's child), a remote one is handed to its host's worker."""
    from ccspec.engine import Run

    host = engine.workflow.hosts.get(attempt.host)
    remote = host is not None and host.type != "local"
    view.attempt, view.attempt_id, view.handle = attempt.number, attempt.id, handle
    view.log_path = Path(attempt.log_path) if attempt.log_path else None
    view.started, view.fingerprint = attempt.started or attempt.created, attempt.fingerprint
    if attempt.fingerprint:
        engine.fingerprints[view.id] = attempt.fingerprint
    queued = remote and attempt.state is JobState.QUEUED
    view.state = JobState.QUEUED if queued else JobState.RUNNING
    run_dir = Path(attempt.run_dir) if attempt.run_dir else None
    run = Run(view.id, attempt.number, attempt.id, remote, run_dir, view.log_path, handle)
    run.attached, run.miner = not remote, LogMiner()
    run.since = launched_at(attempt.created)
    engine.runs[view.id] = run
    engine.by_attempt[attempt.id] = run
    if remote:
        view.host = attempt.host
        engine.hosts().watch(attempt, engine.jobs.get(view.id))
    task = None
    if view.action is Action.REMOVED:  # not one of the scheduler's jobs
        pools = engine.pools(attempt.host)
        task = ev.Task(
            view.id, (), pools, host=attempt.host, remote=remote, launches=attempt.number
        )
    engine.report("attached", view)
    ran = 0.0 if queued or not view.started else max(0.0, engine.clock.time() - view.started)
    events: list[ev.Event] = [ev.Attached(view.id, attempt.number, queued, task, ran)]
    if status is not None and status.state in FINAL:
        engine.mine(run, final=True)
        run.attached = False
        run.usage = status.usage
        ended = ev.Ended(
            view.id, attempt.number, status.state, status.exit_code, status.reason, status.finished
        )
        events.append(ended)
    return events


def _never_reached(engine: Engine, active: list[Attempt]) -> set[int]:
    """Remote launches recorded with no answer that never reached their host."""
    hosts = engine.workflow.hosts
    if not any(
        a.handle is None and a.host in hosts and hosts[a.host].type != "local" for a in active
    ):
        return set()
    return engine.hosts().never_reached(active)


def _never_started(engine: Engine, attempt: Attempt, view: JobView | None, reason: str) -> None:
    """Settle an attempt whose launch never happened; its job (still pending) runs again."""
    engine.store.finish_attempt(
        attempt.id,
        JobState.LOST,
        exit_code=None,
        outputs={},
        progress=None,
        message=None,
        reason=reason,
    )
    if view is not None and view.action is Action.ATTACH:
        view.action = Action.RETRY


def _removed_view(engine: Engine, attempt: Attempt) -> JobView | None:
    """A view of a job that left the spec while it ran, to follow it until it ends (its
    record shows it running, "removed from the spec"); None when it is not one."""
    planned = engine.removed.get(attempt.job)
    if planned is None:
        return None
    state = JobState.QUEUED if attempt.state is JobState.QUEUED else JobState.RUNNING
    view = JobView(
        attempt.job, planned.name, attempt.host, state, Action.REMOVED, reason=REMOVED_RUNNING
    )
    engine.views[view.id] = view
    engine.store.set_job_state(engine.workflow.name, view.id, view.name, state, REMOVED_RUNNING)
    return view


def _tracked(attempt: Attempt) -> Tracked:
    log_path = Path(attempt.log_path) if attempt.log_path else Path(".")
    return Tracked(
        attempt.id, attempt.handle, attempt.run_dir or "", log_path, launched_at(attempt.created)
    )


def _never_started_here(engine: Engine, active: list[Attempt]) -> set[int]:
    """Local launches recorded with no handle whose wrapper left nothing in the run folder
    (fenced: a late launch of one starts nothing). One that took its claim but recorded no
    pid within the fence's wait never got as far as its process either."""
    hosts = engine.workflow.hosts
    local = [
        a
        for a in active
        if not (a.host in hosts and hosts[a.host].type != "local")
        and not (a.host not in hosts and a.host != "local" and a.job not in engine.views)
    ]
    never = {a.id for a in local if not a.run_dir}
    unanswered = [a for a in local if a.handle is None and a.id not in never]
    never |= {a.id for a in unanswered if not Path(a.run_dir or "").is_dir()}
    asked = [_tracked(a) for a in unanswered if a.id not in never]
    found = engine.local.fence(asked) if asked else {}
    return never | {t.attempt_id for t in asked if found.get(t.attempt_id) != "started"}
