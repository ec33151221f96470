"""Attempts in the state store: the intent to launch is recorded before any handle exists and
survives the runner; an attempt moves launching -> queued/running -> its outcome; a job's
record keeps its last success apart from its last launch (the planner compares both); attempt
numbers stay unique when several processes launch one job at once. On a real SQLite file.
The in-process cases of one attempt per number are in tests/test_store.py."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ccspec.errors import AttemptNumberTaken
from ccspec.state.store import StateStore
from ccspec.states import JobState
from tests.state.records import FP, PARTS, OpenStore, finish, launch

ACTIVE = (JobState.LAUNCHING, JobState.QUEUED, JobState.RUNNING)

# A runner that records a launch's intent, defers its handle (as the engine does on the hot
# path) and is SIGKILLed before anything flushes it.
KILLED_AFTER_INTENT = """
import os, signal, sys
from pathlib import Path
from ccspec.state.store import StateStore
store = StateStore(Path(sys.argv[1]))
attempt = store.begin_attempt(
    "w", "a", "a", host="local", fingerprint="sha256:1", parts={},
    run_dir=Path("run"), log_path=Path("run.log"),
)
store.set_handle(attempt.id, "4242", workflow="w", job="a", soon=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_intent_outlives_a_runner_killed_before_its_handle_was_written(
    store: StateStore,
) -> None:
    runner = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_INTENT, str(store.folder)], capture_output=True
    )
    assert runner.returncode == -signal.SIGKILL, runner.stderr
    [found] = store.active_attempts("w")
    assert (found.job, found.number, found.state, found.handle) == (
        "a",
        1,
        JobState.LAUNCHING,
        None,
    )
    assert (found.run_dir, found.log_path, found.fingerprint) == ("run", "run.log", "sha256:1")
    assert store.recorded_jobs("w")["a"].state is JobState.LAUNCHING
    assert [e["kind"] for e in store.events("w")] == ["launching"]
    # the next runner takes the next number, whatever the lost one did
    assert launch(store).number == 2


def test_an_attempt_is_active_until_it_ends(store: StateStore, open_store: OpenStore) -> None:
    other = open_store()
    queued, running, launching = launch(store, "q"), launch(store, "r"), launch(store, "l")
    ended = launch(store, "e")
    launch(store, "x", workflow="v")  # another workflow's
    store.set_handle(queued.id, "slurm-1", JobState.QUEUED)
    store.set_handle(running.id, "4242")
    store.set_handle(ended.id, "4243")
    finish(store, ended, JobState.FAILED, exit_code=3, reason="exit code 3")
    active = other.active_attempts("w")
    assert [(a.job, a.state, a.handle) for a in active] == [
        ("q", JobState.QUEUED, "slurm-1"),
        ("r", JobState.RUNNING, "4242"),
        ("l", JobState.LAUNCHING, None),
    ]
    assert all(a.state in ACTIVE for a in active) and launching.id == active[2].id
    [done] = other.attempts("w", "e")
    assert (done.state, done.exit_code, done.reason, done.handle) == (
        JobState.FAILED,
        3,
        "exit code 3",
        "4243",
    )
    assert done.finished is not None and done.started is not None
    assert done.created is not None and done.created <= done.started <= done.finished


def test_a_success_is_recorded_on_the_attempt_and_the_job(
    store: StateStore, open_store: OpenStore
) -> None:
    attempt = launch(store)
    store.set_handle(attempt.id, "4242", started=100.0)
    finish(store, attempt, outputs={"rows": 3})
    other = open_store()
    job = other.recorded_jobs("w")["a"]
    assert (job.state, job.reason, job.attempts, job.last_attempt) == (
        JobState.SUCCEEDED,
        None,
        1,
        attempt.id,
    )
    assert (job.success_fingerprint, dict(job.success_parts), job.success_seq) == (
        FP,
        PARTS,
        attempt.id,
    )
    assert dict(job.outputs) == {"rows": 3}
    last = other.last_attempts("w")["a"]
    assert (last.id, last.started, dict(last.outputs), last.exit_code) == (
        attempt.id,
        100.0,
        {"rows": 3},
        0,
    )
    assert [e["kind"] for e in other.events("w")] == ["launching", "running", "succeeded"]


def test_a_failure_after_a_success_keeps_the_success_apart(store: StateStore) -> None:
    first = launch(store)
    finish(store, first)
    edited = {**PARTS, "file": "f" * 64}
    second = launch(store, fingerprint="sha256:" + "b" * 64, parts=edited)
    finish(store, second, JobState.FAILED, exit_code=1, reason="exit code 1")
    job = store.recorded_jobs("w")["a"]
    # the last launch ran the edited job and failed; the last success is still the first
    assert (job.state, job.reason, job.fingerprint, dict(job.parts)) == (
        JobState.FAILED,
        "exit code 1",
        "sha256:" + "b" * 64,
        edited,
    )
    assert (job.success_fingerprint, dict(job.success_parts), job.success_seq) == (
        FP,
        PARTS,
        first.id,
    )
    third = launch(store, fingerprint="sha256:" + "b" * 64, parts=edited)
    finish(store, third)
    job = store.recorded_jobs("w")["a"]
    assert (job.success_fingerprint, job.success_seq, job.attempts) == (
        "sha256:" + "b" * 64,
        third.id,
        3,
    )


def test_a_job_state_set_without_a_fingerprint_keeps_the_recorded_one(store: StateStore) -> None:
    finish(store, launch(store))
    store.set_job_state("w", "a", "a", JobState.SKIPPED, "b failed")
    job = store.recorded_jobs("w")["a"]
    assert (job.state, job.reason, job.fingerprint, dict(job.parts)) == (
        JobState.SKIPPED,
        "b failed",
        FP,
        PARTS,
    )
    store.set_job_state("w", "a", "a", JobState.PENDING, fingerprint="sha256:2", parts={})
    job = store.recorded_jobs("w")["a"]
    assert (job.fingerprint, dict(job.parts), job.success_fingerprint) == ("sha256:2", {}, FP)
    store.forget_jobs("w", ["a"])
    assert store.recorded_jobs("w") == {}
    assert [a.number for a in store.attempts("w", "a")] == [1]  # its history stays
    assert [e["kind"] for e in store.events("w")][-3:] == ["state", "state", "removed"]


# Each process opens the store, says it is ready, and once a start file exists launches job `a`
# argv[4] times, as attempt argv[3] (0: the store's next number).
LAUNCHER = """
import os, sys, time
from pathlib import Path
from ccspec.state.store import StateStore
folder, start = Path(sys.argv[1]), Path(sys.argv[2])
store = StateStore(folder)
print("ready", flush=True)
end = time.monotonic() + 30
while not start.exists() and time.monotonic() < end:
    time.sleep(0.005)
numbers = [
    store.begin_attempt(
        "w", "a", "a", host="local", fingerprint="sha256:1", parts={},
        run_dir=Path("run"), log_path=Path("run.log"), number=int(sys.argv[3]) or None,
    ).number
    for _ in range(int(sys.argv[4]))
]
print(" ".join(map(str, numbers)))
"""


def launchers(
    folder: Path, tmp_path: Path, count: int, number: int, launches: int
) -> list[subprocess.CompletedProcess[str]]:
    """Start `count` processes that launch together (each `launches` times, `number` or the
    store's next one when 0), and wait for all of them."""
    start = tmp_path / "start"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(folder), str(start), str(number), str(launches)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    # all of them opened the store and wait for the start
    assert [proc.stdout.readline() if proc.stdout else "" for proc in procs] == ["ready\n"] * count
    start.touch()
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=60)
        out.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return out


def test_processes_launching_one_job_together_get_distinct_numbers(
    store: StateStore, tmp_path: Path
) -> None:
    done = launchers(store.folder, tmp_path, count=3, number=0, launches=50)
    assert [p.stderr for p in done] == ["", "", ""]
    numbers = sorted(int(n) for p in done for n in p.stdout.split())
    assert numbers == list(range(1, 151))
    assert store.recorded_jobs("w")["a"].attempts == 150


def test_of_processes_launching_attempt_1_together_exactly_one_records_it(
    store: StateStore, tmp_path: Path
) -> None:
    done = launchers(store.folder, tmp_path, count=3, number=1, launches=1)
    won = [p for p in done if p.returncode == 0]
    lost = [p for p in done if p.returncode != 0]
    assert [p.stdout for p in won] == ["1\n"] and len(lost) == 2
    for p in lost:
        assert (
            p.stderr.strip()
            .splitlines()[-1]
            .startswith(
                "ccspec.errors.AttemptNumberTaken: job 'a' of workflow 'w' already has attempt 1"
            )
        )
    assert [a.number for a in store.attempts("w", "a")] == [1]
    with pytest.raises(AttemptNumberTaken):
        launch(store, number=1)
