"""The scheduler (ccspec.scheduler) driven through `step` alone, with a fake clock and no
processes: readiness, slots, retries and backoff, timeouts and kills, fan-out, skipping,
cancellation and hand-over; then hypothesis state machines that check its invariants over
random event sequences."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ccspec.scheduler import KILL_GRACE, REMOTE_CONFIRM, Scheduler, backoff
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
    Prepare,
    Retry,
    Settle,
    Start,
    StateSeen,
    Task,
    Tick,
)
from ccspec.states import FINAL, JobState

OK, FAIL = JobState.SUCCEEDED, JobState.FAILED


class Driver:
    """A scheduler, a fake clock and everything it commanded."""

    def __init__(self, tasks: list[Task], limits: dict[str, int] | None = None) -> None:
        self.s = Scheduler(tasks, limits or {})
        self.now = 0.0
        self.log: list[Command] = []

    def step(self, event: Event) -> list[Command]:
        out = self.s.step(event, self.now)
        self.log.extend(out)
        return out

    def start(self) -> list[Command]:
        return self.step(Start())

    def tick(self, seconds: float = 0.0) -> list[Command]:
        self.now += seconds
        return self.step(Tick())

    def launches(self, out: list[Command]) -> list[Launch]:
        return [c for c in out if isinstance(c, Launch)]

    def run(self, launch: Launch) -> list[Command]:
        return self.step(LaunchAccepted(launch.job, launch.number))

    def end(self, launch: Launch, state: JobState = OK, code: int | None = 0) -> list[Command]:
        return self.step(Ended(launch.job, launch.number, state, code))

    def settled(self) -> dict[str, JobState]:
        return {c.job: c.state for c in self.log if isinstance(c, Settle)}


def chain(*ids: str) -> list[Task]:
    return [Task(j, needs=(ids[i - 1],) if i else ()) for i, j in enumerate(ids)]


def test_jobs_start_when_their_needs_succeed_in_order() -> None:
    d = Driver([Task("b", needs=("a",)), Task("a"), Task("c")])
    out = d.start()
    assert [launch.job for launch in d.launches(out)] == ["a", "c"]
    assert Prepare("a") in out and Prepare("b") not in out
    a = d.launches(out)[0]
    d.run(a)
    out = d.end(a)
    assert Settle("a", OK, None, False) in out
    assert [launch.job for launch in d.launches(out)] == ["b"]


def test_nothing_launches_before_start() -> None:
    d = Driver([Task("a")])
    assert d.tick() == []
    assert [launch.job for launch in d.launches(d.start())] == ["a"]


def test_a_pool_bounds_the_launches_and_a_freed_slot_starts_the_next() -> None:
    d = Driver([Task(f"j{i}", pools=("@local",)) for i in range(5)], {"@local": 2})
    first = d.launches(d.start())
    assert [launch.job for launch in first] == ["j0", "j1"]
    assert d.launches(d.tick(10)) == []
    d.run(first[0])
    nxt = d.launches(d.end(first[0]))
    assert [launch.job for launch in nxt] == ["j2"]


def test_a_job_holds_every_pool_of_its_host() -> None:
    tasks = [
        Task("a", pools=("@local", "box")),
        Task("b", pools=("@local", "box")),
        Task("c", pools=("@local",)),
    ]
    d = Driver(tasks, {"@local": 4, "box": 1})
    assert [launch.job for launch in d.launches(d.start())] == ["a", "c"]


def test_a_failure_is_retried_after_its_backoff_then_fails_for_good() -> None:
    d = Driver([Task("a", retries=2)])
    launch = d.launches(d.start())[0]
    d.run(launch)
    out = d.end(launch, FAIL, 1)
    assert Finish("a", 1, FAIL, 1, None, None) in out
    retry = next(c for c in out if isinstance(c, Retry))
    assert retry.delay == backoff(1) == 0.5
    assert d.launches(d.tick(0.4)) == []
    second = d.launches(d.tick(0.1))
    assert second == [Launch("a", 2)]
    d.run(second[0])
    out = d.end(second[0], FAIL, 1)
    assert next(c for c in out if isinstance(c, Retry)).delay == 1.0
    third = d.launches(d.tick(1.0))[0]
    d.run(third)
    out = d.end(third, FAIL, 1)
    assert Settle("a", FAIL, None, False) in out
    assert [c.number for c in d.log if isinstance(c, Launch)] == [1, 2, 3]


def test_backoff_is_capped() -> None:
    assert [backoff(n) for n in (1, 2, 3, 7, 20)] == [0.5, 1.0, 2.0, 30.0, 30.0]


def test_descendants_of_a_failure_are_skipped() -> None:
    d = Driver([*chain("a", "b", "c"), Task("x")])
    launches = d.launches(d.start())
    a = next(launch for launch in launches if launch.job == "a")
    d.run(a)
    d.end(a, FAIL, 3)
    assert d.settled() == {"a": FAIL, "b": JobState.SKIPPED, "c": JobState.SKIPPED}
    assert Settle("b", JobState.SKIPPED, "a failed", True) in d.log


def test_a_need_failed_before_the_run_skips_its_descendants() -> None:
    d = Driver([Task("a", state=JobState.FAILED), Task("b", needs=("a",))])
    d.start()
    assert d.settled() == {"b": JobState.SKIPPED}
    assert d.s.done


def test_a_timeout_terms_then_kills_after_the_grace() -> None:
    d = Driver([Task("a", timeout=3)])
    launch = d.launches(d.start())[0]
    d.run(launch)
    assert d.tick(2.9) == []
    assert d.tick(0.1) == [Cancel("a", 1, False)]
    assert d.tick(KILL_GRACE - 0.1) == []
    assert d.tick(0.1) == [Cancel("a", 1, True)]
    out = d.end(launch, FAIL, -9)
    assert Finish("a", 1, JobState.TIMED_OUT, -9, "timed out after 3s", None) in out
    assert d.settled() == {"a": JobState.TIMED_OUT}


def test_a_queued_jobs_timeout_counts_from_its_start_not_its_wait_in_the_queue() -> None:
    d = Driver([Task("a", host="hpc", remote=True, timeout=3)])
    launch = d.launches(d.start())[0]
    d.step(LaunchAccepted("a", 1, queued=True))
    assert d.tick(60) == []  # waiting in Slurm's queue for a minute: no timeout yet
    d.step(StateSeen("a", 1, JobState.RUNNING))
    assert d.tick(2.9) == []
    assert d.tick(0.1) == [Cancel("a", 1, False)]
    out = d.end(launch, FAIL, None)
    assert Finish("a", 1, JobState.TIMED_OUT, None, "timed out after 3s", None) in out


def test_a_remote_forced_kill_is_recorded_when_the_host_never_confirms() -> None:
    d = Driver([Task("a", host="far", remote=True)])
    launch = d.launches(d.start())[0]
    d.run(launch)
    assert d.step(Interrupt(force=True)) == [Cancel("a", 1, True)]
    assert d.tick(REMOTE_CONFIRM - 1) == []
    out = d.tick(1)
    why = "cancelled (forced) (far did not confirm the kill)"
    assert Finish("a", 1, JobState.CANCELLED, None, why, None) in out
    assert d.s.done


def test_an_interrupt_cancels_running_jobs_and_never_starts_the_rest() -> None:
    d = Driver(
        [Task("a", pools=("p",)), Task("b", pools=("p",)), Task("c", needs=("a",))], {"p": 1}
    )
    a = d.launches(d.start())[0]
    d.run(a)
    out = d.step(Interrupt())
    assert Cancel("a", 1, False) in out
    assert d.settled() == {"b": JobState.CANCELLED, "c": JobState.CANCELLED}
    assert d.launches(d.end(a, FAIL, -15)) == []  # the slot frees, nothing launches
    assert d.settled()["a"] is JobState.CANCELLED
    assert d.s.done


def test_a_second_interrupt_forces() -> None:
    d = Driver([Task("a")])
    a = d.launches(d.start())[0]
    d.run(a)
    d.step(Interrupt())
    assert d.step(Interrupt()) == [Cancel("a", 1, True)]


def test_a_job_cancelled_while_launching_is_cancelled_again_once_the_host_takes_it() -> None:
    d = Driver([Task("a", remote=True)])
    d.start()
    d.step(Interrupt())
    assert d.step(LaunchAccepted("a", 1, queued=True)) == [Cancel("a", 1, False)]


def test_a_hand_over_stops_launching_and_leaves_running_jobs() -> None:
    d = Driver([Task("a", pools=("p",)), Task("b", pools=("p",))], {"p": 1})
    a = d.launches(d.start())[0]
    d.run(a)
    assert d.step(HandOver()) == []
    assert d.s.done
    assert d.launches(d.end(a)) == []


def test_a_temporary_refusal_fails_the_attempt_and_the_jobs_retries_apply() -> None:
    """The worker sent the same attempt again already: the scheduler launches a new one only
    as one of the job's retries (a lost answer may have started the first)."""
    d = Driver([Task("a", retries=1), Task("b", needs=("a",))])
    d.start()
    out = d.step(LaunchRefused("a", 1, "host unreachable", temporary=True))
    assert Finish("a", 1, FAIL, None, "host unreachable", None) in out
    assert (
        next(c for c in out if isinstance(c, Retry)).reason == "host unreachable; retry 1 in 0.5s"
    )
    again = d.launches(d.tick(0.5))
    assert again == [Launch("a", 2)]
    d.step(LaunchRefused("a", 2, "host unreachable", temporary=True))
    assert d.settled() == {"a": FAIL, "b": JobState.SKIPPED}


def test_a_temporary_refusal_without_retries_fails_the_job() -> None:
    d = Driver([Task("a", retries=0)])
    d.start()
    out = d.step(LaunchRefused("a", 1, "busy", temporary=True))
    assert not any(isinstance(c, Retry) for c in out)
    assert d.settled() == {"a": FAIL}


def test_a_timed_out_job_with_retries_left_runs_again() -> None:
    d = Driver([Task("a", timeout=1, retries=1)])
    a = d.launches(d.start())[0]
    d.run(a)
    assert d.tick(1) == [Cancel("a", 1, False)]
    out = d.end(a, FAIL, -15)
    assert (
        next(c for c in out if isinstance(c, Retry)).reason == "timed out after 1s; retry 1 in 0.5s"
    )
    assert d.launches(d.tick(0.5)) == [Launch("a", 2)]


def test_a_permanent_refusal_fails_the_job() -> None:
    d = Driver([Task("a", retries=3), Task("b", needs=("a",))])
    d.start()
    out = d.step(LaunchRefused("a", 1, "no such partition", temporary=False))
    assert Settle("a", FAIL, "no such partition", False) in out
    assert d.settled() == {"a": FAIL, "b": JobState.SKIPPED}


def test_a_fan_out_is_replaced_by_its_members_and_its_children_wait_for_all() -> None:
    d = Driver([Task("src"), Task("fan", needs=("src",), fanout=True), Task("sum", needs=("fan",))])
    src = d.launches(d.start())[0]
    d.run(src)
    out = d.end(src)
    assert Expand("fan") in out
    members = (Task("fan-0", needs=("src",)), Task("fan-1", needs=("src",)))
    first = d.launches(d.step(Expanded("fan", members)))
    assert [launch.job for launch in first] == ["fan-0", "fan-1"]
    for launch in first:
        d.run(launch)
    assert d.launches(d.end(first[0])) == []
    assert [launch.job for launch in d.launches(d.end(first[1]))] == ["sum"]


def test_a_fan_out_that_cannot_render_fails() -> None:
    d = Driver([Task("fan", fanout=True), Task("sum", needs=("fan",))])
    d.start()
    d.step(CannotLaunch("fan", "undefined variable"))
    assert d.settled() == {"fan": FAIL, "sum": JobState.SKIPPED}


def test_an_attached_job_is_not_launched_again_and_holds_its_slot() -> None:
    d = Driver([Task("a", pools=("p",), launches=1), Task("b", pools=("p",))], {"p": 1})
    d.step(Attached("a", 1))
    assert d.launches(d.start()) == []
    out = d.step(Ended("a", 1, OK, 0))
    assert [launch.job for launch in d.launches(out)] == ["b"]


def test_an_attached_jobs_timeout_counts_what_it_ran_before() -> None:
    d = Driver([Task("a", timeout=3, launches=1), Task("b", timeout=3, launches=1)])
    d.step(Attached("a", 1, ran=2.0))
    d.step(Attached("b", 1, ran=9.0))  # over its timeout while no runner watched it
    d.start()
    assert d.tick(0.0) == [Cancel("b", 1, False)]
    assert d.tick(0.9) == []
    assert d.tick(0.1) == [Cancel("a", 1, False)]


def test_an_attached_job_that_left_the_spec_is_followed_until_it_ends() -> None:
    d = Driver([])
    d.step(Attached("gone", 4, task=Task("gone", launches=4)))
    d.start()
    assert not d.s.done
    d.step(Ended("gone", 4, FAIL, 1))
    assert d.settled() == {"gone": FAIL} and d.s.done


def test_an_event_about_an_older_launch_is_ignored() -> None:
    d = Driver([Task("a", retries=1)])
    a = d.launches(d.start())[0]
    d.run(a)
    d.end(a, FAIL, 1)
    second = d.launches(d.tick(1))[0]
    d.run(second)
    assert d.end(a, OK) == []
    assert d.s.phase("a") is not None and not d.s.done


def test_next_deadline_is_the_earliest_timer() -> None:
    d = Driver([Task("a", timeout=10), Task("b", retries=1)])
    a, b = d.launches(d.start())
    d.run(a)
    d.run(b)
    assert d.s.next_deadline() == 10
    d.now = 2
    d.end(b, FAIL, 1)
    assert d.s.next_deadline() == 2.5


# -- invariants over random event sequences ------------------------------------------------


class SchedulerMachine(RuleBasedStateMachine):
    """A random workflow (a DAG over two pools, some retries, timeouts and a fan-out) and
    random events from the hosts; the model follows the commands."""

    def __init__(self) -> None:
        super().__init__()
        self.d: Driver | None = None
        self.live: dict[str, Launch] = {}  # launched, not ended: job -> its launch
        self.seen: set[tuple[str, int]] = set()
        self.limits = {"p": 2, "q": 1}
        self.pools: dict[str, tuple[str, ...]] = {}
        self.retries: dict[str, int] = {}
        self.needs: dict[str, tuple[str, ...]] = {}
        self.expandable: list[str] = []
        self.cancelled = False
        self.ok_before_cancel: set[str] = set()

    @rule(data=st.data(), count=st.integers(1, 7))
    @precondition(lambda self: self.d is None)
    def build(self, data: st.DataObject, count: int) -> None:
        tasks = []
        for i in range(count):
            needs = tuple(
                f"j{k}" for k in range(i) if data.draw(st.booleans(), label=f"need {i}<-{k}")
            )
            pools = data.draw(st.sampled_from([("p",), ("q",), ("p", "q"), ()]))
            retries = data.draw(st.integers(0, 2))
            timeout = data.draw(st.sampled_from([None, 1.0, 5.0]))
            fanout = data.draw(st.booleans()) and i > 0
            remote = data.draw(st.booleans())
            task = Task(f"j{i}", needs, pools, retries, timeout, remote=remote, fanout=fanout)
            tasks.append(task)
            self.pools[task.id], self.retries[task.id], self.needs[task.id] = pools, retries, needs
        self.d = Driver(tasks, self.limits)
        self.absorb(self.d.start())

    def absorb(self, out: list[Command]) -> None:
        for c in out:
            if isinstance(c, Launch):
                assert not self.cancelled, "nothing launches once cancelled"
                assert (c.job, c.number) not in self.seen, "one launch per attempt"
                assert c.job not in self.live, "one launch of a job at a time"
                self.seen.add((c.job, c.number))
                self.live[c.job] = c
            elif isinstance(c, Finish):
                assert self.live.pop(c.job, None) is not None, "a finish ends a live launch"
            elif isinstance(c, Expand):
                self.expandable.append(c.job)
            elif isinstance(c, Settle) and c.state is not JobState.SKIPPED and c.job in self.live:
                raise AssertionError("settled while running")

    def step(self, event: Event) -> None:
        assert self.d is not None
        self.absorb(self.d.step(event))

    @rule(data=st.data(), state=st.sampled_from([OK, OK, FAIL, JobState.LOST]))
    @precondition(lambda self: bool(self.live))
    def end(self, data: st.DataObject, state: JobState) -> None:
        launch = self.live[data.draw(st.sampled_from(sorted(self.live)))]
        self.step(LaunchAccepted(launch.job, launch.number))
        self.step(Ended(launch.job, launch.number, state, 0 if state is OK else 1))

    @rule(data=st.data(), temporary=st.booleans())
    @precondition(lambda self: bool(self.live))
    def refuse(self, data: st.DataObject, temporary: bool) -> None:
        launch = self.live[data.draw(st.sampled_from(sorted(self.live)))]
        self.step(LaunchRefused(launch.job, launch.number, "busy", temporary))

    @rule(data=st.data(), count=st.integers(0, 3))
    @precondition(lambda self: bool(self.expandable))
    def expand(self, data: st.DataObject, count: int) -> None:
        job = self.expandable.pop(data.draw(st.integers(0, len(self.expandable) - 1)))
        members = tuple(Task(f"{job}-{i}", self.needs[job], self.pools[job]) for i in range(count))
        self.replace(job, members)
        self.step(Expanded(job, members))

    def replace(self, job: str, members: tuple[Task, ...]) -> None:
        for m in members:
            self.pools[m.id], self.retries[m.id], self.needs[m.id] = m.pools, 0, m.needs
        ids = tuple(m.id for m in members)
        for other, needs in self.needs.items():
            if job in needs:
                self.needs[other] = tuple(
                    n for need in needs for n in (ids if need == job else (need,))
                )

    @rule(seconds=st.sampled_from([0.1, 0.5, 2.0, 6.0, 40.0]))
    @precondition(lambda self: self.d is not None)
    def tick(self, seconds: float) -> None:
        assert self.d is not None
        self.d.now += seconds
        self.step(Tick())

    @rule(force=st.booleans())
    @precondition(lambda self: self.d is not None)
    def interrupt(self, force: bool) -> None:
        if not self.cancelled and self.d is not None:
            self.ok_before_cancel = {j for j, s in self.d.settled().items() if s is OK}
        self.cancelled = True
        self.step(Interrupt(force))

    @invariant()
    def slots_are_never_overcommitted(self) -> None:
        for pool, limit in self.limits.items():
            assert sum(1 for j in self.live if pool in self.pools[j]) <= limit

    @invariant()
    def retries_are_bounded(self) -> None:
        launches: dict[str, int] = {}
        for job, _ in self.seen:
            launches[job] = launches.get(job, 0) + 1
        for job, count in launches.items():
            assert count <= 1 + self.retries[job]

    @invariant()
    def descendants_of_a_failure_are_never_launched_after_it(self) -> None:
        if self.d is None:
            return
        failed: set[str] = set()
        for c in self.d.log:
            if isinstance(c, Settle) and c.state is not OK:
                failed.add(c.job)
            if isinstance(c, Launch):
                assert not failed.intersection(self.needs[c.job])

    def teardown(self) -> None:
        """Once no more trouble arrives, every launch succeeds and time passes: all end."""
        d = self.d
        if d is None:
            return
        for _ in range(200):
            if d.s.done:
                break
            if self.expandable:
                self.expand_all()
            for launch in list(self.live.values()):
                self.step(LaunchAccepted(launch.job, launch.number))
                self.step(Ended(launch.job, launch.number, OK, 0))
            d.now += 60
            self.step(Tick())
        assert d.s.done and not self.live
        settled = d.settled()
        assert all(state in FINAL for state in settled.values())
        if self.cancelled:  # nothing succeeds once cancelled (a timed-out job stays timed out)
            for job, state in settled.items():
                assert job in self.ok_before_cancel or state is not OK, (job, state)
        for job, state in settled.items():
            if state is JobState.SKIPPED:
                assert any(settled.get(n) not in (None, OK) for n in self.needs[job])

    def expand_all(self) -> None:
        while self.expandable:
            job = self.expandable.pop()
            members = (Task(f"{job}-0", self.needs[job], self.pools[job]),)
            self.replace(job, members)
            self.step(Expanded(job, members))


SchedulerMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None
)
TestScheduler = SchedulerMachine.TestCase
