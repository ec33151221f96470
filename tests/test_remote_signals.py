"""A job started detached on an ssh host hears signals as a job on this machine does: it
leads a session of its own (no terminal, so the end of the connection sends it nothing), and
is not started under `nohup`, so a hangup sent to it is recorded like any terminating signal.
Against the real test sshd, through the target protocol."""

from __future__ import annotations

from pathlib import Path

from ccspec.states import FINAL, JobState
from ccspec.targets.base import Status
from ccspec.targets.detached import DetachedBackend
from tests.services import ssh
from tests.test_apply import wait_for
from tests.test_remote_settle import backend, launch, tracked, workdir

__all__ = ["workdir"]  # the fixture, shared with the settle tests


def _final(target: DetachedBackend, tmp: Path, handle: str) -> Status:
    """Poll the job until it ends (a bounded wait for a real process)."""
    seen: list[Status | None] = []

    def ended() -> bool:
        seen.append(target.poll([tracked(tmp, 1, handle)])[1])
        return seen[-1] is not None and seen[-1].state in FINAL

    wait_for(ended, timeout=20)
    status = seen[-1]
    assert status is not None
    return status


def test_a_hangup_sent_to_a_detached_job_is_recorded_as_its_end(
    tmp_path: Path, workdir: str
) -> None:
    target, _ = backend(workdir)
    try:
        [answer] = target.submit([launch(tmp_path, 1, "echo up; sleep 30")])
        assert answer.handle and answer.error is None, answer
        log = f"{workdir}/.ccspec/runs/flow/j1/1/log"
        # the wrapper runs the job's command once its traps are set
        wait_for(lambda: ssh(f"grep -q up {log}").returncode == 0, timeout=20)
        # the job's process group: the wrapper leads it, `sleep` is in it
        assert ssh(f"kill -HUP -{answer.handle}").returncode == 0
        status = _final(target, tmp_path, answer.handle)
    finally:
        target.close()
    assert status.state is JobState.FAILED and status.exit_code == 129, status
