"""One transaction for all a pass records (StateStore.batch): the intents of every launch in
it appear together, to another connection, at its end; a launch refused inside undoes only
itself; a runner killed inside it leaves nothing recorded, one killed after it leaves every
intent for the next run to fence. On a real SQLite file; the crashes are real SIGKILLs."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from ccspec.errors import AttemptNumberTaken, LeaseLost
from ccspec.state.store import StateStore
from ccspec.states import JobState
from tests.state.records import OpenStore, finish, launch


def commits(store: StateStore) -> list[str]:
    """The statements that end a transaction on the store's connection, from now on."""
    seen: list[str] = []
    store.db.set_trace_callback(
        lambda sql: seen.append(sql) if sql.split()[0].upper() in ("COMMIT", "END") else None
    )
    return seen


def test_the_launches_of_a_batch_are_one_commit_another_connection_sees_at_its_end(
    open_store: OpenStore,
) -> None:
    store, reader = open_store(), open_store()
    done = commits(store)
    with store.batch():
        for job in ("a", "b", "c", "d"):
            launch(store, job)
            assert reader.active_attempts("w") == []  # nothing shows before the commit
        assert done == []
    assert len(done) == 1
    active = reader.active_attempts("w")
    assert sorted(a.job for a in active) == ["a", "b", "c", "d"]
    assert {a.state for a in active} == {JobState.LAUNCHING}


def test_a_launch_refused_inside_a_batch_leaves_the_others_and_the_deferred_writes(
    store: StateStore, open_store: OpenStore
) -> None:
    first = launch(store, "b")
    finish(store, first)
    done = launch(store, "z")
    token = store.acquire_lease("w", 60)
    with store.batch():
        finish(store, done, soon=True)  # a deferred write asked for before the launches
        launch(store, "a", lease=token)
        with pytest.raises(AttemptNumberTaken):
            launch(store, "b", number=1, lease=token)  # the job already has attempt 1
        with pytest.raises(LeaseLost):
            launch(store, "c", lease="not-the-holder")
        launch(store, "d", lease=token)
    reader = open_store()
    assert sorted(a.job for a in reader.active_attempts("w")) == ["a", "d"]
    assert [a.number for a in reader.attempts("w", "b")] == [1]
    assert reader.attempts("w", "c") == []
    assert reader.attempt(done.id).state is JobState.SUCCEEDED
    kinds = [(e["job"], e["kind"]) for e in reader.events("w", after=0)]
    assert ("c", "launching") not in kinds and kinds.count(("b", "launching")) == 1


def test_a_batch_that_raises_records_nothing(store: StateStore, open_store: OpenStore) -> None:
    with pytest.raises(RuntimeError), store.batch():
        launch(store, "a")
        store.set_job_state("w", "s", "s", JobState.SKIPPED)
        raise RuntimeError("the runner failed before its commit")
    reader = open_store()
    assert reader.attempts("w") == [] and reader.recorded_jobs("w") == {}


def test_a_refusal_outside_a_batch_keeps_the_deferred_writes(store: StateStore) -> None:
    done = launch(store, "z")
    launch(store, "b")
    finish(store, done, soon=True)
    with pytest.raises(AttemptNumberTaken):
        launch(store, "b", number=1)
    store.flush()
    assert store.attempt(done.id).state is JobState.SUCCEEDED


# A runner that records three launch intents in one batch and is SIGKILLed inside it (before
# the commit) or after it (before anything is handed to a target).
KILLED = """
import os, signal, sys
from pathlib import Path
from ccspec.state.store import StateStore
store = StateStore(Path(sys.argv[1]))
inside = sys.argv[2] == "inside"
with store.batch():
    for job in ("a", "b", "c"):
        store.begin_attempt(
            "w", job, job, host="local", fingerprint="sha256:1", parts={},
            run_dir=Path(job), log_path=Path(job + ".log"),
        )
    if inside:
        os.kill(os.getpid(), signal.SIGKILL)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize(("where", "recorded"), [("inside", []), ("after", ["a", "b", "c"])])
def test_a_runner_killed_around_the_commit(
    store: StateStore, where: str, recorded: list[str]
) -> None:
    runner = subprocess.run(
        [sys.executable, "-c", KILLED, str(store.folder), where], capture_output=True
    )
    assert runner.returncode == -signal.SIGKILL, runner.stderr
    active = store.active_attempts("w")
    assert sorted(a.job for a in active) == recorded
    assert all(a.state is JobState.LAUNCHING and a.handle is None for a in active)


def test_final_states_and_forgotten_jobs_ride_the_batch_commit(
    open_store: OpenStore,
) -> None:
    store, reader = open_store(), open_store()
    store.set_job_state("w", "gone", "gone", JobState.SUCCEEDED)
    done = commits(store)
    with store.batch():
        store.forget_jobs("w", ["gone"])
        store.set_job_state("w", "s", "s", JobState.SKIPPED, "needs a, which failed")
        assert set(reader.recorded_jobs("w")) == {"gone"}
    assert len(done) == 1
    assert set(reader.recorded_jobs("w")) == {"s"}
