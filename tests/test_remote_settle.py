"""A batch's launch command on an ssh host also reports the jobs that ended at once: short
jobs are known to have ended (exit code, log, end time) with no poll of their own; long jobs
are followed by polls as before. Against the real test sshd, through the target protocol;
the shell is the real ssh connection, wrapped to count the commands sent."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccspec.spec.models import SshHost
from ccspec.spec.resolved import ResolvedJob
from ccspec.states import JobState
from ccspec.targets.base import RemoteLaunch, Status, Tracked
from ccspec.targets.detached import DetachedBackend
from ccspec.targets.shells import Result, Shell, SshShell
from tests.services import services, ssh
from tests.test_apply import wait_for


class CountingShell:
    """The real ssh shell, counting the commands run through it."""

    def __init__(self, inner: Shell) -> None:
        self.inner = inner
        self.label = inner.label
        self.commands = 0

    def run(self, script: str, *, stdin: bytes | None = None, timeout: float = 120.0) -> Result:
        self.commands += 1
        return self.inner.run(script, stdin=stdin, timeout=timeout)

    def put(self, data: bytes, remote: str) -> None:
        self.inner.put(data, remote)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def workdir() -> Iterator[str]:
    path = f"~/t/{uuid.uuid4().hex[:12]}"
    yield path
    ssh(f"rm -rf {path}")


def backend(workdir: str) -> tuple[DetachedBackend, CountingShell]:
    svc = services()
    host = SshHost(type="ssh", host="127.0.0.1", port=svc.ssh_port, user=svc.ssh_user)
    shell = CountingShell(SshShell(host.host, user=host.user, port=host.port, key=str(svc.ssh_key)))
    return DetachedBackend(shell, workdir), shell


def launch(tmp: Path, i: int, command: str) -> RemoteLaunch:
    job = ResolvedJob(f"j{i}", f"j{i}", "run", "box", run=command)
    return RemoteLaunch(
        i, "flow", job, 1, tmp, f".ccspec/runs/flow/j{i}/1", tmp / f"{i}.log", {},
        claim=f"launch.{i}.1",
    )  # fmt: skip


def tracked(tmp: Path, i: int, handle: str | None) -> Tracked:
    return Tracked(i, handle, f".ccspec/runs/flow/j{i}/1", tmp / f"{i}.log", time.time())


def test_short_jobs_are_reported_by_their_launch(tmp_path: Path, workdir: str) -> None:
    target, shell = backend(workdir)
    try:
        answers = target.submit([launch(tmp_path, i, f"echo hi-{i}; exit {i}") for i in (1, 2, 3)])
        assert all(a.handle for a in answers), answers
        sent = shell.commands
        states = target.poll([tracked(tmp_path, a.attempt_id, a.handle) for a in answers])
        assert shell.commands == sent  # nothing asked of the host
    finally:
        target.close()
    assert states[1] is not None and states[1].state is JobState.FAILED
    assert [s.exit_code for s in states.values() if s is not None] == [1, 2, 3]
    assert all(s is not None and s.finished is not None for s in states.values())
    assert [(tmp_path / f"{i}.log").read_text() for i in (1, 2, 3)] == [
        "hi-1\n",
        "hi-2\n",
        "hi-3\n",
    ]


def test_a_long_job_is_polled_and_then_reported_once(tmp_path: Path, workdir: str) -> None:
    target, shell = backend(workdir)
    try:
        (answer,) = target.submit([launch(tmp_path, 7, "echo started; sleep 1; echo done")])
        assert answer.handle
        job = tracked(tmp_path, 7, answer.handle)
        sent = shell.commands
        first = target.poll([job])[7]
        assert shell.commands == sent + 1 and first is not None
        assert first.state is JobState.RUNNING
        seen: list[Status | None] = []

        def ended() -> bool:  # polled until the real job ends
            seen.append(target.poll([job])[7])
            return seen[-1] is not None and seen[-1].state is not JobState.RUNNING

        wait_for(ended)
    finally:
        target.close()
    status = seen[-1]
    assert status is not None and status.state is JobState.SUCCEEDED
    assert (tmp_path / "7.log").read_text() == "started\ndone\n"  # mirrored once, whole
