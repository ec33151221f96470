"""The engine: executes a plan. Called by `ccspec apply` (and the reconciler).

    run()
      attach          attempts an earlier runner left become events (never launched twice)
      loop:
        observe       what the targets post (ccspec.targets.base.TargetEvent: this machine's
                      LocalBatch from its pidfds, remote hosts' worker threads), signals, the clock
        step          the scheduler (ccspec.scheduler) turns each event into commands
        act           render at launch, record the intent; cancel; record ends
        record        all a pass records is one transaction (StateStore.batch), committed
                      before its launches are submitted (this machine's as one batch);
                      handles and ends ride along with it, or are flushed once they have
                      waited FLUSH_AFTER

Every target is used through the one batch protocol (ccspec.targets.base.Target) and speaks
the same events, so local and remote attempts take one path through observe and re-attach.
The scheduler decides (readiness, slots, retries, timeouts, fan-out, skipping, cancellation);
this module does the I/O and keeps the views reporters read. The loop sleeps until the next
event or deadline, never in a fixed polling cycle. One job's failure is a value recorded in
the state store, not an exception that stops the loop.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ccspec import engine_act
from ccspec import scheduler_types as ev
from ccspec.clock import Clock, SystemClock
from ccspec.engine_local import command, job_cwd, run_wrapper
from ccspec.engine_observe import Observed, translate
from ccspec.engine_views import JobView, Outcome, OutputsOf, initial_views
from ccspec.fanout import expand_jobs
from ccspec.fingerprint import Facts, Fingerprint
from ccspec.logfile import mine_log
from ccspec.planner import Action, Plan
from ccspec.progress import LogMiner
from ccspec.redact import redactor_for
from ccspec.scheduler import Scheduler
from ccspec.slots import LOCAL_POOL, SlotLedger, pool_key
from ccspec.spec.resolve import resolve_at_launch, upstream_context
from ccspec.spec.resolved import ResolvedJob, ResolvedWorkflow
from ccspec.state.store import LeaseLost, RecordedJob, StateStore
from ccspec.states import FINAL, JobState
from ccspec.targets.base import Launch, StatusChanged, TargetEvent, Tracked
from ccspec.targets.local_batch import LocalBatch
from ccspec.usage import Usage

if TYPE_CHECKING:  # imported where remote hosts are used: a local run does without them
    from ccspec.engine_remote import RemoteHosts

__all__ = ["Engine", "JobView", "Outcome", "command", "job_cwd"]

PROGRESS_EVERY = 0.5  # seconds between log reads of running jobs
FLUSH_AFTER = 0.2  # seconds a deferred state write may wait for the next commit
LEASE_TTL = 15.0

_run_wrapper = run_wrapper  # the name tests and the launcher's benchmarks import

Reporter = Callable[[str, JobView | None], None]  # (event, view) -> None


@dataclass
class Run:
    """An attempt under way: what the engine needs to follow it."""

    job: str
    number: int  # the scheduler's number of the launch
    attempt_id: int
    remote: bool
    run_dir: Path | None
    log_path: Path | None
    handle: str | None = None
    attached: bool = False  # a local process another runner started: polled, no exit event
    since: float | None = None  # wall time of its launch (re-attached ones: when recorded)
    mine_at: float = 0.0  # monotonic time of the next read of its log for progress
    miner: LogMiner | None = None
    usage: Usage | None = None  # a remote attempt's, reported with its end

    def tracked(self) -> Tracked:
        """The attempt as its target follows it."""
        log_path = self.log_path or Path(".")
        return Tracked(self.attempt_id, self.handle, str(self.run_dir), log_path, self.since or 0.0)


def slot_limits(workflow: ResolvedWorkflow, local: int) -> dict[str, int]:
    """Slots of the pools only this run uses: a local host's own `max_jobs`."""
    return {
        _own_pool(name): host.max_jobs
        for name, host in workflow.hosts.items()
        if host.type == "local" and host.max_jobs is not None
    }


def shared_limits(workflow: ResolvedWorkflow, local: int) -> dict[str, int]:
    """Slots of the pools shared with the process's other runs (ccspec.slots): `-j` for this
    machine (every local-type host), each remote host's job slots."""
    limits = {LOCAL_POOL: local}
    for host in workflow.hosts.values():
        if host.type != "local":
            # the remote targets' modules: imported only by a run that has a remote host
            from ccspec.targets.hosts import job_slots

            key, slots = pool_key(host), job_slots(host, local)
            limits[key] = min(limits.get(key, slots), slots)  # two names for one host
    return limits


def _own_pool(host_name: str) -> str:
    return f"@{host_name}"  # never a shared pool's name (ccspec.slots.pool_key)


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
        clock: Clock | None = None,
        slots: SlotLedger | None = None,
    ) -> None:
        """`slots`: the ledger of the process's shared pools (one of its own if None)."""
        self.workflow, self.plan, self.store = workflow, plan, store
        self.state_dir = state_dir
        self.limit = max(1, jobs)
        self.report = reporter
        self.lease = lease
        self.clock: Clock = clock or SystemClock()
        self.events: queue.SimpleQueue[Observed] = queue.SimpleQueue()
        # this machine's exits come as StatusChanged events from `self.local.wait`, in this
        # thread: no wake-up is needed
        self.local = LocalBatch(post=self.events.put, state_dir=state_dir)
        self.to_submit: list[Launch] = []  # local launches of this pass, submitted as a batch
        # remote hosts' launches and cancels of this pass, handed over after its commit
        self.to_hand: list[Callable[[], None]] = []
        self.jobs: dict[str, ResolvedJob] = dict(workflow.jobs)
        self.fingerprints: dict[str, str] = {k: v.value for k, v in (fingerprints or {}).items()}
        self.planned = dict(fingerprints or {})  # reused at launch when nothing it hashed moved
        self.facts = facts or Facts()
        # the environment every local job starts from, read once (os.environ decodes on every access)
        self.base_env = dict(os.environ)
        # Secrets are masked in what the engine records and reports (messages and reasons in
        # the views too, outputs only in the store). The views keep real outputs: a job that
        # needs them renders its templates from them during this run.
        self.redactor = redactor_for(workflow.vars, workflow.spec.secrets, environ=self.base_env)
        self.logs = state_dir / "logs" / workflow.name  # logs/WF/JOB/N.log
        self.logs_abs = os.path.abspath(self.logs)  # for local launches, asked once
        self.lost: LeaseLost | None = None
        self.handed_over = False
        self.runs: dict[str, Run] = {}  # job id -> its attempt under way
        self.by_attempt: dict[int, Run] = {}  # the same, by attempt id (what targets report)
        self.remote: RemoteHosts | None = None
        self.removed = {j.id: j for j in plan.jobs if j.action is Action.REMOVED}
        self.kept: set[str] = set()  # removed jobs still out there: not forgotten yet
        self.next_lease = self.clock.monotonic() + LEASE_TTL / 3
        recorded = recorded if recorded is not None else store.recorded_jobs(workflow.name)
        last = store.last_attempts(workflow.name)
        self.views = initial_views(plan, self.jobs, recorded, last)
        tasks = [self.task(self.jobs[v.id], v) for v in self.views.values()]
        own, shared = slot_limits(workflow, self.limit), shared_limits(workflow, self.limit)
        # a run of its own (apply) keeps every pool in its scheduler; runs that share the
        # process's slots (watch) take the shared pools' slots through their seat
        self.seat = slots.seat(workflow.name, shared, self.local.wake) if slots else None
        self.scheduler = Scheduler(tasks, own if self.seat else {**own, **shared}, self.seat)

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> Outcome:
        from ccspec.engine_attach import attach

        try:
            self.feed(attach(self))
            if self.seat is not None:  # carried slots not re-attached: their jobs ended
                self.seat.ledger.drop_carried(self.workflow.name)
            # jobs that left the spec are forgotten, but for those still running: followed until they end
            gone = [i for i in self.removed if i not in self.views and i not in self.kept]
            if gone:
                self.store.forget_jobs(self.workflow.name, gone)
            self.feed([ev.Start()])
            while not self.scheduler.done:
                self.wait()
                self.feed([*self.observed(), ev.Tick()])
                self.periodic()
        finally:
            # whatever ended the run, its slots go to the other runs; handed over, its
            # running jobs' slots wait for the next run of the workflow
            if self.seat is not None:
                self.seat.close(carry=self.handed_over)
            if self.remote is not None:
                self.remote.close()
            self.local.close()
            self.store.flush()
        self.report("finished", None)
        return Outcome(self.views, self.scheduler.stopping, self.lost)

    def wait(self) -> None:
        """Until an event or the next deadline; deferred writes are flushed before a sleep."""
        self.local.wait(0)  # exits that already happened: handled with no commit between
        if not self.events.empty():
            return
        now = self.clock.monotonic()
        deadline = self.scheduler.next_deadline()
        timeout = PROGRESS_EVERY if self.runs else 1.0
        if deadline is not None:
            timeout = max(0.0, min(timeout, deadline - now))
        age = self.store.pending_age()
        if age is not None and age >= FLUSH_AFTER:
            self.store.flush()
        elif age is not None:
            timeout = min(timeout, FLUSH_AFTER - age)
        self.report("idle", None)  # reporters write out what they gathered before a sleep
        self.local.make_prepared()  # run folders of ready jobs, while the running ones run
        self.local.wait(timeout)

    def observed(self) -> list[ev.Event]:
        out: list[ev.Event] = []
        while True:
            try:
                item = self.events.get_nowait()
            except queue.Empty:
                return out
            out.extend(translate(self, item))

    def feed(self, events: list[ev.Event]) -> None:
        """Step the scheduler through the events and act on its commands; what acting learns
        (a launch taken or refused, a fan-out rendered) is stepped in turn. All a round
        records (launch intents, ends, final states) is one transaction, committed before any
        of its launches reaches a target: this machine's as one batch, then the remote hosts'
        calls in the order made. What the targets answer is the next round."""
        pending = list(reversed(events))
        while pending or self.to_submit or self.to_hand:
            with self.store.batch():
                while pending:
                    commands = self.scheduler.step(pending.pop(), self.clock.monotonic())
                    follow: list[ev.Event] = []
                    for command_ in commands:
                        follow.extend(self.act(command_))
                    pending.extend(reversed(follow))
            pending = list(reversed(self.submit()))

    def submit(self) -> list[ev.Event]:
        """Hand the round's recorded launches to their targets; this machine's answers."""
        from ccspec.engine_observe import submitted

        calls, self.to_hand = self.to_hand, []
        for call in calls:
            call()
        if calls and self.remote is not None:
            self.remote.flush()
        launches, self.to_submit = self.to_submit, []
        events: list[ev.Event] = []
        for answer in self.local.submit(launches) if launches else ():
            events.extend(submitted(self, answer))
        return events

    def post(self, event: TargetEvent) -> None:
        """What a remote host's worker thread learnt; safe from any thread."""
        self.events.put(event)
        self.local.wake()

    def hosts(self) -> RemoteHosts:
        if self.remote is None:
            from ccspec.engine_remote import RemoteHosts

            self.remote = RemoteHosts(self.workflow.hosts, self.post)
        return self.remote

    def handover(self) -> None:
        """Stop launching and return soon, leaving running jobs out there: the next engine
        (planned from a newer spec) re-attaches to them. Safe from any thread."""
        self.handed_over = True
        self.events.put(ev.HandOver())
        self.local.wake()

    def interrupt(self, force: bool = False) -> None:
        """Called from a signal handler: cancel running jobs (force: kill them now)."""
        self.events.put(ev.Interrupt(force))
        self.local.wake()

    def wake(self) -> None:
        """Look at the clock again now (e.g. a test moved its injected clock)."""
        self.local.wake()

    def task(self, job: ResolvedJob, view: JobView) -> ev.Task:
        host = self.workflow.hosts.get(job.host)
        remote = host is not None and host.type != "local"
        return ev.Task(
            job.id,
            tuple(job.needs),
            self.pools(job.host),
            job.retries,
            job.timeout or None,
            job.host,
            remote=remote,
            fanout=job.fanout_pending,
            launches=view.attempt,
            state=view.state if view.state in FINAL else JobState.PENDING,
        )

    def pools(self, host_name: str) -> tuple[str, ...]:
        host = self.workflow.hosts.get(host_name)
        if host is None or host.type == "local":
            extra = host is not None and host.max_jobs is not None
            return (LOCAL_POOL, _own_pool(host_name)) if extra else (LOCAL_POOL,)
        return (pool_key(host),)

    # -- act: the scheduler's commands ------------------------------------------------------

    def act(self, command_: ev.Command) -> list[ev.Event]:
        if isinstance(command_, ev.Launch):
            return engine_act.launch(self, command_)
        if isinstance(command_, ev.Finish):
            engine_act.finish(self, command_)
        elif isinstance(command_, ev.Settle):
            engine_act.settle(self, command_)
        elif isinstance(command_, ev.Retry):
            view = self.views[command_.job]
            view.state, view.reason = JobState.PENDING, self.masked(command_.reason)
            self.report("retrying", view)
        elif isinstance(command_, ev.Cancel):
            self.cancel(command_)
        elif isinstance(command_, ev.Prepare):
            self.prepare(command_.job)
        elif isinstance(command_, ev.Expand):
            return self.expand(command_.job)
        return []

    def cancel(self, command_: ev.Cancel) -> None:
        """TERM (or KILL) the attempt on its host; remote kills are confirmed by a later poll."""
        run = self.runs.get(command_.job)
        if run is None or run.number != command_.number:
            return
        if run.remote:  # after the round's launches: it may be one of them
            host = self.views[run.job].host
            self.to_hand.append(lambda: self.hosts().cancel(host, run.attempt_id, command_.force))
        elif run.handle and run.run_dir:
            self.local.cancel([run.tracked()], command_.force)

    def prepare(self, job_id: str) -> None:
        """A ready local job's run folder is made ahead while others run."""
        job, view = self.jobs.get(job_id), self.views.get(job_id)
        if job is None or view is None:
            return
        host = self.workflow.hosts.get(job.host)
        if host is not None and host.type == "local":
            self.local.prepare(self.local_run_dir(job_id, view.attempt + 1))

    def local_run_dir(self, job_id: str, number: int) -> Path:
        """A local attempt's run folder, absolute: the path its launch uses and the one made
        ahead for it must be the same."""
        return Path(self.logs_abs, job_id, str(number))

    def expand(self, job_id: str) -> list[ev.Event]:
        """Replace a pending fan-out by its jobs, now that the matrix is known."""
        job, view = self.jobs[job_id], self.views[job_id]
        context = upstream_context(self.workflow, job, OutputsOf(self.views))
        members, problems = resolve_at_launch(self.workflow, job, context)
        if problems:
            return [ev.CannotLaunch(job_id, "; ".join(problems))]
        ids = tuple(m.id for m in members)
        self.workflow = replace(self.workflow, groups={**self.workflow.groups, view.name: ids})
        self.jobs = expand_jobs(self.jobs, job_id, members)
        del self.views[job_id]
        recorded = self.store.recorded_jobs(self.workflow.name)
        tasks = []
        for member in members:
            rec = recorded.get(member.id)
            attempts = rec.attempts if rec else 0
            new = JobView(
                member.id,
                member.name,
                member.host,
                JobState.PENDING,
                Action.CREATE,
                attempt=attempts,
            )
            self.views[member.id] = new
            tasks.append(self.task(member, new))
        self.report("fanout", None)
        return [ev.Expanded(job_id, tuple(tasks))]

    # -- periodic work ----------------------------------------------------------------------

    def periodic(self) -> None:
        """Log mining for progress, polls of attached local processes, the lease."""
        now = self.clock.monotonic()
        attached: list[Tracked] = []
        for run in list(self.runs.values()):
            view = self.views.get(run.job)
            if view is None:
                continue
            if now >= run.mine_at and self.mine(run):  # twice a second, not on every event
                outputs = self.redactor.value(view.outputs)
                self.store.update_progress(run.attempt_id, view.progress, view.message, outputs)
                self.report("progress", view)
            if run.attached and run.run_dir:  # not our child: no exit event
                attached.append(run.tracked())
        if attached:
            ended: list[ev.Event] = []
            for attempt_id, status in self.local.poll(attached).items():
                if status is not None and status.state in FINAL:
                    self.by_attempt[attempt_id].attached = False
                    ended.extend(translate(self, StatusChanged(attempt_id, status)))
            self.feed(ended)
        if self.lease and now >= self.next_lease:
            if not self.store.renew_lease(self.workflow.name, self.lease, LEASE_TTL):
                holder = self.store.lease_holder(self.workflow.name)
                self.lose_lease(LeaseLost(self.workflow.name, holder))
            self.next_lease = now + LEASE_TTL / 3
        self.report("tick", None)

    def lose_lease(self, lost: LeaseLost) -> None:
        """Another apply took the workflow over (this one did not renew its lease in time):
        launch nothing more and leave the running jobs to it; it follows them."""
        self.lost = lost
        self.feed([ev.LeaseLost()])

    def mine(self, run: Run, *, final: bool = False) -> bool:
        run.mine_at = self.clock.monotonic() + PROGRESS_EVERY
        if run.miner is None or run.log_path is None:
            return False
        changed = mine_log(run.miner, run.log_path, final=final)  # in bounded chunks
        view = self.views.get(run.job)
        if changed and view is not None:
            view.progress, view.message = run.miner.progress, self.masked(run.miner.message)
            view.outputs = dict(run.miner.outputs)
        return changed

    def masked(self, text: str | None) -> str | None:
        return text if text is None or not self.redactor else self.redactor.text(text)
