"""Attempts outside a run (ccspec.settle), on this machine's target: `ccspec status` collects
what a detached attempt left in its run folder, skips one that left no pid (it may be starting;
only a runner holding the lease fences a launch), and `ccspec cancel` stops a running one. Real
processes through LocalBatch, a real SQLite file."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from ccspec.settle import cancel_attempts, settle
from ccspec.state.store import Attempt, StateStore
from ccspec.states import FINAL, JobState
from ccspec.targets.base import Launch, Status, Tracked
from ccspec.targets.local_batch import LocalBatch
from tests.state.records import launch


def _start(batch: LocalBatch, attempt: Attempt, script: str, cwd: Path) -> str:
    assert attempt.run_dir and attempt.log_path
    run_dir, log_path = Path(attempt.run_dir), Path(attempt.log_path)
    [answer] = batch.submit(
        [
            Launch(
                "w", attempt.job, attempt.number, ["sh", "-c", script], dict(os.environ), cwd,
                run_dir, log_path, attempt_id=attempt.id,
            )
        ]
    )  # fmt: skip
    assert answer.handle is not None, answer
    return answer.handle


def _wait_final(batch: LocalBatch, attempt: Attempt, handle: str) -> Status:
    tracked = Tracked(
        attempt.id, handle, attempt.run_dir or "", Path(attempt.log_path or "."), time.time()
    )
    end = time.monotonic() + 20
    while True:  # a bounded wait on a real process
        status = batch.poll([tracked])[attempt.id]
        if status is not None and status.state in FINAL:
            return status
        assert time.monotonic() < end, status
        time.sleep(0.02)


def test_status_collects_a_detached_attempt_that_ended_recorded_with_no_handle(
    store: StateStore, tmp_path: Path
) -> None:
    attempt = launch(store, "a")
    batch = LocalBatch()
    try:
        handle = _start(batch, attempt, "echo out; exit 3", tmp_path)
        _wait_final(batch, attempt, handle)
    finally:
        batch.close()
    assert settle(store, "w") == 1  # its pid and exit code are in its run folder
    found = store.attempt(attempt.id)
    assert (found.state, found.exit_code) == (JobState.FAILED, 3)


def test_status_leaves_an_attempt_that_left_no_pid_to_the_runner(
    store: StateStore,
) -> None:
    attempt = launch(store, "a")
    db = sqlite3.connect(store.path)  # recorded ten minutes ago: long past any start grace
    with db:
        db.execute("UPDATE attempts SET created=created-600 WHERE id=?", (attempt.id,))
    db.close()
    assert settle(store, "w") == 0
    assert store.attempt(attempt.id).state is JobState.LAUNCHING


def test_cancel_stops_a_running_local_attempt_and_records_it(
    store: StateStore, tmp_path: Path
) -> None:
    attempt = launch(store, "a")
    batch = LocalBatch()
    try:
        handle = _start(batch, attempt, "touch started; sleep 30", tmp_path)
        store.set_handle(attempt.id, handle)
        end = time.monotonic() + 20
        while not (tmp_path / "started").exists():  # a bounded wait: the job is under way
            assert time.monotonic() < end
            time.sleep(0.02)
        running = store.attempt(attempt.id)
        assert cancel_attempts(store, {}, [running], "cancelled by a test") == {}
        status = _wait_final(batch, attempt, handle)
    finally:
        batch.close()
    assert status.state is not JobState.SUCCEEDED
    found = store.attempt(attempt.id)
    assert (found.state, found.reason) == (JobState.CANCELLED, "cancelled by a test")
