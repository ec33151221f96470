"""Remote logs are mirrored in bounded pieces: one poll of a host brings at most
POLL_LOG_BUDGET bytes of all its jobs' logs (LOG_CHUNK of one job), a job whose log is still
being fetched is reported running (and the host polled again soon), and its end is the time
its wrapper wrote the exit code, however many polls the log took. The poll script runs for
real in bash on this machine (`LocalShell`), as it does on a Slurm login node."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ccspec.states import JobState
from ccspec.targets.detached import DetachedBackend
from ccspec.targets.remote import LOG_CHUNK, POLL_LOG_BUDGET, Tracked
from ccspec.targets.shells import LocalShell

JOBS = 5
LOG_BYTES = 10 << 20
ENDED_AGO = 100.0  # seconds before the polls that the jobs wrote their exit codes


def _job(workdir: Path, i: int) -> str:
    run_dir = f".ccspec/runs/flow/j{i}/1"
    folder = workdir / run_dir
    folder.mkdir(parents=True)
    with open(folder / "log", "wb") as fh:
        fh.write(b"x" * (LOG_BYTES - 24) + b"\n# ccspec output done=1\n")
    (folder / "pid").write_text("999999999\n")
    (folder / "exit_code").write_text("0\n")
    ended = time.time() - ENDED_AGO
    os.utime(folder / "exit_code", (ended, ended))
    return run_dir


def test_a_poll_brings_a_bounded_share_of_long_logs(tmp_path: Path) -> None:
    workdir, mirror = tmp_path / "host", tmp_path / "mirror"
    mirror.mkdir()
    tracked = [Tracked(i, str(1000 + i), _job(workdir, i), mirror / f"{i}.log", time.time()) for i in range(JOBS)]
    backend = DetachedBackend(LocalShell(), str(workdir))
    sizes = [0] * JOBS
    polls = 0
    done: dict[int, float | None] = {}
    while len(done) < JOBS:
        polls += 1
        assert polls <= 10, "the logs were not mirrored in time"
        states = backend.poll([t for t in tracked if t.attempt_id not in done])
        now = [os.path.getsize(t.log_path) if t.log_path.exists() else 0 for t in tracked]
        grown = [b - a for a, b in zip(sizes, now, strict=True)]
        assert sum(grown) <= POLL_LOG_BUDGET and max(grown) <= LOG_CHUNK
        sizes = now
        for t in tracked:
            status = states.get(t.attempt_id)
            if t.attempt_id in done or status is None:
                continue
            if sizes[t.attempt_id] < LOG_BYTES:  # exited, but its log is not all here yet
                assert status.state is JobState.RUNNING and status.extra.get("mirroring")
            else:
                assert status.state is JobState.SUCCEEDED
                done[t.attempt_id] = status.finished
    assert polls >= LOG_BYTES * JOBS // POLL_LOG_BUDGET
    for t in tracked:
        assert t.log_path.read_bytes().endswith(b"x\n# ccspec output done=1\n")
        assert os.path.getsize(t.log_path) == LOG_BYTES
    # the end is when the exit code was written (the host's clock counts whole seconds)
    for finished in done.values():
        assert finished is not None and abs(time.time() - ENDED_AGO - finished) < 3
