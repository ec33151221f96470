"""This machine's target as the engine uses it: given `post`, a child's exit is posted from
`wait` as a StatusChanged carrying the final Status the target computes -- the same Status
`poll` gives for the same job -- so the engine records the same state whichever way it
learnt of the end. Real processes under the real run wrapper."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from ccspec.resources import template_path
from ccspec.state.private import with_umask
from ccspec.states import JobState
from ccspec.targets.base import Launch, Status, StatusChanged, TargetEvent, Tracked
from ccspec.targets.local_batch import LocalBatch
from ccspec.targets.run_folder import read_exit_code

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


def _events_until(batch: LocalBatch, events: list[TargetEvent], count: int) -> None:
    end = time.monotonic() + WAIT
    while len(events) < count:  # a bounded wait on real processes
        assert time.monotonic() < end, events
        batch.wait(0.1)


def test_an_answer_with_an_earlier_sends_process_gets_its_exit_posted(tmp_path: Path) -> None:
    """A launch whose run folder an earlier send made (here: a batch before this one, which
    started the job) starts nothing; the answer names the process that send started, and its
    exit is posted like a child's -- an engine waiting for exits is not left waiting."""
    os.mkfifo(tmp_path / "fifo")
    first = LocalBatch()
    try:
        [answer] = first.submit([_launch(tmp_path, 1, "read -t 30 x < fifo; echo done")])
    finally:
        first.close()
    events: list[TargetEvent] = []
    again = LocalBatch(post=events.append)
    try:
        [second] = again.submit([_launch(tmp_path, 1, "echo started twice")])
        assert second.handle == answer.handle and second.error is None
        with open(tmp_path / "fifo", "w") as fifo:  # the first send's job may end now
            fifo.write("x\n")
        _events_until(again, events, 1)
    finally:
        again.close()
    assert [(e.attempt_id, _key(e.status)) for e in events if isinstance(e, StatusChanged)] == [
        (1, (JobState.SUCCEEDED, 0, None))
    ]
    assert (tmp_path / "1.log").read_text() == "done\n"  # started once


def test_a_run_folder_left_by_a_deleted_state_is_moved_aside(tmp_path: Path) -> None:
    """Attempt 1 of a state folder deleted since left its run folder and log; the new state's
    attempt 1 (recorded later) moves both aside and runs, instead of answering with the old
    process's pid."""
    old = LocalBatch()
    try:
        [ran] = old.submit([_launch(tmp_path, 1, "echo old")])
        end = time.monotonic() + WAIT
        while read_exit_code(tmp_path / "1") is None:  # a bounded wait on a real process
            assert time.monotonic() < end
            old.wait(0.1)
    finally:
        old.close()
    changed = (tmp_path / "1").stat().st_mtime
    os.utime(tmp_path / "1", (changed - 60, changed - 60))  # it ran a minute before the record
    events: list[TargetEvent] = []
    batch = LocalBatch(post=events.append)
    try:
        [answer] = batch.submit([replace(_launch(tmp_path, 1, "echo new"), created=changed)])
        assert answer.handle not in (None, ran.handle)
        _events_until(batch, events, 1)
    finally:
        batch.close()
    aside = f"1.orphaned-{int(changed - 60)}"
    assert (tmp_path / "1.log").read_text() == "new\n"
    assert (tmp_path / f"{aside}.log").read_text() == "old\n"
    assert read_exit_code(tmp_path / aside) == 0


def test_an_answer_with_an_ended_send_posts_its_exit_at_once(tmp_path: Path) -> None:
    """An earlier send's job ended and left only its exit code (no pid file, as where the
    folder was full): the launch starts nothing, answers "-", and posts that exit."""
    run_dir = tmp_path / "2"
    run_dir.mkdir()
    (run_dir / "exit_code").write_text("3\n")
    events: list[TargetEvent] = []
    batch = LocalBatch(post=events.append)
    try:
        [answer] = batch.submit([_launch(tmp_path, 2, "echo started twice")])
    finally:
        batch.close()
    assert answer.handle == "-" and answer.error is None
    assert [(e.attempt_id, _key(e.status)) for e in events if isinstance(e, StatusChanged)] == [
        (2, (JobState.FAILED, 3, "exit code 3"))
    ]
    assert not (tmp_path / "2.log").exists()  # started nothing
