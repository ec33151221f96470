"""The engine's acts that touch the state store and the targets: a launch (render at launch,
fingerprint, record the intent; submitted after the pass's commit), the record of an attempt's end and of a job's final
state. Called by Engine.act (ccspec.engine) for the scheduler's Launch, Finish and Settle."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ccspec import scheduler_types as ev
from ccspec.engine_local import local_launch
from ccspec.engine_views import OutputsOf
from ccspec.errors import TargetError
from ccspec.fingerprint import Fingerprint, fingerprint, gather_facts
from ccspec.planner import Action
from ccspec.progress import LogMiner
from ccspec.spec.resolve import resolve_at_launch, upstream_context
from ccspec.spec.resolved import ResolvedJob
from ccspec.state import unwritable
from ccspec.state.private import make_dirs
from ccspec.state.store import Attempt, AttemptNumberTaken, LeaseLost
from ccspec.states import JobState
from ccspec.usage import attempt_usage, usage_warning

if TYPE_CHECKING:
    from ccspec.engine import Engine, Run

__all__ = ["finish", "launch", "settle"]


def launch(engine: Engine, command: ev.Launch) -> list[ev.Event]:
    """Start a job that holds its slots: what happened comes back as an event (a remote
    host's answer later, through its worker)."""
    from ccspec.engine import PROGRESS_EVERY, Run

    view = engine.views[command.job]
    job = planned = engine.jobs[command.job]
    if job.deferred:
        context = upstream_context(engine.workflow, job, OutputsOf(engine.views))
        concrete, problems = resolve_at_launch(engine.workflow, job, context)
        if problems:
            return [ev.CannotLaunch(command.job, "; ".join(problems))]
        job = engine.jobs[job.id] = concrete[0]
    host = engine.workflow.hosts.get(job.host)
    if host is None:  # e.g. a fan-out member whose host came from a template
        return [ev.CannotLaunch(command.job, f"no host {job.host!r} in the spec's hosts")]
    view.host = job.host
    fp = launch_fingerprint(engine, planned)
    engine.fingerprints[job.id] = view.fingerprint = fp.value
    try:
        attempt, run_dir = _begin(engine, job, host.type == "local", fp, view.attempt + 1)
    except LeaseLost as lost:
        engine.lost = lost
        return [ev.LeaseLost()]
    log_path = Path(attempt.log_path or "")
    view.attempt, view.attempt_id, view.log_path = attempt.number, attempt.id, log_path
    view.state, view.reason, view.exit_code = JobState.LAUNCHING, None, None
    view.started, view.finished = engine.clock.time(), None
    view.progress, view.message, view.outputs = None, None, {}
    run = Run(command.job, command.number, attempt.id, host.type != "local", run_dir, log_path)
    run.miner = LogMiner()
    run.mine_at = engine.clock.monotonic() + PROGRESS_EVERY / 5  # a quick first look
    engine.runs[command.job] = run
    engine.by_attempt[attempt.id] = run
    if not run.remote:
        return _launch_local(engine, job, run, attempt.created)
    make_dirs(log_path.parent)  # 0700, as every folder under the state folder
    workflow, facts = engine.workflow, engine.facts
    # handed to the host's worker once the round's intents are committed (Engine.feed)
    engine.to_hand.append(lambda: engine.hosts().submit(workflow, job, attempt, facts, planned.id))
    engine.report("launching", view)
    return []


def _begin(
    engine: Engine, job: ResolvedJob, local: bool, fp: Fingerprint, number: int
) -> tuple[Attempt, Path]:
    """Record the intent to launch (logs/WF/JOB/N.log and, beside it, the run folder
    logs/WF/JOB/N/; a remote attempt's run folder is .ccspec/runs/WF/JOB.N/ under its host's
    workdir: one folder per attempt, as a new folder is what costs most on a host's disk)."""
    while True:
        job_dir = engine.logs / job.id
        if local:
            run_dir = job_dir / str(number)
        else:
            run_dir = Path(".ccspec", "runs", engine.workflow.name, f"{job.id}.{number}")
        try:
            attempt = engine.store.begin_attempt(
                engine.workflow.name,
                job.id,
                job.name,
                host=job.host,
                fingerprint=fp.value,
                parts=fp.parts,
                run_dir=run_dir,
                log_path=job_dir / f"{number}.log",
                number=number,
                lease=engine.lease,
            )
        except AttemptNumberTaken as taken:
            number = taken.highest + 1  # e.g. a job removed and added back: its attempts stay
            continue
        return attempt, run_dir


def _launch_local(
    engine: Engine, job: ResolvedJob, run: Run, created: float | None
) -> list[ev.Event]:
    """Gathered for this pass's batch (Engine.submit); the answer comes back through
    engine_observe.submitted, as a remote host's does."""
    number = engine.views[run.job].attempt
    try:
        spec = local_launch(
            engine.workflow.name,
            job,
            number,
            engine.workflow.base_dir,
            engine.local_run_dir(job.id, number),
            engine.base_env,
            run.attempt_id,
            created,
        )
    except (TargetError, OSError) as exc:
        unwritable.check(exc, engine.state_dir)  # a full or read-only state folder: exit 5
        engine.by_attempt.pop(run.attempt_id, None)
        return [ev.LaunchRefused(run.job, run.number, str(exc), temporary=False)]
    engine.to_submit.append(spec)
    return []


def launch_fingerprint(engine: Engine, planned: ResolvedJob) -> Fingerprint:
    """The fingerprint is taken of the job as planned (templates that read upstream outputs
    unrendered), with fresh file contents, so the next plan computes the same value; the
    planned one is reused when nothing it hashed can have moved."""
    fp = engine.planned.get(planned.id)

    def moved(need: str) -> bool:
        was = engine.planned.get(need)
        return engine.fingerprints.get(need) != (was.value if was is not None else None)

    if fp is None or planned.inputs or any(moved(n) for n in planned.needs):
        parents = {n: engine.fingerprints.get(n, "") for n in planned.needs}
        gather_facts(engine.workflow, [planned], engine.facts)
        fp = fingerprint(planned, engine.facts, parents)
    return fp


def finish(engine: Engine, command: ev.Finish) -> None:
    """Record an attempt's end; `finished` is when it ended by its own account, else now.
    The write rides along with the next commit (or is flushed before the loop sleeps)."""
    run = engine.runs.get(command.job)
    view = engine.views.get(command.job)
    if run is None or run.number != command.number or view is None:
        return
    del engine.runs[command.job]
    engine.by_attempt.pop(run.attempt_id, None)
    if command.state is JobState.SUCCEEDED:
        view.progress = 100.0
    now = engine.clock.time()
    ended = command.finished
    view.finished = now if ended is None else max(min(ended, now), view.started or 0.0)
    view.exit_code = command.exit_code
    job = engine.jobs.get(command.job)
    view.usage = run.usage if run.remote else attempt_usage(run.run_dir)
    view.usage_warning = usage_warning(view.usage, job.resources) if job else None
    engine.store.finish_attempt(
        run.attempt_id,
        command.state,
        exit_code=command.exit_code,
        reason=engine.masked(command.reason),
        outputs=engine.redactor.value(view.outputs),
        progress=view.progress,
        message=view.message,
        finished=view.finished,
        soon=True,
        workflow=engine.workflow.name,
        job=view.id,
        usage=view.usage,
        usage_warning=view.usage_warning,
    )


def settle(engine: Engine, command: ev.Settle) -> None:
    """A job's final state; one that left the spec is then forgotten."""
    view = engine.views.get(command.job)
    if view is None:
        return
    reason = engine.masked(command.reason)
    view.state, view.reason = command.state, reason
    if command.record or view.finished is None:
        view.finished = engine.clock.time()
    if command.record:
        engine.store.set_job_state(engine.workflow.name, view.id, view.name, command.state, reason)
    engine.report(command.state.value, view)
    if view.action is Action.REMOVED:  # it left the spec and has ended: recorded, then forgotten
        engine.store.flush()
        engine.store.forget_jobs(engine.workflow.name, [view.id])
        del engine.views[view.id]
