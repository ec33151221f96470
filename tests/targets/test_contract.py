"""One contract, every target: this machine (LocalBatch), ssh (the real test sshd), Slurm
(the real one-node test cluster) and WSL (a FAKE wsl.exe: there is no Windows here; it runs
the script it is given with bash on this machine). Each case uses the targets only through
the protocol of ccspec.targets.base: submit a batch, poll, cancel, read_log, fence, close.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ccspec.resources import template_path
from ccspec.spec.models import SlurmHost, SshHost, WslHost
from ccspec.spec.resolved import ResolvedJob
from ccspec.state.private import with_umask
from ccspec.states import FINAL, JobState
from ccspec.targets.base import Launch, RemoteLaunch, Status, Submitted, Target, Tracked
from ccspec.targets.hosts import backend_for
from ccspec.targets.local_batch import LocalBatch
from tests.services import services, ssh

TARGETS = ["local", "ssh", "slurm", "wsl"]
WAIT = 30.0  # seconds a case waits for a job's end at most (Slurm's node may be busy)


@dataclass
class Harness:
    """How a case reaches one target: a fresh target object, a launch of a shell command,
    and a shell on the target's host (to look at what jobs left, or to leave a run folder)."""

    name: str
    make: Callable[[], Target[Any]]
    launch: Callable[[int, str], Any]
    run_dir: Callable[[int], str]  # as the protocol's Tracked names it
    host: Callable[[str], str]  # run a shell command in the workdir on the host: its output
    log: Callable[[int], Path]  # the log on this machine (remote ones: the mirror)
    tmp: Path  # the test's folder on this machine

    def tracked(self, attempt_id: int, handle: str | None, since: float | None = None) -> Tracked:
        return Tracked(
            attempt_id,
            handle,
            self.run_dir(attempt_id),
            self.log(attempt_id),
            time.time() if since is None else since,
        )


def _local(tmp: Path) -> Harness:
    wrapper = with_umask(template_path("run-wrapper.sh").read_text())
    runs = tmp / "runs"

    def launch(attempt_id: int, command: str) -> Launch:
        run_dir = runs / str(attempt_id)
        log = runs / f"{attempt_id}.log"
        argv = ["bash", "-c", wrapper, "bash", command, str(log), str(tmp)]
        env = {**os.environ, "CCSPEC_RUN_DIR": str(run_dir)}
        return Launch(
            "flow", f"j{attempt_id}", 1, argv, env, tmp, run_dir, log, wrapped=True,
            attempt_id=attempt_id,
        )  # fmt: skip

    def host(command: str) -> str:
        return subprocess.run(
            ["bash", "-c", command], cwd=tmp, capture_output=True, text=True
        ).stdout

    return Harness(
        "local",
        LocalBatch,
        launch,
        lambda i: str(runs / str(i)),
        host,
        lambda i: runs / f"{i}.log",
        tmp,
    )


def _remote(
    name: str, tmp: Path, make: Callable[[], Target[Any]], root: str, host: Callable[[str], str]
) -> Harness:
    def launch(attempt_id: int, command: str) -> RemoteLaunch:
        job = ResolvedJob(f"j{attempt_id}", f"j{attempt_id}", "run", name, run=command)
        return RemoteLaunch(
            attempt_id, "flow", job, 1, tmp, f".ccspec/runs/flow/j{attempt_id}/1",
            tmp / "mirror" / f"{attempt_id}.log", {}, claim=f"launch.{attempt_id}.1",
        )  # fmt: skip

    return Harness(
        name,
        make,
        launch,
        lambda i: f".ccspec/runs/flow/j{i}/1",
        lambda c: host(f"mkdir -p {root} && cd {root} && {c}"),
        lambda i: tmp / "mirror" / f"{i}.log",
        tmp,
    )


def _local_shell(command: str) -> str:
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True).stdout


def _harness(name: str, tmp: Path) -> Harness:
    if name == "local":
        return _local(tmp)
    if name == "ssh":
        svc = services()
        # the same for every process that builds this harness for this test
        workdir = f"~/t/{uuid.uuid5(uuid.NAMESPACE_URL, str(tmp)).hex[:12]}"
        host = SshHost(
            type="ssh", host="127.0.0.1", port=svc.ssh_port, user=svc.ssh_user,
            key=str(svc.ssh_key), workdir=workdir,
        )  # fmt: skip
        return _remote(name, tmp, lambda: backend_for(host), workdir, lambda c: ssh(c).stdout)
    if name == "slurm":
        workdir = str(tmp / "slurm-work")
        slurm = SlurmHost(type="slurm", partition=services().slurm_partition, workdir=workdir)
        return _remote(name, tmp, lambda: backend_for(slurm), workdir, _local_shell)
    fake = tmp / "fake-wsl.exe"  # FAKE wsl.exe: wsl.exe -d DISTRO -- bash -lc SCRIPT
    fake.write_text(
        "#!/bin/bash\n# FAKE wsl.exe for tests: runs the script with bash on this machine\n"
        '[ "$1" = -d ] && [ "$3" = -- ] || exit 99\nshift 3\nexec "$@"\n'
    )
    fake.chmod(0o755)
    workdir = str(tmp / "wsl-home")
    wsl = WslHost(type="wsl", distro="Ubuntu", wsl_exe=str(fake), workdir=workdir)
    return _remote(name, tmp, lambda: backend_for(wsl), workdir, _local_shell)


@pytest.fixture(params=TARGETS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    return _harness(str(request.param), tmp_path)


@pytest.fixture
def target(harness: Harness) -> Iterator[Target[Any]]:
    made = harness.make()
    try:
        yield made
    finally:
        made.close()


def submit(target: Target[Any], launches: Sequence[Any]) -> list[Submitted]:
    answers = target.submit(launches)
    assert [a.attempt_id for a in answers] == [launch.attempt_id for launch in launches]
    assert all(a.handle and a.error is None for a in answers), answers
    return answers


def until(
    target: Target[Any], tracked: Sequence[Tracked], done: Callable[[Status], bool]
) -> dict[int, Status]:
    """Poll (a bounded loop on real jobs) until every attempt's status satisfies `done`."""
    last: dict[int, Status | None] = {}
    end = time.monotonic() + WAIT
    while time.monotonic() < end:
        last = target.poll(tracked)
        if all(s is not None and done(s) for s in last.values()):
            return {i: s for i, s in last.items() if s is not None}
        time.sleep(0.1)
    raise AssertionError(f"not there after {WAIT:g}s: {last}")


def ended(status: Status) -> bool:
    return status.state in FINAL


def test_a_batch_runs_and_reports_exit_codes(harness: Harness, target: Target[Any]) -> None:
    launches = [harness.launch(1, "echo one"), harness.launch(2, "echo two; exit 3")]
    answers = submit(target, launches)
    states = until(target, [harness.tracked(a.attempt_id, a.handle) for a in answers], ended)
    assert (states[1].state, states[1].exit_code) == (JobState.SUCCEEDED, 0)
    assert (states[2].state, states[2].exit_code) == (JobState.FAILED, 3)
    assert states[2].reason == "exit code 3"


def test_a_job_that_kills_itself_with_kill_is_not_a_success(
    harness: Harness, target: Target[Any]
) -> None:
    """On this machine the job's parent saw the signal, whichever way it started (forked by
    the launcher: $BASHPID; spawned, as a command naming $$ is): "killed by signal 9".
    Elsewhere nobody saw it: a failure or lost, never a success."""
    launches = [harness.launch(1, "kill -KILL $BASHPID"), harness.launch(2, "kill -KILL $$")]
    answers = submit(target, launches)
    states = until(target, [harness.tracked(a.attempt_id, a.handle) for a in answers], ended)
    for status in states.values():
        if harness.name == "local":
            assert (status.state, status.reason) == (JobState.FAILED, "killed by signal 9")
        else:
            assert status.state in (JobState.FAILED, JobState.LOST), status


def test_cancel_terms_then_kills(harness: Harness, target: Target[Any]) -> None:
    """TERM ends a job that takes it; one that ignores TERM ends when forced (KILL). The
    jobs sleep in short steps: a shell runs its TERM trap between commands."""
    loop = "echo ready; while :; do sleep 0.2; done"
    launches = [harness.launch(1, loop), harness.launch(2, f"trap '' TERM; {loop}")]
    answers = submit(target, launches)
    polite, stubborn = (harness.tracked(a.attempt_id, a.handle) for a in answers)
    end = time.monotonic() + WAIT
    while not all(b"ready" in target.read_log(t, 0) for t in (polite, stubborn)):
        assert time.monotonic() < end, "the jobs did not start"
        time.sleep(0.1)
    target.cancel([polite, stubborn], False)
    assert until(target, [polite], ended)[1].state is not JobState.SUCCEEDED
    if not target.queues:  # Slurm cancels the whole job itself
        assert target.poll([stubborn])[2] == Status(JobState.RUNNING)
    target.cancel([stubborn], True)
    assert until(target, [stubborn], ended)[2].state is not JobState.SUCCEEDED


def test_read_log_gives_the_range_asked_for(harness: Harness, target: Target[Any]) -> None:
    (answer,) = submit(target, [harness.launch(1, "printf '<<abcdefghij>>'")])
    tracked = harness.tracked(1, answer.handle)
    until(target, [tracked], ended)
    whole = target.read_log(tracked, 0, 1 << 20)
    start = whole.index(b"<<") + 2
    assert target.read_log(tracked, start, 4) == b"abcd"
    assert target.read_log(tracked, start + 4, 100) == b"efghij>>"
    assert target.read_log(tracked, len(whole), 10) == b""


def test_a_fresh_target_follows_what_another_started(harness: Harness) -> None:
    """Re-attach: the first target object is closed (as a runner that died), a new one
    polls the attempt by its recorded handle and fences one whose answer was lost."""
    first = harness.make()
    try:
        launch = harness.launch(1, "sleep 1; exit 3")
        (answer,) = submit(first, [launch])
    finally:
        first.close()
    second = harness.make()
    try:
        states = until(second, [harness.tracked(1, answer.handle)], ended)
        assert (states[1].state, states[1].exit_code) == (JobState.FAILED, 3)
        lost_answer = harness.tracked(1, None)
        lost_answer.claim = getattr(launch, "claim", None)
        never = harness.tracked(2, None)
        never.claim = "launch.2.1"
        assert second.fence([lost_answer, never]) == {1: "started", 2: "never"}
        # a late copy of the fenced launch starts nothing
        late = second.submit([harness.launch(2, "echo ran > late")])
        assert late[0].handle is None and not late[0].temporary
    finally:
        second.close()
    assert "ran" not in harness.host("cat flow/late late 2>/dev/null")


def test_a_new_process_follows_an_attempt_another_process_started(harness: Harness) -> None:
    """The attempt is started by a process that then exits (a runner that is gone); this
    one follows it to its end by the handle it recorded."""
    code = (
        "import sys; from pathlib import Path; "
        "from tests.targets.test_contract import _harness; "
        "h = _harness(sys.argv[1], Path(sys.argv[2])); t = h.make(); "
        "print(t.submit([h.launch(1, 'sleep 1; exit 3')])[0].handle); t.close()"
    )
    started = subprocess.run(
        [sys.executable, "-c", code, harness.name, str(harness.tmp)],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    handle = started.stdout.strip()
    assert started.returncode == 0 and handle, started.stderr
    target = harness.make()
    try:
        states = until(target, [harness.tracked(1, handle)], ended)
    finally:
        target.close()
    assert (states[1].state, states[1].exit_code) == (JobState.FAILED, 3)


def test_the_same_launch_sent_twice_runs_once(harness: Harness) -> None:
    """A retry after a lost answer (a new target object sends the same launch again)."""
    launch = harness.launch(1, "echo ran >> ledger; sleep 1")
    first, second = harness.make(), harness.make()
    try:
        (a,) = submit(first, [launch])
        (b,) = submit(second, [launch])
        assert a.handle == b.handle
        until(second, [harness.tracked(1, b.handle)], ended)
    finally:
        first.close()
        second.close()
    assert harness.host("cat flow/ledger ledger 2>/dev/null").split() == ["ran"]


def test_a_job_that_vanished_is_lost(harness: Harness, target: Target[Any]) -> None:
    """A run folder naming a process that is gone, with no exit code, from long ago."""
    gone = subprocess.run(["bash", "-c", "echo $$"], capture_output=True, text=True).stdout
    run_dir = harness.run_dir(1)
    harness.host(
        f"mkdir -p {shlex.quote(run_dir)} && echo {gone.strip()} > {shlex.quote(run_dir)}/pid"
    )
    handle = "999999999" if target.queues else gone.strip()
    status = target.poll([harness.tracked(1, handle, since=time.time() - 3600)])[1]
    assert status is not None and status.state is JobState.LOST, status


def test_a_launch_that_cannot_start_is_refused_and_may_be_sent_again(tmp_path: Path) -> None:
    """This machine: a command that does not exist is a permanent refusal, and nothing of
    the launch is left to block a later one of the same attempt."""
    harness = _local(tmp_path)
    target = harness.make()
    try:
        missing = harness.launch(1, "true")
        broken = Launch(
            missing.workflow, missing.job_id, 1, ["/nonexistent/shell", "-c", "true"],
            missing.env, missing.cwd, missing.run_dir, missing.log_path, wrapped=True,
            attempt_id=1,
        )  # fmt: skip
        (refused,) = target.submit([broken])
        assert refused.handle is None and not refused.temporary and refused.error
        (answer,) = submit(target, [missing])
        states = until(target, [harness.tracked(1, answer.handle)], ended)
        assert states[1].state is JobState.SUCCEEDED
    finally:
        target.close()
