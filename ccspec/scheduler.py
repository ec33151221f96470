"""The scheduler: which job runs when, as a pure state machine. The engine drives it.

    step(event, now) -> [commands]

It owns readiness (needs met, topological order), slots per pool, retries and their backoff,
timeouts and the TERM -> KILL grace, the wait for a remote host to confirm a forced kill,
fan-out (the engine renders the members and hands them in), skipping the descendants of a
failure, cancellation and hand-over.

A launch a target refuses ends that attempt as failed. A temporary refusal (the host could
not be reached, a command timed out) has been sent again by the host's worker already, as
the same attempt (its claim makes that safe: ccspec.targets.claims); when it still reaches
the scheduler it is a failure like any other, which the job's `retries` may retry after
their backoff. A new attempt is not sent on its own: a refusal whose answer was lost may
have started the job. A permanent refusal (a partition that does not exist, a key the host
refuses, a program that cannot start) fails the job at once, retries unspent: the same
launch would be refused again, so retrying is for the user to do once the spec or host is
fixed.

It does no I/O and reads no clock: `now` is the engine's monotonic time, so tests drive it
with a fake one. Events and commands live in
ccspec.scheduler_types; the engine turns target results into events and commands into target
calls and state-store writes.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from ccspec.scheduler_types import (
    Attached,
    Cancel,
    CannotLaunch,
    Command,
    Ended,
    Event,
    Expand,
    Expanded,
    Finish,
    HandOver,
    Interrupt,
    Launch,
    LaunchAccepted,
    LaunchRefused,
    LeaseLost,
    Prepare,
    Retry,
    Settle,
    Start,
    StateSeen,
    Task,
    Tick,
)
from ccspec.states import FINAL, JobState

if TYPE_CHECKING:
    from ccspec.slots import Seat

__all__ = ["KILL_GRACE", "REMOTE_CONFIRM", "Phase", "Scheduler", "backoff"]

KILL_GRACE = 5.0  # seconds between TERM and KILL
REMOTE_CONFIRM = 30.0  # seconds a host has to confirm a forced kill before it is recorded anyway
RETRYABLE = frozenset({JobState.FAILED, JobState.TIMED_OUT, JobState.LOST})


def backoff(count: int) -> float:
    """Seconds before the `count`th launch again of a job (1, 2, ...)."""
    return min(30.0, 0.5 * 2.0 ** (count - 1))


class Phase(Enum):
    WAITING = "waiting"  # a job it needs has not succeeded yet
    READY = "ready"  # needs met: waits for its turn and a slot
    EXPANDING = "expanding"  # a fan-out the engine is rendering into its members
    LAUNCHING = "launching"  # Launch sent, the host has not taken it yet
    QUEUED = "queued"  # in the host's scheduler queue
    RUNNING = "running"
    BACKOFF = "backoff"  # waits for its retry's delay to pass
    DONE = "done"


ACTIVE = frozenset({Phase.LAUNCHING, Phase.QUEUED, Phase.RUNNING})
NOT_STARTED = frozenset({Phase.WAITING, Phase.READY, Phase.BACKOFF, Phase.EXPANDING})


@dataclass
class _Job:
    task: Task
    position: float
    phase: Phase = Phase.WAITING
    state: JobState = JobState.PENDING
    number: int = 0  # the number of its latest launch
    waiting: int = 0  # needs not yet succeeded
    retries_left: int = 0
    children: list[str] = field(default_factory=list)
    held: tuple[str, ...] = ()  # slot pools it holds
    deadline: float | None = None
    kill_at: float | None = None
    retry_at: float | None = None
    killing: JobState | None = None  # the state to record once the killed attempt ends
    kill_reason: str | None = None
    forced: bool = False  # a forced kill of a remote attempt awaits its host's confirmation


class Scheduler:
    """Jobs and their pools' limits in; commands out. `limits`: slots per pool name. A pool
    not named is shared with other schedulers through `seat` (ccspec.slots: asked before a
    launch, given back at its end, woken when a slot is reserved for it), or has no limit."""

    def __init__(
        self, tasks: Iterable[Task], limits: Mapping[str, int], seat: Seat | None = None
    ) -> None:
        self._limits = dict(limits)
        self._seat = seat
        self._busy: dict[str, int] = {}
        self._parked: dict[str, list[tuple[float, str]]] = {}  # pool -> ready jobs waiting for it
        self._ready: list[tuple[float, str]] = []
        self._jobs: dict[str, _Job] = {}
        self._active: dict[str, _Job] = {}
        self._backoff: dict[str, _Job] = {}
        self._unfinished = 0
        self._started = self._stopping = self._handing_over = False
        for position, task in enumerate(tasks):
            self._add(task, float(position))
        for job in self._jobs.values():
            for need in job.task.needs:
                if need in self._jobs:
                    self._jobs[need].children.append(job.task.id)
        for job in self._jobs.values():
            if job.phase is Phase.WAITING:
                job.waiting = sum(1 for n in job.task.needs if self._unmet(n))
                if job.waiting == 0:
                    job.phase = Phase.READY
                    heapq.heappush(self._ready, (job.position, job.task.id))

    # -- queries -----------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Nothing left to do here: every job ended, or the run was handed over."""
        return self._unfinished == 0 or self._handing_over

    @property
    def stopping(self) -> bool:
        return self._stopping

    def phase(self, job: str) -> Phase | None:
        found = self._jobs.get(job)
        return found.phase if found is not None else None

    def killing(self, job: str) -> bool:
        """A kill of the job's launch is under way (its end is recorded as the kill's)."""
        found = self._jobs.get(job)
        return found is not None and found.killing is not None

    def next_deadline(self) -> float | None:
        """The earliest time a Tick has something to do (a timeout, a kill, a retry)."""
        times = [
            t
            for j in (*self._active.values(), *self._backoff.values())
            for t in (j.deadline, j.kill_at, j.retry_at)
            if t is not None
        ]
        return min(times) if times else None

    # -- the step ------------------------------------------------------------------------

    def step(self, event: Event, now: float) -> list[Command]:
        out: list[Command] = []
        if isinstance(event, Tick):
            self._timers(now, out)
        elif isinstance(event, Start):
            self._start(out)
        elif isinstance(event, Ended):
            self._ended(event, now, out)
        elif isinstance(event, LaunchAccepted):
            self._accepted(event, out)
        elif isinstance(event, StateSeen):
            self._seen(event, now)
        elif isinstance(event, LaunchRefused):
            self._refused(event, now, out)
        elif isinstance(event, Attached):
            self._attached(event, now)
        elif isinstance(event, Expanded):
            self._expanded(event, out)
        elif isinstance(event, CannotLaunch):
            job = self._jobs.get(event.job)
            if job is not None and job.phase in (Phase.EXPANDING, Phase.LAUNCHING):
                self._settle(job, JobState.FAILED, event.reason, True, out)
        elif isinstance(event, Interrupt):
            self._interrupt(event.force or self._stopping, now, out)
        elif isinstance(event, (HandOver, LeaseLost)):
            self._handing_over = True
        self._fill(now, out)
        return out

    def _start(self, out: list[Command]) -> None:
        self._started = True
        for job in list(self._jobs.values()):
            if job.phase is Phase.READY and not job.task.fanout:
                out.append(Prepare(job.task.id))
            elif job.phase is Phase.DONE and job.state is not JobState.SUCCEEDED:
                self._skip_descendants(job, out)  # a need that already failed

    # -- launching -----------------------------------------------------------------------

    def _fill(self, now: float, out: list[Command]) -> None:
        """Launch ready jobs in topological order while their pools have slots."""
        if not self._started:
            return
        if self._stopping or self._handing_over:
            if self._seat is not None:
                self._seat.spare()
            return
        granted = self._seat.granted() if self._seat is not None else {}
        if granted:  # slots of shared pools reserved for this run
            for pool, count in granted.items():
                parked = self._parked.get(pool, [])
                for _ in range(min(count, len(parked))):
                    heapq.heappush(self._ready, heapq.heappop(parked))
        self._launch_ready(now, out)
        if self._seat is not None:
            self._seat.spare(granted)  # reserved slots no ready job took go to the next run
            for pool, parked in self._parked.items():
                if parked and pool not in self._limits:
                    self._seat.want(pool, len(parked))  # queue for the next free slot

    def _launch_ready(self, now: float, out: list[Command]) -> None:
        while self._ready:
            entry = heapq.heappop(self._ready)
            job = self._jobs.get(entry[1])
            if job is None or job.phase is not Phase.READY:
                continue
            if job.task.fanout:
                job.phase = Phase.EXPANDING
                out.append(Expand(job.task.id))
                continue
            full = next((p for p in job.task.pools if self._is_full(p)), None)
            if full is None:
                full = self._take_shared(job.task.pools)
            if full is not None:  # waits for a job of that pool to end
                heapq.heappush(self._parked.setdefault(full, []), entry)
                continue
            self._hold(job)
            job.phase, job.number = Phase.LAUNCHING, job.number + 1
            job.deadline = now + job.task.timeout if job.task.timeout else None
            job.killing = job.kill_reason = None
            out.append(Launch(job.task.id, job.number))

    def _take_shared(self, pools: tuple[str, ...]) -> str | None:
        """Take a slot of each shared pool; the first that has none (those taken are given
        back), or None."""
        if self._seat is None:
            return None
        taken: list[str] = []
        for pool in pools:
            if pool in self._limits:
                continue
            if not self._seat.take(pool):
                for got in taken:
                    self._seat.give(got)
                return pool
            taken.append(pool)
        return None

    def _is_full(self, pool: str) -> bool:
        limit = self._limits.get(pool)
        return limit is not None and self._busy.get(pool, 0) >= limit

    def _hold(self, job: _Job, *, attached: bool = False) -> None:
        """The job holds its pools' slots (its shared ones are taken already, unless it is
        `attached`: an earlier run's attempt holds them whatever the limits)."""
        job.held = job.task.pools
        for pool in job.held:
            self._busy[pool] = self._busy.get(pool, 0) + 1
            if attached and self._seat is not None and pool not in self._limits:
                self._seat.hold(pool)
        self._active[job.task.id] = job

    def _release(self, job: _Job) -> None:
        self._active.pop(job.task.id, None)
        for pool in job.held:
            self._busy[pool] -= 1
            if self._seat is not None and pool not in self._limits:
                self._seat.give(pool)  # a shared slot's next holder is the ledger's choice
                continue
            parked = self._parked.get(pool)
            if parked:  # one freed slot lets one parked job try again
                heapq.heappush(self._ready, heapq.heappop(parked))
        job.held = ()
        job.deadline = job.kill_at = None
        job.forced = False

    def _current(self, job_id: str, number: int) -> _Job | None:
        """The job, if `number` is its latest launch and that is still under way."""
        job = self._jobs.get(job_id)
        if job is None or job.number != number or job.phase not in ACTIVE:
            return None
        return job

    def _accepted(self, event: LaunchAccepted, out: list[Command]) -> None:
        job = self._current(event.job, event.number)
        if job is None or job.phase is not Phase.LAUNCHING:
            return
        job.phase = Phase.QUEUED if event.queued else Phase.RUNNING
        job.deadline = None if event.queued else job.deadline  # a queued one's: see `_seen`
        if job.killing is not None:  # cancelled while the launch was under way
            out.append(Cancel(job.task.id, job.number, False))

    def _seen(self, event: StateSeen, now: float) -> None:
        """Queued or running, by its host; a timeout counts from the start, not the queue."""
        job = self._current(event.job, event.number)
        if job is None or event.state not in (JobState.QUEUED, JobState.RUNNING):
            return
        if job.phase is Phase.QUEUED and event.state is JobState.RUNNING and job.task.timeout:
            job.deadline = None if job.killing else now + job.task.timeout
        job.phase = Phase.QUEUED if event.state is JobState.QUEUED else Phase.RUNNING

    def _refused(self, event: LaunchRefused, now: float, out: list[Command]) -> None:
        job = self._current(event.job, event.number)
        if job is None or job.phase is not Phase.LAUNCHING:
            return
        if job.killing is not None:  # cancelled meanwhile: it ends as that
            self._end_attempt(job, job.killing, None, job.kill_reason, None, now, out)
            return
        if event.temporary:
            self._end_attempt(job, JobState.FAILED, None, event.reason, None, now, out)
            return
        self._release(job)
        out.append(Finish(job.task.id, job.number, JobState.FAILED, None, event.reason, None))
        self._settle(job, JobState.FAILED, event.reason, False, out)

    def _back_off(self, job: _Job, now: float, delay: float, why: str, out: list[Command]) -> None:
        job.phase, job.state, job.retry_at = Phase.BACKOFF, JobState.PENDING, now + delay
        self._backoff[job.task.id] = job
        out.append(Retry(job.task.id, delay, f"{why} in {delay:g}s"))

    def _attached(self, event: Attached, now: float) -> None:
        """An attempt an earlier runner launched: it holds its slots whatever the limits."""
        job = self._jobs.get(event.job)
        if job is None and event.task is not None:
            job = self._add(event.task, float(len(self._jobs)))
        if job is None or job.phase not in NOT_STARTED:
            return
        self._backoff.pop(job.task.id, None)
        job.number = event.number
        job.phase = Phase.QUEUED if event.queued else Phase.RUNNING
        job.state = JobState.QUEUED if event.queued else JobState.RUNNING
        if job.task.timeout and not event.queued:  # what it ran before counts
            job.deadline = now + max(0.0, job.task.timeout - event.ran)
        self._hold(job, attached=True)

    def _expanded(self, event: Expanded, out: list[Command]) -> None:
        """Replace a fan-out by its members; jobs that needed it now need all of them."""
        job = self._jobs.get(event.job)
        if job is None or job.phase is not Phase.EXPANDING:
            return
        del self._jobs[event.job]
        self._unfinished -= 1
        count = len(event.members)
        for i, task in enumerate(event.members):
            member = self._add(task, job.position + (i + 1) / (count + 1))
            member.children = list(job.children)
            member.waiting = sum(1 for n in task.needs if self._unmet(n))
            if member.waiting == 0:
                self._make_ready(member, out)
        for child_id in job.children:
            child = self._jobs.get(child_id)
            if child is not None:
                child.waiting += count - 1
                if child.waiting == 0 and child.phase is Phase.WAITING:
                    self._make_ready(child, out)

    # -- endings ---------------------------------------------------------------------------

    def _ended(self, event: Ended, now: float, out: list[Command]) -> None:
        job = self._current(event.job, event.number)
        if job is None:
            return
        state, reason = event.state, event.reason
        if job.killing is not None:  # ccspec stopped it: recorded as why
            state, reason = job.killing, job.kill_reason
        self._end_attempt(job, state, event.exit_code, reason, event.finished, now, out)

    def _end_attempt(
        self,
        job: _Job,
        state: JobState,
        code: int | None,
        reason: str | None,
        finished: float | None,
        now: float,
        out: list[Command],
    ) -> None:
        self._release(job)
        out.append(Finish(job.task.id, job.number, state, code, reason, finished))
        job.killing = job.kill_reason = None
        if state in RETRYABLE and job.retries_left > 0 and not self._stopping:
            job.retries_left -= 1
            used = job.task.retries - job.retries_left
            self._back_off(job, now, backoff(used), f"{reason}; retry {used}", out)
            return
        self._settle(job, state, reason, False, out)

    def _settle(
        self, job: _Job, state: JobState, reason: str | None, record: bool, out: list[Command]
    ) -> None:
        """The job's final state; `record`: no attempt's end already records it."""
        if job.phase is Phase.DONE:
            return
        if job.held:
            self._release(job)
        self._backoff.pop(job.task.id, None)
        job.phase, job.state, job.retry_at = Phase.DONE, state, None
        self._unfinished -= 1
        out.append(Settle(job.task.id, state, reason, record))
        if state is JobState.SUCCEEDED:
            for child_id in job.children:
                child = self._jobs.get(child_id)
                if child is not None:
                    child.waiting -= 1
                    if child.waiting == 0 and child.phase is Phase.WAITING:
                        self._make_ready(child, out)
        elif not self._stopping:  # when stopping, every pending job is cancelled instead
            self._skip_descendants(job, out)

    def _skip_descendants(self, failed: _Job, out: list[Command]) -> None:
        stack = list(failed.children)
        reason = f"{failed.task.id} {failed.state.value}"
        while stack:
            job = self._jobs.get(stack.pop())
            if job is None or job.phase not in NOT_STARTED:
                continue
            self._settle(job, JobState.SKIPPED, reason, True, out)

    def _make_ready(self, job: _Job, out: list[Command]) -> None:
        job.phase, job.retry_at = Phase.READY, None
        heapq.heappush(self._ready, (job.position, job.task.id))
        if not job.task.fanout:
            out.append(Prepare(job.task.id))

    # -- time ------------------------------------------------------------------------------

    def _timers(self, now: float, out: list[Command]) -> None:
        for job in [j for j in self._backoff.values() if j.retry_at is not None]:
            if job.retry_at is not None and job.retry_at <= now:
                del self._backoff[job.task.id]
                self._make_ready(job, out)
        for job in list(self._active.values()):
            if job.forced and job.kill_at is not None and now >= job.kill_at:
                assert job.killing is not None
                why = f"{job.kill_reason} ({job.task.host} did not confirm the kill)"
                self._end_attempt(job, job.killing, None, why, None, now, out)
            elif job.kill_at is not None and now >= job.kill_at:
                self._cancel(job, True, now, out)
            elif job.deadline is not None and now >= job.deadline and job.killing is None:
                timeout = job.task.timeout or 0.0
                self._kill(job, JobState.TIMED_OUT, f"timed out after {timeout:g}s", now, out)

    def _kill(
        self, job: _Job, state: JobState, reason: str, now: float, out: list[Command]
    ) -> None:
        job.killing, job.kill_reason = state, reason
        self._cancel(job, False, now, out)
        job.kill_at, job.deadline = now + KILL_GRACE, None

    def _cancel(self, job: _Job, force: bool, now: float, out: list[Command]) -> None:
        out.append(Cancel(job.task.id, job.number, force))
        if force:
            job.forced = job.task.remote
            job.kill_at = now + REMOTE_CONFIRM if job.task.remote else None

    def _interrupt(self, force: bool, now: float, out: list[Command]) -> None:
        self._stopping = True
        for job in list(self._jobs.values()):
            if job.phase in ACTIVE:
                if force:
                    job.killing, job.kill_reason = JobState.CANCELLED, "cancelled (forced)"
                    self._cancel(job, True, now, out)
                elif job.killing is None:
                    self._kill(job, JobState.CANCELLED, "cancelled", now, out)
            elif job.phase in NOT_STARTED:
                self._settle(job, JobState.CANCELLED, "cancelled before it started", True, out)

    def _add(self, task: Task, position: float) -> _Job:
        job = _Job(task, position, retries_left=task.retries, number=task.launches)
        if task.state in FINAL:
            job.phase, job.state = Phase.DONE, task.state
        else:
            self._unfinished += 1
        self._jobs[task.id] = job
        return job

    def _unmet(self, need: str) -> bool:
        found = self._jobs.get(need)
        return found is not None and found.state is not JobState.SUCCEEDED
