"""A job started detached on an ssh host hears signals as a job on this machine does: it
leads a session of its own (no terminal, so the end of the connection sends it nothing), and
is not started under `nohup`, so a hangup sent to it is recorded like any terminating signal.
Against the real test sshd, through the target protocol."""

from __future__ import annotations

import time
from pathlib import Path

from ccspec.states import FINAL, JobState
from ccspec.targets.base import Status
from ccspec.targets.detached import DetachedBackend
from tests.services import ssh
from tests.test_remote_settle import backend, launch, tracked, workdir

__all__ = ["workdir"]  # the fixture, shared with the settle tests


def _final(target: DetachedBackend, tmp: Path, handle: str) -> Status:
    """Poll the job until it ends (a bounded wait for a real process)."""
    end = time.monotonic() + 20
    while True:
        status = target.poll([tracked(tmp, 1, handle)])[1]
        if status is not None and status.state in FINAL:
            return status
        assert time.monotonic() < end, f"still {status} after 20 s"
        time.sleep(0.05)


def test_a_hangup_sent_to_a_detached_job_is_recorded_as_its_end(
    tmp_path: Path, workdir: str
) -> None:
    target, _ = backend(workdir)
    try:
        [answer] = target.submit([launch(tmp_path, 1, "sleep 30")])
        assert answer.handle and answer.error is None, answer
        pid_file = f"{workdir}/.ccspec/runs/flow/j1/1/pid"
        end = time.monotonic() + 20  # the wrapper writes its pid once its traps are set
        while ssh(f"test -s {pid_file}").returncode != 0:
            assert time.monotonic() < end
            time.sleep(0.05)
        # the job's process group: the wrapper leads it, `sleep` is in it
        assert ssh(f"kill -HUP -{answer.handle}").returncode == 0
        status = _final(target, tmp_path, answer.handle)
    finally:
        target.close()
    assert status.state is JobState.FAILED and status.exit_code == 129, status
