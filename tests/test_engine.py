"""The engine (ccspec.engine) with real local processes, a real state store and an injected
clock: deadlines (timeouts, retry backoff) pass when the test moves the clock, not by
sleeping. Each engine runs in a thread; the test watches its reports with bounded waits."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import ccspec
from ccspec.engine import Engine, JobView, Outcome
from ccspec.runner import plan_workflow
from ccspec.state.store import StateStore
from ccspec.states import JobState
from ccspec.targets.base import Launch
from ccspec.targets.local_batch import LocalBatch
from tests.services import services


class FakeClock:
    """Monotonic time moves only when the test says; wall time follows it from now."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = time.time()

    def time(self) -> float:
        return self.wall + (self.mono - 1000.0)

    def monotonic(self) -> float:
        return self.mono


class Running:
    """An engine over a spec, run in a thread of its own (a state store is used by the thread
    that opened it, as the reconciler's threads do); reports are kept."""

    def __init__(self, folder: Path, clock: FakeClock) -> None:
        self.folder, self.clock = folder, clock
        self.events: list[tuple[str, str | None, JobState | None]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.outcome: Outcome | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(20), "the engine was not made"

    def _run(self) -> None:
        store = StateStore(self.folder / ".ccspec")
        try:
            planned = plan_workflow(ccspec.load(self.folder / "flow.yaml"), store)
            self.engine = Engine(
                planned.workflow,
                planned.plan,
                store,
                state_dir=self.folder / ".ccspec",
                jobs=2,
                reporter=self.report,
                fingerprints=planned.fingerprints,
                facts=planned.facts,
                recorded=planned.recorded,
                clock=self.clock,
            )
            self.ready.set()
            self.outcome = self.engine.run()
        finally:
            store.close()

    def report(self, event: str, view: JobView | None) -> None:
        with self.lock:
            self.events.append((event, view.id if view else None, view.state if view else None))

    def count(self, event: str, job: str | None = None) -> int:
        with self.lock:
            return sum(1 for e, j, _ in self.events if e == event and (job is None or j == job))

    def wait_for(self, what: Callable[[], bool], timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while not what():
            assert time.monotonic() < end, f"not reached; reports: {self.events[-10:]}"
            time.sleep(0.02)  # a bounded wait on the engine's thread, not time passing

    def result(self, timeout: float = 20.0) -> Outcome:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the engine did not return: {self.events[-10:]}"
        assert self.outcome is not None
        return self.outcome


def _spec(folder: Path, jobs: str) -> None:
    (folder / "flow.yaml").write_text(f"version: 1\njobs:\n{jobs}")


def test_a_timeout_fires_when_the_clock_passes_it(tmp_path: Path) -> None:
    _spec(tmp_path, "  slow: {run: 'sleep 60', timeout: 1h}\n")
    clock = FakeClock()
    run = Running(tmp_path, clock)
    run.wait_for(lambda: run.count("started", "slow") == 1)
    ticks = run.count("tick")
    run.wait_for(lambda: run.count("tick") >= ticks + 3)  # passes go by; the clock stands still
    assert run.engine.views["slow"].state is JobState.RUNNING
    clock.mono += 3600
    run.engine.wake()
    view = run.result().views["slow"]
    assert view.state is JobState.TIMED_OUT
    assert view.reason == "timed out after 3600s"


def test_a_retry_waits_for_its_backoff(tmp_path: Path) -> None:
    _spec(tmp_path, "  flaky: {run: 'test -f tried || { touch tried; exit 1; }', retries: 1}\n")
    clock = FakeClock()
    run = Running(tmp_path, clock)
    run.wait_for(lambda: run.count("retrying", "flaky") == 1)
    assert run.engine.views["flaky"].reason == "exit code 1; retry 1 in 0.5s"
    ticks = run.count("tick")
    run.wait_for(lambda: run.count("tick") >= ticks + 3)
    assert run.count("started", "flaky") == 1  # the backoff has not passed on the clock
    clock.mono += 0.5
    run.engine.wake()
    view = run.result().views["flaky"]
    assert view.state is JobState.SUCCEEDED
    assert view.attempt == 2


def test_a_hand_over_leaves_a_job_running_that_the_next_engine_follows(tmp_path: Path) -> None:
    _spec(tmp_path, "  waits: {run: 'until [ -f go ]; do sleep 0.05; done; echo done'}\n")
    clock = FakeClock()
    first = Running(tmp_path, clock)
    first.wait_for(lambda: first.count("started", "waits") == 1)
    first.engine.handover()
    handed = first.result()
    assert handed.views["waits"].state is JobState.RUNNING
    assert not handed.interrupted
    second = Running(tmp_path, clock)
    second.wait_for(lambda: second.count("attached", "waits") == 1)
    (tmp_path / "go").touch()
    outcome = second.result()
    assert outcome.views["waits"].state is JobState.SUCCEEDED
    assert second.count("started") == 0  # followed, never launched again
    store = StateStore(tmp_path / ".ccspec")
    try:
        attempts = store.attempts("flow")
    finally:
        store.close()
    assert [(a.number, a.state) for a in attempts] == [(1, JobState.SUCCEEDED)]


def test_an_interrupt_cancels_running_jobs_and_the_ones_not_started(tmp_path: Path) -> None:
    _spec(tmp_path, "  slow: {run: 'sleep 60'}\n  after: {run: 'true', needs: [slow]}\n")
    run = Running(tmp_path, FakeClock())
    run.wait_for(lambda: run.count("started", "slow") == 1)
    run.engine.interrupt()
    outcome = run.result()
    assert outcome.interrupted
    assert outcome.views["slow"].state is JobState.CANCELLED
    assert outcome.views["after"].state is JobState.CANCELLED
    assert outcome.views["after"].reason == "cancelled before it started"


def test_a_host_that_refuses_the_key_fails_its_job_at_once_with_retries_unspent(
    tmp_path: Path,
) -> None:
    """The real test sshd, with a key it does not know: a permanent refusal, so the job fails
    on its first launch (no backoff, no retry: the same launch would be refused again)."""
    svc = services()
    key = tmp_path / "unknown-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (tmp_path / "flow.yaml").write_text(
        "version: 1\nhosts:\n"
        f"  box: {{type: ssh, host: 127.0.0.1, port: {svc.ssh_port}, user: {svc.ssh_user},"
        f" key: {key}, workdir: '~/t/{tmp_path.name}'}}\n"
        "jobs:\n  there: {host: box, run: 'echo never', retries: 2}\n  here: {run: 'true'}\n"
    )
    run = Running(tmp_path, FakeClock())
    outcome = run.result(timeout=60)
    there = outcome.views["there"]
    assert there.state is JobState.FAILED
    assert "authentication failed" in (there.reason or "")
    assert outcome.views["here"].state is JobState.SUCCEEDED
    assert run.count("retrying", "there") == 0
    store = StateStore(tmp_path / ".ccspec")
    try:
        attempts = [a for a in store.attempts("flow") if a.job == "there"]
    finally:
        store.close()
    assert [(a.number, a.state) for a in attempts] == [(1, JobState.FAILED)]


def test_a_local_launch_recorded_with_no_pid_is_fenced_and_launched_again(tmp_path: Path) -> None:
    """An earlier runner recorded the launch and made its run folder, then died before the
    job started: the next engine fences it (a late launch of it starts nothing) and runs the
    job again as a new attempt."""
    _spec(tmp_path, "  one: {run: 'echo ran >> trace'}\n")
    logs = tmp_path / ".ccspec" / "logs" / "flow" / "one"
    store = StateStore(tmp_path / ".ccspec")
    try:
        store.begin_attempt(
            "flow", "one", "one", host="local", fingerprint="sha256:" + "0" * 64, parts={},
            run_dir=logs / "1", log_path=logs / "1.log",
        )  # fmt: skip
    finally:
        store.close()
    (logs / "1").mkdir(parents=True)
    outcome = Running(tmp_path, FakeClock()).result()
    assert outcome.views["one"].state is JobState.SUCCEEDED
    store = StateStore(tmp_path / ".ccspec")
    try:
        attempts = store.attempts("flow", "one")
    finally:
        store.close()
    assert [(a.number, a.state) for a in attempts] == [
        (1, JobState.LOST),
        (2, JobState.SUCCEEDED),
    ]
    late = Launch(
        "flow", "one", 1, ["sh", "-c", "echo late >> trace"], dict(os.environ), tmp_path,
        logs / "1", logs / "1.log", attempt_id=attempts[0].id,
    )  # fmt: skip
    batch = LocalBatch()
    try:
        [answer] = batch.submit([late])
    finally:
        batch.close()
    assert answer.handle is None and not answer.temporary, answer
    assert (tmp_path / "trace").read_text().split() == ["ran"]


def test_the_launches_of_a_pass_are_one_transaction_committed_before_any_job_starts(
    tmp_path: Path,
) -> None:
    """Four ready jobs launch in one pass: their intents are one commit on the engine's
    connection, and each job, once started, already sees all four recorded."""
    sees = "import sqlite3, sys\nprint(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM attempts').fetchone()[0])\n"
    (tmp_path / "sees.py").write_text(sees)
    db = tmp_path / ".ccspec" / "state.db"
    jobs = "".join(f"  {n}: {{run: {sys.executable} sees.py {db} > {n}.seen}}\n" for n in "abcd")
    _spec(tmp_path, jobs)
    store = StateStore(tmp_path / ".ccspec")
    statements: list[str] = []
    try:
        planned = plan_workflow(ccspec.load(tmp_path / "flow.yaml"), store)
        store.db.set_trace_callback(statements.append)
        outcome = Engine(
            planned.workflow, planned.plan, store, state_dir=tmp_path / ".ccspec", jobs=4,
            reporter=lambda event, view: None, fingerprints=planned.fingerprints,
            facts=planned.facts, recorded=planned.recorded,
        ).run()  # fmt: skip
    finally:
        store.close()
    assert {v.state for v in outcome.views.values()} == {JobState.SUCCEEDED}
    intents = [i for i, sql in enumerate(statements) if "INSERT INTO attempts" in sql]
    assert len(intents) == 4
    between = statements[intents[0] : intents[-1]]
    assert not [sql for sql in between if sql.split()[0].upper() in ("COMMIT", "BEGIN")]
    assert [(tmp_path / f"{n}.seen").read_text().strip() for n in "abcd"] == ["4"] * 4
