"""The shared slot ledger (ccspec.slots) under several schedulers (ccspec.scheduler) at
once, driven through `step` with no processes: the pools' limits hold across them, a freed
slot goes to the fairest run waiting (the fewest slots held, then the least used lately, on
a fake clock), every slot comes back whatever ended a run; then a
hypothesis state machine over random interleavings; then a real engine whose run raises."""

from __future__ import annotations

from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ccspec.scheduler import Scheduler
from ccspec.scheduler_types import (
    Command,
    Ended,
    Event,
    HandOver,
    Interrupt,
    Launch,
    LaunchAccepted,
    Start,
    Task,
    Tick,
)
from ccspec.slots import LOCAL_POOL, Seat, SlotLedger, pool_key
from ccspec.states import JobState


class Run:
    """One workflow's scheduler seated at a shared ledger; its wake-ups are counted."""

    def __init__(self, ledger: SlotLedger, name: str, jobs: int, limit: int) -> None:
        self.woken = 0
        self.seat = ledger.seat(name, {LOCAL_POOL: limit}, self.wake)
        tasks = [Task(f"{name}-{i}", pools=(LOCAL_POOL,)) for i in range(jobs)]
        self.s = Scheduler(tasks, {}, self.seat)
        self.running: list[Launch] = []
        self.launched: list[Launch] = []

    def wake(self) -> None:
        self.woken += 1

    def step(self, event: Event) -> list[Command]:
        """Step the event; every launch it commands is taken by the host at once."""
        out = self.s.step(event, 0.0)
        for command in list(out):
            if isinstance(command, Launch):
                self.launched.append(command)
                self.running.append(command)
                out += self.step(LaunchAccepted(command.job, command.number))
        return out

    def end(self, state: JobState = JobState.SUCCEEDED) -> None:
        launch = self.running.pop(0)
        self.step(Ended(launch.job, launch.number, state, 0))

    def close_if_done(self) -> None:
        if self.s.done:
            self.seat.close()  # as the engine does when its run ends


class FakeClock:
    """Time moved by hand: what the fair share's decay is measured on."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


def test_the_limit_holds_across_runs_and_a_freed_slot_goes_to_the_run_holding_fewest() -> None:
    ledger = SlotLedger()
    big, small = Run(ledger, "big", 6, 2), Run(ledger, "small", 3, 2)
    big.step(Start())  # takes both slots and queues for a third
    small.step(Start())  # queues behind it
    assert len(big.running) == 2 and small.running == []
    turns = []
    for _ in range(4):  # big's jobs end one by one; each freed slot is reserved and woken
        before = (big.woken, small.woken)
        big.end()
        big.step(Tick())
        small.step(Tick())
        turns.append("big" if big.woken > before[0] else "small")
        assert len(big.running) + len(small.running) == 2
    # small held none, big one: small first although big queued first; then small holds
    # one (its job never ends here) and big, holding none, gets every slot big frees
    assert turns == ["small", "big", "big", "big"]
    assert ledger.in_use() == {LOCAL_POOL: 2}


def seated(ledger: SlotLedger, name: str) -> Seat:
    return ledger.seat(name, {LOCAL_POOL: 1}, lambda: None)


def hold_for(seat: Seat, clock: FakeClock, seconds: float) -> None:
    """The seat's run holds one slot for `seconds`."""
    assert seat.take(LOCAL_POOL)
    clock.now += seconds
    seat.give(LOCAL_POOL)


def given(ledger: SlotLedger, queued: list[Seat]) -> str:
    """Another run holds the only slot and the `queued` seats ask for it in this order:
    which of them is given it when it comes free (they leave the queue after)."""
    holder = seated(ledger, "holder")
    assert holder.take(LOCAL_POOL)
    for seat in queued:
        assert not seat.take(LOCAL_POOL)
    holder.give(LOCAL_POOL)
    holder.close()
    names = [seat.name for seat in queued if seat.granted()]
    for seat in queued:
        seat.spare()  # the reservation handed on, the others still queue...
        seat.close()  # ...until they leave
    assert len(names) == 1
    return names[0]


def test_among_runs_holding_as_many_the_run_that_used_the_pool_least_goes_first() -> None:
    clock = FakeClock()
    ledger = SlotLedger(clock, half_life=60.0)
    heavy, light = seated(ledger, "heavy"), seated(ledger, "light")
    hold_for(heavy, clock, 600.0)  # ten minutes of a slot
    hold_for(light, clock, 30.0)  # then half a minute
    saved = seated(ledger, "saved")  # a spec just saved: its run used nothing yet
    assert given(ledger, [heavy, light, saved]) == "saved"
    heavy, light = seated(ledger, "heavy"), seated(ledger, "light")
    hold_for(heavy, clock, 600.0)
    hold_for(light, clock, 30.0)
    assert given(ledger, [heavy, light]) == "light"


def test_use_decays_so_a_run_that_used_much_long_ago_goes_before_one_using_a_little_now() -> None:
    clock = FakeClock()
    ledger = SlotLedger(clock, half_life=60.0)
    early, late = seated(ledger, "early"), seated(ledger, "late")
    hold_for(early, clock, 600.0)
    clock.now += 600.0  # ten half-lives: what early used weighs about a thousandth
    hold_for(late, clock, 5.0)
    assert given(ledger, [late, early]) == "early"


def drive(runs: list[Run], clock: FakeClock, ends: int) -> list[str]:
    """End the oldest running job `ends` times, a second apart; the workflows launched, in
    order."""
    order: list[str] = []
    running = [r for r in runs for _ in r.running]  # a run per job running, oldest first
    for _ in range(ends):
        clock.now += 1.0
        running.pop(0).end()
        for run in runs:
            before = len(run.launched)
            run.step(Tick())
            order += [run.seat.name] * (len(run.launched) - before)
            running += [run] * (len(run.launched) - before)
    return order


def test_a_spec_just_saved_gets_the_next_free_slot_while_large_specs_keep_them_busy() -> None:
    clock = FakeClock()
    ledger = SlotLedger(clock)
    runs = [Run(ledger, f"big{i}", 40, 2) for i in range(6)]
    for run in runs:
        run.step(Start())
    drive(runs, clock, 30)  # the six take turns on the two slots for half a minute
    saved = Run(ledger, "saved", 1, 2)
    saved.step(Start())  # every slot is busy: it queues behind five others
    assert saved.launched == []
    assert drive([*runs, saved], clock, 1) == ["saved"]


def test_of_specs_saved_at_once_the_run_with_fewest_jobs_waiting_goes_first() -> None:
    clock = FakeClock()
    ledger = SlotLedger(clock)
    holder = Run(ledger, "holder", 2, 2)
    holder.step(Start())  # both slots busy
    big, small = Run(ledger, "big", 50, 2), Run(ledger, "small", 1, 2)
    big.step(Start())  # queued first; neither has used the pool yet
    small.step(Start())
    assert drive([holder, big, small], clock, 2) == ["small", "big"]


def test_workflows_that_keep_asking_share_the_slots_evenly_whatever_their_sizes() -> None:
    clock = FakeClock()
    ledger = SlotLedger(clock)
    runs = [Run(ledger, "huge", 200, 2), *(Run(ledger, f"w{i}", 20, 2) for i in range(3))]
    for run in runs:
        run.step(Start())
    order = drive(runs, clock, 40)
    counts = {run.seat.name: order.count(run.seat.name) for run in runs}
    assert all(9 <= n <= 11 for n in counts.values()), counts


def test_every_end_gives_the_slots_back() -> None:
    ledger = SlotLedger()
    runs = [Run(ledger, f"w{i}", 3, 1) for i in range(3)]
    for run in runs:
        run.step(Start())
    runs[0].step(HandOver())  # its running job is left out there: the seat closes anyway
    runs[0].close_if_done()
    runs[1].step(Tick())
    runs[1].step(Interrupt(force=True))
    runs[1].end(JobState.CANCELLED)
    runs[1].close_if_done()
    runs[2].step(Tick())
    assert len(runs[2].running) == 1
    runs[2].seat.close()  # e.g. its engine raised
    assert ledger.in_use() == {LOCAL_POOL: 0}


def test_a_hand_over_carries_its_running_jobs_slots_to_the_next_run_of_its_workflow() -> None:
    ledger = SlotLedger()
    first, other = Run(ledger, "edited", 2, 2), Run(ledger, "other", 2, 2)
    first.step(Start())
    other.step(Start())
    first.step(HandOver())  # its two jobs run on, out there
    first.seat.close(carry=True)
    assert other.woken == 0 and ledger.in_use() == {LOCAL_POOL: 2}
    # the next run re-attaches to one of them; the other ended meanwhile
    nxt = ledger.seat("edited", {LOCAL_POOL: 2}, lambda: None)
    nxt.hold(LOCAL_POOL)
    assert ledger.in_use() == {LOCAL_POOL: 2} and other.woken == 0
    ledger.drop_carried("edited")
    assert other.woken == 1
    other.step(Tick())
    assert len(other.running) == 1 and ledger.in_use() == {LOCAL_POOL: 2}


def test_the_same_host_written_alike_is_one_pool_whatever_its_name() -> None:
    from pydantic import TypeAdapter

    from ccspec.spec.models import Host

    def key(**fields: object) -> str:
        return pool_key(TypeAdapter(Host).validate_python(fields))

    one = key(type="ssh", host="10.0.0.5", user="me", port=22)
    assert one == key(type="ssh", host="10.0.0.5", user="me", port=22, workdir="/x", max_jobs=3)
    assert one != key(type="ssh", host="10.0.0.5", user="you", port=22)
    assert key(type="slurm", partition="a") == key(type="slurm", partition="b")
    assert key(type="local") == LOCAL_POOL


class SharedSlots(RuleBasedStateMachine):
    """Runs of a few jobs each share one pool of `limit` slots; jobs end, runs are handed
    over or cancelled in any order, and wake-ups are delivered late or not at all."""

    def __init__(self) -> None:
        super().__init__()
        self.ledger = SlotLedger()
        self.limit = 2
        self.runs = [Run(self.ledger, f"w{i}", 3, self.limit) for i in range(3)]
        for run in self.runs:
            run.step(Start())

    @rule(i=st.integers(0, 2), fail=st.booleans())
    def end_one(self, i: int, fail: bool) -> None:
        run = self.runs[i]
        if run.running:
            run.end(JobState.FAILED if fail else JobState.SUCCEEDED)
            run.close_if_done()

    @rule(i=st.integers(0, 2))
    def wake(self, i: int) -> None:
        self.runs[i].step(Tick())
        self.runs[i].close_if_done()

    @rule(i=st.integers(0, 2), how=st.sampled_from(["handover", "interrupt"]))
    def stop(self, i: int, how: str) -> None:
        run = self.runs[i]
        run.step(HandOver() if how == "handover" else Interrupt(force=True))
        if how == "handover":
            run.running.clear()  # left out there
        run.close_if_done()

    @invariant()
    def the_limit_holds_and_each_job_launches_once(self) -> None:
        # jobs left out there by a hand-over no longer count: their run's seat is closed
        assert sum(len(r.running) for r in self.runs) <= self.limit
        for run in self.runs:
            jobs = [launch.job for launch in run.launched]
            assert len(jobs) == len(set(jobs))
            assert len(run.running) <= sum(run.seat.held.values())

    def teardown(self) -> None:
        """Every run, its jobs ended and its wake-ups delivered, finishes; no slot is left."""
        for _ in range(40):
            for run in self.runs:
                while run.running:
                    run.end()
                run.step(Tick())
                run.close_if_done()
        assert all(run.s.done for run in self.runs)
        assert self.ledger.in_use() == {LOCAL_POOL: 0}


TestSharedSlots = SharedSlots.TestCase
TestSharedSlots.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)


def test_an_engine_whose_run_raises_gives_its_slots_back(tmp_path: Path) -> None:
    import ccspec
    from ccspec.engine import Engine
    from ccspec.runner import plan_workflow
    from ccspec.state.store import StateStore

    (tmp_path / ".git").mkdir()
    (tmp_path / "flow.yaml").write_text(
        "version: 1\njobs:\n  a: {run: 'sleep 1'}\n  b: {run: 'sleep 1'}\n"
    )
    ledger = SlotLedger()
    store = StateStore(tmp_path / ".ccspec")
    planned = plan_workflow(ccspec.load(tmp_path / "flow.yaml"), store)
    engine: Engine | None = None

    def report(event: str, view: object) -> None:
        if event == "idle" and engine is not None and engine.runs:
            raise RuntimeError("a bug while jobs run")

    engine = Engine(
        planned.workflow,
        planned.plan,
        store,
        state_dir=tmp_path / ".ccspec",
        jobs=2,
        reporter=report,
        fingerprints=planned.fingerprints,
        facts=planned.facts,
        recorded=planned.recorded,
        slots=ledger,
    )
    try:
        engine.run()
    except RuntimeError:
        pass
    else:
        raise AssertionError("the run did not raise")
    finally:
        store.close()
    assert ledger.in_use() == {LOCAL_POOL: 0}
