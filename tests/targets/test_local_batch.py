"""This machine's target as the engine uses it: given `post`, a child's exit is posted from
`wait` as a StatusChanged carrying the final Status the target computes -- the same Status
`poll` gives for the same job -- so the engine records the same state whichever way it
learnt of the end. Real processes under the real run wrapper."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ccspec.resources import template_path
from ccspec.state.private import with_umask
from ccspec.states import JobState
from ccspec.targets.base import Launch, Status, StatusChanged, TargetEvent, Tracked
from ccspec.targets.local_batch import LocalBatch

COMMANDS = {1: "echo one", 2: "exit 3", 3: "kill -KILL $BASHPID", 4: "kill -KILL $$"}
WAIT = 20.0


def _launch(tmp: Path, attempt_id: int, command: str) -> Launch:
    wrapper = with_umask(template_path("run-wrapper.sh").read_text())
    run_dir, log = tmp / str(attempt_id), tmp / f"{attempt_id}.log"
    argv = ["bash", "-c", wrapper, "bash", command, str(log), str(tmp)]
    env = {**os.environ, "CCSPEC_RUN_DIR": str(run_dir)}
    return Launch(
        "flow", f"j{attempt_id}", 1, argv, env, tmp, run_dir, log, wrapped=True,
        attempt_id=attempt_id,
    )  # fmt: skip


def _key(status: Status) -> tuple[JobState, int | None, str | None]:
    return status.state, status.exit_code, status.reason


def _posted(tmp: Path) -> dict[int, Status]:
    events: list[TargetEvent] = []
    batch = LocalBatch(post=events.append)
    try:
        answers = batch.submit([_launch(tmp, i, c) for i, c in COMMANDS.items()])
        assert all(a.handle for a in answers), answers
        end = time.monotonic() + WAIT
        while len(events) < len(COMMANDS):  # a bounded wait on real processes
            assert time.monotonic() < end, events
            batch.wait(0.1)
    finally:
        batch.close()
    assert all(isinstance(e, StatusChanged) for e in events), events
    return {e.attempt_id: e.status for e in events if isinstance(e, StatusChanged)}


def _polled(tmp: Path) -> dict[int, Status]:
    batch = LocalBatch()
    try:
        answers = batch.submit([_launch(tmp, i, c) for i, c in COMMANDS.items()])
        tracked = [
            Tracked(a.attempt_id, a.handle, str(tmp / str(a.attempt_id)), tmp, 0.0) for a in answers
        ]
        end = time.monotonic() + WAIT
        while True:  # a bounded wait on real processes
            states = batch.poll(tracked)
            if all(s is not None and s.state is not JobState.RUNNING for s in states.values()):
                return {i: s for i, s in states.items() if s is not None}
            assert time.monotonic() < end, states
            batch.wait(0.1)
    finally:
        batch.close()


def test_an_exit_is_posted_with_the_status_poll_gives(tmp_path: Path) -> None:
    (tmp_path / "posted").mkdir()
    (tmp_path / "polled").mkdir()
    posted = _posted(tmp_path / "posted")
    polled = _polled(tmp_path / "polled")
    assert {i: _key(s) for i, s in posted.items()} == {
        1: (JobState.SUCCEEDED, 0, None),
        2: (JobState.FAILED, 3, "exit code 3"),
        3: (JobState.FAILED, -9, "killed by signal 9"),
        4: (JobState.FAILED, -9, "killed by signal 9"),
    }
    assert {i: _key(s) for i, s in polled.items()} == {i: _key(s) for i, s in posted.items()}
    # when it ended, by the exit-code file its wrapper wrote (a KILL leaves none)
    assert posted[1].finished is not None and posted[2].finished is not None
