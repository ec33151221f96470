"""The engine: executes a plan. Called by `ccspec apply` (and the reconciler).

    run()
      attach()            follow attempts an earlier runner left out there (never relaunch)
      loop:
        launch_ready()    needs met and a slot free -> render at launch -> record intent -> submit
        wait(event)       a process exit (pushed by the target), a signal, or the next deadline
        handle(event)     record the outcome; retry with backoff, or skip descendants
        tick()            timeouts, log mining for progress, lease renewal, status writes
      finish()

Event-driven: local exits arrive through pidfds; remote hosts (ssh, Slurm, WSL) each have a
worker thread that submits in batches and polls all of the host's jobs at once, and posts
what it learns as events. The loop sleeps until the next event or deadline (a timeout, a
retry's backoff, the next progress read), never in a fixed polling cycle. One job's failure
is a value recorded in the state store, not an exception that stops the loop.

Slots: `-j` bounds the jobs on this machine; every other host runs up to its `max_jobs`.
"""

from __future__ import annotations

import functools
import heapq
import os
import queue
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccspec.errors import TargetError
from ccspec.fingerprint import Facts, Fingerprint, fingerprint, gather_facts
from ccspec.interpreters import interpreter_argv
from ccspec.logfile import mine_log
from ccspec.planner import Action, Plan
from ccspec.progress import LogMiner
from ccspec.redact import redactor_for
from ccspec.resources import template_path
from ccspec.spec.models import Host
from ccspec.spec.resolve import resolve_at_launch, upstream_context
from ccspec.spec.resolved import ResolvedJob, ResolvedWorkflow
from ccspec.state import unwritable
from ccspec.state.private import make_dirs, with_umask
from ccspec.state.store import Attempt, AttemptNumberTaken, LeaseLost, RecordedJob, StateStore
from ccspec.states import FINAL, JobState
from ccspec.targets.base import Launch, Status
from ccspec.targets.local import LocalTarget, exit_time, lost_reason

if TYPE_CHECKING:  # imported where remote hosts are used: a local run does without them
    from ccspec.targets.remote import Submitted
    from ccspec.targets.worker import HostWorker

__all__ = ["Engine", "JobView", "Outcome"]

PROGRESS_EVERY = 0.5  # seconds between log reads of running jobs
FLUSH_AFTER = 0.2  # seconds a deferred state write may wait for the next commit
LEASE_TTL = 15.0
KILL_GRACE = 5.0  # seconds between TERM and KILL
REMOTE_CONFIRM = (
    30.0  # seconds a remote host has to confirm a forced kill before ccspec records it anyway
)
UNKNOWN = "state unknown: "  # the message of a job whose host could not be asked
LOCAL_SLOTS = "@local"  # the slot pool -j bounds: every local-type host shares this machine
REMOVED_RUNNING = (
    "removed from the spec; still running"  # a job followed until it ends, then forgotten
)
NEVER_REACHED = (
    "never started: the runner stopped before the launch reached the host"  # launched again
)


@dataclass
class JobView:
    """What the engine knows of one job now; reporters read these."""

    id: str
    name: str
    host: str
    state: JobState
    action: Action
    reason: str | None = None
    attempt: int = 0
    attempt_id: int | None = None
    handle: str | None = None
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    progress: float | None = None
    message: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None
    retries_left: int = 0
    retry_at: float | None = None
    deadline: float | None = None
    kill_at: float | None = None
    killing: JobState | None = None  # the state to record once the killed process exits
    forced: bool = False  # a forced kill was sent (remote: waiting for the host to confirm)
    slots: tuple[str, ...] = ()  # the slot pools this job holds while it runs
    mine_at: float = 0.0  # monotonic time of the next read of its log for progress
    miner: LogMiner | None = None
    log_path: Path | None = None
    run_dir: Path | None = None


@dataclass(frozen=True)
class Outcome:
    views: dict[str, JobView]
    interrupted: bool
    lost: LeaseLost | None = None  # another apply took the workflow over mid-run

    @property
    def failed(self) -> list[JobView]:
        return [
            v
            for v in self.views.values()
            if v.state in (JobState.FAILED, JobState.TIMED_OUT, JobState.LOST)
        ]

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(
            v.state is JobState.SUCCEEDED for v in self.views.values()
        )


Reporter = Callable[[str, JobView | None], None]  # (event, view) -> None


class Engine:
    def __init__(
        self,
        workflow: ResolvedWorkflow,
        plan: Plan,
        store: StateStore,
        *,
        state_dir: Path,
        jobs: int,
        reporter: Reporter,
        lease: str | None = None,
        fingerprints: dict[str, Fingerprint] | None = None,
        facts: Facts | None = None,
        recorded: Mapping[str, RecordedJob] | None = None,
    ) -> None:
        self.workflow = workflow
        self.plan = plan
        self.store = store
        self.state_dir = state_dir
        self.limit = max(1, jobs)
        self.report = reporter
        self.lease = lease
        self.events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.local = LocalTarget()
        self.jobs: dict[str, ResolvedJob] = dict(workflow.jobs)
        self.fingerprints: dict[str, str] = {k: v.value for k, v in (fingerprints or {}).items()}
        # as planned: reused at launch when nothing it hashed moved
        self._planned = dict(fingerprints or {})
        self.facts = facts or Facts()
        # the environment every local job starts from, read once (os.environ decodes on every access)
        self._base_env = dict(os.environ)
        # Secrets (the spec's `secrets:` vars, secret-looking environment values) are masked in
        # what the engine records and reports: messages and reasons in the views too, outputs
        # only in the store. The views keep real outputs: a job that needs them renders its
        # templates from them during this run. A later run reads the stored ones, masked (***),
        # so a job that needs a secret should take it from `vars`, not from an upstream output.
        self.redactor = redactor_for(workflow.vars, workflow.spec.secrets, environ=self._base_env)
        self._logs = state_dir / "logs" / workflow.name  # logs/WF/JOB/N.log
        # the same, absolute, for local launches (os.path.abspath asks the OS for the cwd each time)
        self._logs_abs = os.path.abspath(self._logs)
        self.views: dict[str, JobView] = {}
        self.order: list[str] = list(self.jobs)
        self.stopping = False
        self.handing_over = False  # leave running jobs to the next engine (the reconciler re-plans)
        self.lost: LeaseLost | None = None
        self._by_handle: dict[str, tuple[str, int]] = {}  # handle -> (job id, attempt id)
        self._attached: set[str] = set()  # handles of attempts an earlier runner launched: polled
        self.running: dict[str, JobView] = {}
        self.retrying: dict[str, JobView] = {}  # failed, waiting for their backoff to pass
        self.children: dict[str, list[str]] = {}
        self.waiting: dict[str, int] = {}  # job -> needs not yet succeeded
        self.position: dict[str, float] = {}  # topological rank: ready jobs start in this order
        self.ready: list[tuple[float, str]] = []
        self.unfinished = 0
        self.workers: dict[str, HostWorker] = {}  # remote host name -> its worker thread
        self.remote: dict[int, str] = {}  # attempt id -> job id, for remote attempts
        self.busy: dict[str, int] = {}  # slot pool -> jobs holding a slot
        self.parked: dict[
            str, list[tuple[float, str]]
        ] = {}  # slot pool -> ready jobs waiting for it
        self._next_lease = time.monotonic() + LEASE_TTL / 3
        self._removed = {j.id: j for j in plan.jobs if j.action is Action.REMOVED}  # left the spec
        # of those, jobs still out there on a host nobody can ask: recorded as they are
        self._kept: set[str] = set()
        recorded = recorded if recorded is not None else store.recorded_jobs(workflow.name)
        last = store.last_attempts(workflow.name)
        for planned in plan.jobs:
            if planned.action is Action.REMOVED or planned.id not in self.jobs:
                continue
            job = self.jobs[planned.id]
            rec = recorded.get(planned.id)
            done = planned.action is Action.UP_TO_DATE
            view = JobView(
                planned.id,
                job.name,
                job.host,
                JobState.SUCCEEDED if done else JobState.PENDING,
                planned.action,
                reason=None if done else str(planned.reason),
                retries_left=job.retries,
                fingerprint=planned.fingerprint.value if planned.fingerprint else None,
                attempt=rec.attempts if rec else 0,
            )
            if done and rec is not None:  # show what the last (successful) run did
                view.outputs = dict(rec.outputs)  # as stored: secrets masked
                attempt = last.get(planned.id)
                if attempt is not None and attempt.state is JobState.SUCCEEDED:
                    view.started, view.finished, view.exit_code = (
                        attempt.started,
                        attempt.finished,
                        attempt.exit_code,
                    )
                    view.progress, view.message, view.host = (
                        attempt.progress,
                        attempt.message,
                        attempt.host,
                    )
            self.views[planned.id] = view

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> Outcome:
        self._index_graph()  # first: attaching may finish jobs, which updates these counts
        try:
            self._attach()
            # jobs that left the spec are forgotten, but for those still running: followed until they end
            gone = [i for i in self._removed if i not in self.views and i not in self._kept]
            if gone:
                self.store.forget_jobs(self.workflow.name, gone)
            while self.unfinished and not self.handing_over:
                if not self.stopping:
                    self._launch_ready()
                if not self.unfinished:
                    break
                # exits that already happened: handled with no commit of the handles between
                self.local.wait(0)
                if self.events.empty():
                    # Handles and ends of attempts ride along with the next launch's commit, or
                    # are committed once they have waited FLUSH_AFTER (a runner killed before
                    # that re-collects them from the run folders).
                    timeout = self._next_deadline()
                    age = self.store.pending_age()
                    if age is not None and age >= FLUSH_AFTER:
                        self.store.flush()
                    elif age is not None:
                        timeout = min(timeout, FLUSH_AFTER - age)
                    # reporters write out what they gathered before the engine sleeps
                    self.report("idle", None)
                    self.local.make_prepared()  # run folders of ready jobs, while the running ones run
                    self.local.wait(timeout)  # child exits (via pidfds), remote events or a wake-up
                while True:
                    try:
                        kind, payload = self.events.get_nowait()
                    except queue.Empty:
                        break
                    self._handle(kind, payload)
                self._tick()
        finally:
            for worker in self.workers.values():
                worker.close()
            self.local.close()
            self.store.flush()
        self.report("finished", None)
        return Outcome(self.views, self.stopping, self.lost)

    def _post(self, kind: str, payload: Any) -> None:
        """Events from remote hosts' worker threads."""
        self.events.put((kind, payload))
        self.local.wake()

    def _worker(self, host_name: str) -> HostWorker:
        worker = self.workers.get(host_name)
        if worker is None:
            from ccspec.targets.hosts import backend_for, poll_intervals
            from ccspec.targets.worker import HostWorker

            host = self.workflow.hosts[host_name]
            shortest, longest = poll_intervals(host)
            worker = HostWorker(
                backend_for(host), self._post, min_interval=shortest, max_interval=longest
            )
            self.workers[host_name] = worker
        return worker

    # -- slots -------------------------------------------------------------------------

    def _pools(self, host_name: str) -> list[tuple[str, int]]:
        host = self.workflow.hosts.get(host_name)
        if host is None or host.type == "local":
            pools = [(LOCAL_SLOTS, self.limit)]
            if host is not None and host.max_jobs is not None:
                pools.append((host_name, host.max_jobs))
            return pools
        from ccspec.targets.hosts import job_slots

        return [(host_name, job_slots(host, self.limit))]

    def _take_slot(self, view: JobView) -> str | None:
        """Hold a slot in every pool of the job's host; or name the pool that is full."""
        pools = self._pools(self.jobs[view.id].host)
        for pool, limit in pools:
            if self.busy.get(pool, 0) >= limit:
                return pool
        for pool, _ in pools:
            self.busy[pool] = self.busy.get(pool, 0) + 1
        view.slots = tuple(pool for pool, _ in pools)
        return None

    def _stop_running(self, view: JobView) -> None:
        if self.running.pop(view.id, None) is None:
            return
        for pool in view.slots:
            self.busy[pool] -= 1
            waiting = self.parked.get(pool)
            if waiting:  # one freed slot lets one parked job try again
                # its folder was asked for before
                heapq.heappush(self.ready, heapq.heappop(waiting))
        view.slots = ()

    def handover(self) -> None:
        """Stop launching and return soon, leaving running jobs out there: the next engine
        (planned from a newer spec) re-attaches to them. Safe from any thread."""
        self.events.put(("handover", None))
        self.local.wake()

    def interrupt(self, force: bool = False) -> None:
        """Called from a signal handler: cancel running jobs (force: kill them now)."""
        self.events.put(("interrupt", force))
        self.local.wake()

    def _index_graph(self) -> None:
        """Children, counts of unmet needs and the ready heap: each event then costs what it
        touches, not the size of the workflow."""
        for job_id, job in self.jobs.items():
            for need in job.needs:
                self.children.setdefault(need, []).append(job_id)
        for position, job_id in enumerate(self.order):
            self.position[job_id] = float(position)
        for view in self.views.values():
            if view.state in FINAL:
                continue
            self.unfinished += 1
            if view.state is JobState.PENDING:
                self.waiting[view.id] = sum(
                    1
                    for n in self.jobs[view.id].needs
                    if n in self.views and self.views[n].state is not JobState.SUCCEEDED
                )
                if self.waiting[view.id] == 0:
                    self._make_ready(view.id)
        # a need that already failed (e.g. a lost re-attached job)
        for view in list(self.views.values()):
            if view.state in FINAL and view.state is not JobState.SUCCEEDED:
                self._skip_descendants(view)

    def _handle(self, kind: str, payload: Any) -> None:
        if kind == "exit":
            handle, code = payload
            owner = self._by_handle.pop(handle, None)
            if owner is not None:
                view = self.views.get(owner[0])
                if (
                    view is not None
                    and view.attempt_id == owner[1]
                    and view.state is JobState.RUNNING
                ):
                    self._exited(view, code)
        elif kind == "interrupt":
            self._cancel_all(force=bool(payload) or self.stopping)
        elif kind == "handover":
            self.handing_over = True
        elif kind == "submitted":
            self._submitted(payload)
        elif kind == "status":
            self._remote_status(*payload)
        elif kind == "unknown":
            attempt_ids, reason = payload
            for attempt_id in attempt_ids:
                view = self._remote_view(attempt_id)
                if view is not None and view.message != f"{UNKNOWN}{reason}":
                    view.message = f"{UNKNOWN}{reason}"
                    self.report("unknown", view)

    def _remote_view(self, attempt_id: int) -> JobView | None:
        job_id = self.remote.get(attempt_id)
        view = self.views.get(job_id) if job_id is not None else None
        if view is None or view.attempt_id != attempt_id or view.state in FINAL:
            return None
        return view

    def _submitted(self, result: Submitted) -> None:
        view = self._remote_view(result.attempt_id)
        if view is None:
            return
        if result.handle is None:
            self.remote.pop(result.attempt_id, None)
            self._record_exit(
                view, JobState.FAILED, None, result.error or "the host refused the job"
            )
            return
        queues = self.workers[view.host].backend.queues
        view.handle, view.started = result.handle, time.time()
        view.state = JobState.QUEUED if queues else JobState.RUNNING
        self.store.set_handle(
            result.attempt_id,
            result.handle,
            state=view.state,
            started=view.started,
            workflow=self.workflow.name,
            job=view.id,
        )
        if view.killing is not None:  # cancelled while the launch was under way
            self._cancel_job(view, force=False)
        self.report("queued" if queues else "started", view)

    def _remote_status(self, attempt_id: int, status: Status) -> None:
        view = self._remote_view(attempt_id)
        if view is None:
            return
        handle = status.extra.get("handle") if status.extra else None
        if handle and handle != view.handle:  # found in the run folder after a restart
            view.handle = handle
            self.store.set_handle(attempt_id, handle, state=view.state, started=view.started)
        if status.state in FINAL:
            self.remote.pop(attempt_id, None)
            self._mine(view, final=True)
            if view.killing is not None:  # ccspec stopped it: record why, as for local jobs
                self._record_exit(
                    view, view.killing, status.exit_code, view.reason, status.finished
                )
            else:
                self._record_exit(
                    view, status.state, status.exit_code, status.reason, status.finished
                )
            return
        reachable_again = bool(view.message and view.message.startswith(UNKNOWN))
        if reachable_again:
            view.message = None
        removed = view.action is Action.REMOVED  # its reason says so, whatever the host's is
        if status.state is not view.state or (not removed and status.reason != view.reason):
            if status.state is JobState.RUNNING and view.state is JobState.QUEUED:
                view.started = time.time()
                self.store.set_handle(
                    attempt_id,
                    view.handle or "",
                    state=JobState.RUNNING,
                    started=view.started,
                    workflow=self.workflow.name,
                    job=view.id,
                )
            view.state = status.state
            if view.killing is None and not removed:
                view.reason = status.reason
            self.report(status.state.value, view)
        elif reachable_again:
            self.report("progress", view)

    def _next_deadline(self) -> float:
        now = time.monotonic()
        deadlines = [now + PROGRESS_EVERY] if self.running else [now + 1.0]
        for v in (*self.running.values(), *self.retrying.values()):
            for t in (v.deadline, v.kill_at, v.retry_at):
                if t is not None:
                    deadlines.append(t)
        return max(0.0, min(deadlines) - now)

    # -- launching ---------------------------------------------------------------------

    def _make_ready(self, job_id: str) -> None:
        """Queue a job whose needs are met; a local job's run folder is made ahead meanwhile."""
        heapq.heappush(self.ready, (self.position[job_id], job_id))
        job, view = self.jobs.get(job_id), self.views.get(job_id)
        if job is None or view is None or job.fanout_pending:
            return
        host = self.workflow.hosts.get(job.host)
        if host is not None and host.type == "local":
            self.local.prepare(self._local_run_dir(job_id, view.attempt + 1))

    def _local_run_dir(self, job_id: str, attempt: int) -> Path:
        """A local attempt's run folder, absolute: the path its launch uses and the one made
        ahead for it must be the same."""
        return Path(self._logs_abs, job_id, str(attempt))

    def _launch_ready(self) -> None:
        while self.ready and not self.handing_over:
            entry = heapq.heappop(self.ready)
            view = self.views.get(entry[1])
            if view is None or view.state is not JobState.PENDING:
                continue
            full = self._take_slot(view)
            if full is not None:  # waits for a job of that pool to end
                heapq.heappush(self.parked.setdefault(full, []), entry)
                continue
            self._launch(view)

    def _skip_descendants(self, failed: JobView) -> None:
        stack = list(self.children.get(failed.id, ()))
        while stack:
            view = self.views.get(stack.pop())
            if view is None or view.state is not JobState.PENDING:
                continue
            self._final(view, JobState.SKIPPED, f"{failed.id} {failed.state.value}")
            stack.extend(self.children.get(view.id, ()))

    def _launch(self, view: JobView) -> bool:
        """Start a job that holds its slots (they are released when it ends)."""
        self.running[view.id] = view
        job = planned_job = self.jobs[view.id]
        if job.deferred or job.fanout_pending:
            outputs = _Outputs(self.views)
            concrete, problems = resolve_at_launch(
                self.workflow, job, upstream_context(self.workflow, job, outputs)
            )
            if problems:
                self._final(view, JobState.FAILED, "; ".join(problems))
                return False
            if job.fanout_pending:
                self._stop_running(view)
                self._fan_out(view, concrete)
                return False
            job = concrete[0]
            self.jobs[view.id] = job
        host = self.workflow.hosts.get(job.host)
        if host is None:  # e.g. a fan-out member whose host came from a template
            self._final(view, JobState.FAILED, f"no host {job.host!r} in the spec's hosts")
            return False
        view.host = job.host
        fp = self._launch_fingerprint(planned_job)
        self.fingerprints[job.id] = fp.value
        view.fingerprint = fp.value
        # logs/WF/JOB/N.log and, beside it, the attempt's run folder logs/WF/JOB/N/: one folder
        # per job and one per attempt (a mkdir costs ~0.3 ms here, a noticeable part of a launch).
        # A remote attempt's run folder is on its host, under the host's workdir; its log is
        # mirrored into the same local log file.
        job_dir = self._logs / job.id
        number = view.attempt + 1
        run_dir = (
            job_dir / str(number)
            if host.type == "local"
            else Path(".ccspec", "runs", self.workflow.name, job.id, str(number))
        )
        log_path = job_dir / f"{number}.log"
        try:
            attempt = self.store.begin_attempt(
                self.workflow.name,
                job.id,
                job.name,
                host=job.host,
                fingerprint=fp.value,
                parts=fp.parts,
                run_dir=run_dir,
                log_path=log_path,
                number=number,
                lease=self.lease,
            )
        except AttemptNumberTaken as taken:
            # e.g. a job removed from the spec and added back: its attempts stay
            view.attempt = taken.highest
            return self._launch(view)
        except LeaseLost as lost:
            self._stop_running(view)
            self._lose_lease(lost)
            return False
        view.attempt, view.attempt_id, view.run_dir, view.log_path = (
            attempt.number,
            attempt.id,
            run_dir,
            log_path,
        )
        view.state, view.reason, view.exit_code, view.started, view.finished = (
            JobState.LAUNCHING,
            None,
            None,
            time.time(),
            None,
        )
        view.progress, view.message, view.outputs, view.miner = None, None, {}, LogMiner()
        # a quick first look, then twice a second
        view.mine_at = time.monotonic() + PROGRESS_EVERY / 5
        if host.type != "local":
            self._launch_remote(view, job, planned_job, host, attempt)
            return True
        return self._launch_local(view, job, attempt)

    def _launch_fingerprint(self, planned_job: ResolvedJob) -> Fingerprint:
        """The fingerprint is taken of the job as planned (templates that read upstream
        outputs unrendered), with fresh file contents, so the next plan computes the same
        value; the planned one is reused when nothing it hashed can have moved."""
        fp = self._planned.get(planned_job.id)
        if (
            fp is None
            or planned_job.inputs
            or any(self.fingerprints.get(n) != self._planned_value(n) for n in planned_job.needs)
        ):
            parents = {n: self.fingerprints.get(n, "") for n in planned_job.needs}
            gather_facts(self.workflow, [planned_job], self.facts)
            fp = fingerprint(planned_job, self.facts, parents)
        return fp

    def _launch_local(self, view: JobView, job: ResolvedJob, attempt: Attempt) -> bool:
        """Start a recorded attempt on this machine; a launch that fails fails the job."""
        try:
            launch = self._launch_spec(job, view)
            handle = self.local.submit(launch, lambda h, code: self.events.put(("exit", (h, code))))
        except (TargetError, OSError) as exc:
            # a full or read-only state folder stops the run (exit 5)
            unwritable.check(exc, self.state_dir)
            self.store.finish_attempt(
                attempt.id,
                JobState.FAILED,
                exit_code=None,
                reason=self._masked(str(exc)),
                outputs={},
                progress=None,
                message=None,
            )
            self._final(view, JobState.FAILED, str(exc), record=False)
            return False
        self._by_handle[handle] = (view.id, attempt.id)
        view.handle, view.started = handle, time.time()
        self.store.set_handle(
            attempt.id,
            handle,
            started=view.started,  # the same instant in views and records
            workflow=self.workflow.name,
            job=job.id,
            soon=True,
        )
        view.state = JobState.RUNNING
        view.deadline = time.monotonic() + job.timeout if job.timeout else None
        self.report("started", view)
        return True

    def _planned_value(self, job_id: str) -> str | None:
        planned = self._planned.get(job_id)
        return planned.value if planned is not None else None

    def _launch_remote(
        self,
        view: JobView,
        job: ResolvedJob,
        planned_job: ResolvedJob,
        host: Host,
        attempt: Attempt,
    ) -> None:
        assert view.run_dir is not None and view.log_path is not None
        attempt_id = attempt.id
        env = {k: str(v) for k, v in {**host.env, **job.env}.items()}
        env.update(
            {
                "CCSPEC_WORKFLOW": self.workflow.name,
                "CCSPEC_JOB": job.id,
                "CCSPEC_ATTEMPT": str(view.attempt),
            }
        )
        from ccspec.targets.claims import launch_claim
        from ccspec.targets.remote import RemoteLaunch, job_files

        files = job_files(job, self.workflow.base_dir, self.facts.inputs.get(planned_job.id, ()))
        launch = RemoteLaunch(
            attempt_id,
            self.workflow.name,
            job,
            view.attempt,
            self.workflow.base_dir,
            view.run_dir.as_posix(),
            view.log_path.resolve(),
            env,
            files,
            _fetched(job, view.log_path),
            claim=launch_claim(attempt_id, attempt.created or 0.0),
        )
        self.remote[attempt_id] = view.id
        view.deadline = time.monotonic() + job.timeout if job.timeout else None
        make_dirs(view.log_path.parent)  # 0700, as every folder under the state folder
        self._worker(job.host).submit(launch)
        self.report("launching", view)

    def _fan_out(self, view: JobView, members: list[ResolvedJob]) -> None:
        """Replace a pending fan-out by its jobs, now that the matrix is known."""
        ids = [m.id for m in members]
        self.workflow = replace(
            self.workflow, groups={**self.workflow.groups, view.name: tuple(ids)}
        )
        index = self.order.index(view.id)
        self.order[index : index + 1] = ids
        del self.views[view.id]
        self.jobs.pop(view.id)
        self.unfinished += len(members) - 1
        children = self.children.pop(view.id, [])
        recorded = self.store.recorded_jobs(self.workflow.name)
        base = self.position[view.id]
        for i, member in enumerate(members):
            self.jobs[member.id] = member
            rec = recorded.get(member.id)
            self.views[member.id] = JobView(
                member.id,
                member.name,
                member.host,
                JobState.PENDING,
                Action.CREATE,
                retries_left=member.retries,
                attempt=rec.attempts if rec else 0,
            )
            self.position[member.id] = base + (i + 1) / (len(members) + 1)
            self.children[member.id] = list(children)
            self.waiting[member.id] = 0
            self._make_ready(member.id)
        for child in children:  # jobs that needed the fan-out now need its members
            other = self.jobs[child]
            needs = tuple(n for need in other.needs for n in (ids if need == view.id else [need]))
            self.jobs[child] = replace(other, needs=needs)
            self.waiting[child] = self.waiting.get(child, 0) + len(members) - 1
        self.report("fanout", None)

    def _launch_spec(self, job: ResolvedJob, view: JobView) -> Launch:
        base = self.workflow.base_dir
        cwd = job_cwd(job, base)
        # absolute without Path.resolve(), which stats every component of every path (~0.2 ms)
        run_dir = self._local_run_dir(job.id, view.attempt)
        # logs/WF/JOB/N.log beside logs/WF/JOB/N/
        log_path = run_dir.with_name(f"{view.attempt}.log")
        env = {
            **self._base_env,
            **{k: str(v) for k, v in job.env.items()},
            "CCSPEC_WORKFLOW": self.workflow.name,
            "CCSPEC_JOB": job.id,
            "CCSPEC_ATTEMPT": str(view.attempt),
            "CCSPEC_RUN_DIR": str(run_dir),
        }
        argv = command(job, base, run_dir, log_path)
        return Launch(
            self.workflow.name,
            job.id,
            view.attempt,
            argv,
            env,
            cwd,
            run_dir,
            log_path,
            job.timeout,
            wrapped=len(argv) > 2 and argv[2] is _run_wrapper(),
        )

    # -- outcomes ----------------------------------------------------------------------

    def _exited(self, view: JobView, code: int | None) -> None:
        if view.state in FINAL:
            return
        # not after reading a long log
        ended = exit_time(view.run_dir) if view.run_dir is not None else None
        self._mine(view, final=True)
        if view.killing is not None:
            state, reason = view.killing, view.reason
        elif code is None:
            # not our child, and its wrapper wrote no exit code: killed by KILL, or a full folder
            state, reason = JobState.LOST, lost_reason(view.run_dir)
        elif code == 0:
            state, reason = JobState.SUCCEEDED, None
        else:
            state, reason = (
                JobState.FAILED,
                f"exit code {code}" if code > 0 else f"killed by signal {-code}",
            )
        self._record_exit(view, state, code, reason, ended)

    def _record_exit(
        self,
        view: JobView,
        state: JobState,
        code: int | None,
        reason: str | None,
        ended: float | None = None,
    ) -> None:
        """`ended`: when the attempt ended by its own account (its wrapper's exit-code file),
        else now."""
        assert view.attempt_id is not None
        reason = self._masked(reason)
        self._stop_running(view)
        if state is JobState.SUCCEEDED:
            view.progress = 100.0
        now = time.time()
        view.finished = now if ended is None else max(min(ended, now), view.started or 0.0)
        self.store.finish_attempt(
            view.attempt_id,
            state,
            exit_code=code,
            reason=reason,
            outputs=self.redactor.value(view.outputs),
            progress=view.progress,
            message=view.message,
            finished=view.finished,
            soon=True,  # with the next launch's record, or before the loop sleeps
            workflow=self.workflow.name,
            job=view.id,
        )
        view.exit_code, view.deadline, view.kill_at, view.killing, view.forced = (
            code,
            None,
            None,
            None,
            False,
        )
        if (
            state in (JobState.FAILED, JobState.TIMED_OUT, JobState.LOST)
            and view.retries_left > 0
            and not self.stopping
        ):
            view.retries_left -= 1
            used = self.jobs[view.id].retries - view.retries_left
            delay = min(30.0, 0.5 * 2 ** (used - 1))
            view.state, view.reason, view.retry_at = (
                JobState.PENDING,
                f"{reason}; retry {used} in {delay:g}s",
                time.monotonic() + delay,
            )
            self.retrying[view.id] = view
            self.report("retrying", view)
            return
        self._final(view, state, reason, record=False)

    def _final(
        self, view: JobView, state: JobState, reason: str | None, *, record: bool = True
    ) -> None:
        reason = self._masked(reason)
        was_final = view.state in FINAL
        view.state, view.reason = state, reason
        if record or view.finished is None:
            view.finished = time.time()
        view.retry_at = None
        self._stop_running(view)
        self.retrying.pop(view.id, None)
        if not was_final:
            self.unfinished -= 1
        if record:
            self.store.set_job_state(self.workflow.name, view.id, view.name, state, reason)
        self.report(state.value, view)
        if state is JobState.SUCCEEDED:
            for child in self.children.get(view.id, ()):
                left = self.waiting.get(child, 1) - 1
                self.waiting[child] = left
                if (
                    left == 0
                    and child in self.views
                    and self.views[child].state is JobState.PENDING
                ):
                    self._make_ready(child)
        elif not self.stopping:  # when stopping, every pending job is cancelled instead
            self._skip_descendants(view)
        # it left the spec and has ended: recorded, then forgotten
        if view.action is Action.REMOVED:
            self.store.flush()
            self.store.forget_jobs(self.workflow.name, [view.id])
            del self.views[view.id]

    # -- periodic work -----------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        for view in [
            v for v in self.retrying.values() if v.retry_at is not None and v.retry_at <= now
        ]:
            del self.retrying[view.id]
            view.retry_at = None
            self._make_ready(view.id)
        for view in list(self.running.values()):
            # the host never confirmed
            if view.kill_at is not None and now >= view.kill_at and view.forced:
                self.remote.pop(view.attempt_id or 0, None)
                assert view.killing is not None
                self._record_exit(
                    view,
                    view.killing,
                    None,
                    f"{view.reason} ({view.host} did not confirm the kill)",
                )
                continue
            if view.kill_at is not None and now >= view.kill_at:
                self._cancel_job(view, force=True)
            elif view.deadline is not None and now >= view.deadline and view.killing is None:
                self._kill(
                    view, JobState.TIMED_OUT, f"timed out after {self.jobs[view.id].timeout:g}s"
                )
            # a log is read twice a second, not on every event
            if now >= view.mine_at and self._mine(view):
                assert view.attempt_id is not None
                self.store.update_progress(
                    view.attempt_id, view.progress, view.message, self.redactor.value(view.outputs)
                )
                self.report("progress", view)
            # not our child: no exit event will come
            if view.handle in self._attached and view.run_dir:
                status = self.local.poll({view.handle: view.run_dir})[view.handle]
                if status is not None and status.state in FINAL:
                    self._attached.discard(view.handle)
                    self._mine(view, final=True)
                    self._record_exit(
                        view,
                        view.killing or status.state,
                        status.exit_code,
                        view.reason if view.killing else status.reason,
                        status.finished,
                    )
        if self.lease and now >= self._next_lease:
            if not self.store.renew_lease(self.workflow.name, self.lease, LEASE_TTL):
                self._lose_lease(
                    LeaseLost(self.workflow.name, self.store.lease_holder(self.workflow.name))
                )
            self._next_lease = now + LEASE_TTL / 3
        self.report("tick", None)

    def _lose_lease(self, lost: LeaseLost) -> None:
        """Another apply took the workflow over (this one did not renew its lease in time):
        launch nothing more and leave the running jobs to it; it follows them."""
        self.lost = lost
        self.handing_over = True

    def _mine(self, view: JobView, *, final: bool = False) -> bool:
        view.mine_at = time.monotonic() + PROGRESS_EVERY
        if view.miner is None or view.log_path is None:
            return False
        # in bounded chunks; a small log is one read
        changed = mine_log(view.miner, view.log_path, final=final)
        if changed:
            view.progress, view.message = view.miner.progress, self._masked(view.miner.message)
            view.outputs = dict(view.miner.outputs)
        return changed

    def _masked(self, text: str | None) -> str | None:
        return text if text is None or not self.redactor else self.redactor.text(text)

    def _kill(self, view: JobView, state: JobState, reason: str) -> None:
        view.killing, view.reason = state, reason
        self._cancel_job(view, force=False)
        view.kill_at = time.monotonic() + KILL_GRACE
        view.deadline = None

    def _cancel_job(self, view: JobView, *, force: bool) -> None:
        """TERM (or KILL) the attempt on its host; remote kills are confirmed by a later poll."""
        if view.attempt_id in self.remote:
            self.workers[view.host].cancel(view.attempt_id, force)
            if force:
                view.forced, view.kill_at = True, time.monotonic() + REMOTE_CONFIRM
            return
        if view.handle and view.run_dir:
            self.local.cancel(view.handle, view.run_dir, force=force)
        if force:
            view.kill_at = None

    def _cancel_all(self, force: bool) -> None:
        self.stopping = True
        for view in list(self.views.values()):
            if (
                view.state in (JobState.RUNNING, JobState.LAUNCHING, JobState.QUEUED)
                and view.id in self.running
            ):
                if force:
                    view.killing, view.reason = JobState.CANCELLED, "cancelled (forced)"
                    self._cancel_job(view, force=True)
                elif view.killing is None:
                    self._kill(view, JobState.CANCELLED, "cancelled")
            elif view.state in (JobState.PENDING, JobState.QUEUED):
                self._final(view, JobState.CANCELLED, "cancelled before it started")

    # -- re-attach ---------------------------------------------------------------------

    def _attach(self) -> None:
        """Follow attempts that an earlier (killed) runner launched; never launch them twice."""
        active = self.store.active_attempts(self.workflow.name)
        fenced = self._fence_unanswered(active)
        for attempt in active:
            view = self.views.get(attempt.job)
            host = self.workflow.hosts.get(attempt.host)
            # it never reached its host, and now never will: launched again below
            if attempt.id in fenced:
                self._never_started(attempt, view, NEVER_REACHED)
                continue
            if host is not None and host.type != "local":
                # else `ccspec status` settles it
                if view is None and attempt.run_dir and attempt.log_path:
                    view = self._removed_view(attempt)
                self._attach_remote(attempt, view)
                self._kept.add(attempt.job)  # not forgotten before its end is recorded
                continue
            if view is None and host is None and attempt.host != "local":
                self._kept.add(attempt.job)  # on a host the spec no longer names: nobody can ask it
                continue
            handle = attempt.handle or self._recover_handle(attempt)
            run_dir = Path(attempt.run_dir) if attempt.run_dir else None
            if handle is None or run_dir is None:
                self._never_started(
                    attempt, view, "the launch was recorded but the job never started"
                )
                continue
            status: Status | None = self.local.poll({handle: run_dir})[handle]
            view = view or self._removed_view(attempt)
            if view is None:  # the job is not planned (--target): just settle the record
                if status is not None and status.state in FINAL:
                    self.store.finish_attempt(
                        attempt.id,
                        status.state,
                        exit_code=status.exit_code,
                        reason=status.reason,
                        outputs={},
                        progress=None,
                        message=None,
                    )
                continue
            if attempt.handle is None:
                self.store.set_handle(attempt.id, handle)
            view.attempt, view.attempt_id, view.handle, view.run_dir = (
                attempt.number,
                attempt.id,
                handle,
                run_dir,
            )
            view.log_path = Path(attempt.log_path) if attempt.log_path else None
            view.started, view.miner = attempt.started or attempt.created, LogMiner()
            view.fingerprint = attempt.fingerprint
            if attempt.fingerprint:
                self.fingerprints[view.id] = attempt.fingerprint
            self._attached.add(handle)
            view.state = JobState.RUNNING
            self._hold_slots(view)
            self.report("attached", view)
            if status is not None and status.state in FINAL:
                self._mine(view, final=True)
                self._record_exit(
                    view, status.state, status.exit_code, status.reason, status.finished
                )

    def _never_started(self, attempt: Attempt, view: JobView | None, reason: str) -> None:
        """Settle an attempt whose launch never happened; its job (still pending) runs again."""
        self.store.finish_attempt(
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

    def _fence_unanswered(self, active: list[Attempt]) -> set[int]:
        """Remote launches recorded with no answer (the runner died before the host's): one
        command per host takes their claims (ccspec.targets.claims); the ids of those that
        never reached their host. A host that cannot be asked now: its jobs are followed."""
        from ccspec.targets.claims import launch_claim
        from ccspec.targets.remote import Tracked

        unanswered: dict[str, list[Tracked]] = {}
        for a in active:
            host = self.workflow.hosts.get(a.host)
            if (
                host is not None
                and host.type != "local"
                and a.handle is None
                and a.run_dir
                and a.created
            ):
                unanswered.setdefault(a.host, []).append(
                    Tracked(
                        a.id,
                        None,
                        a.run_dir,
                        Path(a.log_path or "."),
                        a.created,
                        claim=launch_claim(a.id, a.created),
                    )
                )
        never: set[int] = set()
        for name, tracked in unanswered.items():
            try:  # the host's worker thread has nothing to do yet: its backend is free
                found = self._worker(name).backend.fence(tracked)
            except (TargetError, OSError):
                continue
            never.update(i for i, answer in found.items() if answer == "never")
        return never

    def _removed_view(self, attempt: Attempt) -> JobView | None:
        """A view of a job that left the spec while it ran, to follow it until it ends (its
        record shows it running, "removed from the spec"); None when it is not one."""
        planned = self._removed.get(attempt.job)
        if planned is None:
            return None
        state = JobState.QUEUED if attempt.state is JobState.QUEUED else JobState.RUNNING
        view = JobView(
            attempt.job, planned.name, attempt.host, state, Action.REMOVED, reason=REMOVED_RUNNING
        )
        self.views[view.id] = view
        self.unfinished += 1
        self.store.set_job_state(self.workflow.name, view.id, view.name, state, REMOVED_RUNNING)
        return view

    def _attach_remote(self, attempt: Attempt, view: JobView | None) -> None:
        """The host's worker polls the attempt like one it launched; its run folder tells
        the handle when the submission's answer was lost with the earlier runner."""
        from ccspec.targets.remote import Tracked, launched_at

        if view is None or not attempt.run_dir or not attempt.log_path:
            return  # the job left the spec: `ccspec status` settles its record
        view.attempt, view.attempt_id, view.handle = attempt.number, attempt.id, attempt.handle
        view.run_dir, view.log_path = Path(attempt.run_dir), Path(attempt.log_path)
        view.started, view.miner, view.host = (
            attempt.started or attempt.created,
            LogMiner(),
            attempt.host,
        )
        view.fingerprint = attempt.fingerprint
        if attempt.fingerprint:
            self.fingerprints[view.id] = attempt.fingerprint
        view.state = JobState.QUEUED if attempt.state is JobState.QUEUED else JobState.RUNNING
        self.remote[attempt.id] = view.id
        self._hold_slots(view)
        job = self.jobs.get(view.id)
        fetch = _fetched(job, view.log_path) if job is not None else {}
        self._worker(attempt.host).watch(
            Tracked(
                attempt.id,
                attempt.handle,
                attempt.run_dir,
                view.log_path.resolve(),
                launched_at(attempt.created),
                fetch=fetch,
            )
        )
        self.report("attached", view)

    def _hold_slots(self, view: JobView) -> None:
        """An attached job holds its slots whatever the limits (it runs already)."""
        self.running[view.id] = view
        view.slots = tuple(
            pool
            for pool, _ in self._pools(
                self.jobs[view.id].host if view.id in self.jobs else view.host
            )
        )
        for pool in view.slots:
            self.busy[pool] = self.busy.get(pool, 0) + 1

    def _recover_handle(self, attempt: Attempt) -> str | None:
        if not attempt.run_dir:
            return None
        run_dir = Path(attempt.run_dir)
        if not run_dir.is_dir():  # the runner makes it before a launch: none happened
            return None
        # the wrapper writes its pid first thing: give it a moment (the folder may also have
        # been made ahead for a launch that never happened)
        deadline = time.monotonic() + 1.0
        while True:
            handle = self.local.recover(run_dir)
            if handle is not None or time.monotonic() > deadline:
                return handle
            time.sleep(0.05)


def _fetched(job: ResolvedJob, log_path: Path) -> dict[str, Path]:
    """Files a remote attempt's run folder holds that ccspec keeps next to the local log."""
    return (
        {"executed.ipynb": log_path.resolve().with_suffix(".ipynb")}
        if job.kind == "notebook"
        else {}
    )


POSIX_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash"})


@functools.lru_cache(maxsize=1)
def _run_wrapper() -> str:
    return with_umask(template_path("run-wrapper.sh").read_text())  # no fork to learn it per job


class _Outputs(Mapping[str, Any]):
    """Outputs of jobs by id, read from the views on demand (no copy per launch)."""

    def __init__(self, views: dict[str, JobView]) -> None:
        self._views = views

    def __getitem__(self, key: str) -> Any:
        return self._views[key].outputs

    def __iter__(self) -> Iterator[str]:
        return iter(self._views)

    def __len__(self) -> int:
        return len(self._views)


def job_cwd(job: ResolvedJob, base: Path) -> Path:
    """A local job's working folder: the spec's folder, or its `workdir:` below it."""
    return (base / job.workdir).resolve() if job.workdir else base


def command(job: ResolvedJob, base: Path, run_dir: Path, log_path: Path) -> list[str]:
    """The argv of a job on this machine."""
    if job.kind == "run":
        shell = job.shell or ("bash" if sys.platform != "win32" else "cmd")
        if shell in ("cmd", "cmd.exe"):
            return [shell, "/c", job.run or ""]
        if shell.lower().startswith(("powershell", "pwsh")):
            return [shell, "-NoProfile", "-Command", job.run or ""]
        # one process: the shell runs the wrapper and the command
        if os.path.basename(shell) in POSIX_SHELLS:
            return [
                shell,
                "-c",
                _run_wrapper(),
                shell,
                job.run or "",
                os.path.abspath(log_path),
                str(job_cwd(job, base)),
            ]
        return [shell, "-c", job.run or ""]
    if job.kind == "script":
        script = str((base / (job.script or "")).resolve())
        prefix = interpreter_argv(script, job.interpreter, python=sys.executable) or []
        return [*prefix, script, *(str(a) for a in job.args)]
    notebook = str((base / (job.notebook or "")).resolve())
    executed = str(log_path.resolve().with_suffix(".ipynb"))
    import json

    return [
        sys.executable,
        "-m",
        "ccspec.notebook",
        notebook,
        executed,
        json.dumps(dict(job.parameters)),
        job.kernel or "",
    ]
