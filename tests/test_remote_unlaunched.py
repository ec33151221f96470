"""A remote launch recorded by a runner that was killed before it got the host's answer:
the next apply asks the host once whether the launch ever reached it, relaunches the job
at once when it did not, and follows it when it did (never twice, never a wait for the
start grace). Against the real test services (sshd on 127.0.0.1:2222, a one-node Slurm).

The killed runner's record is made through the public StateStore API, as the runner leaves
it: an attempt in state `launching` with no handle.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from ccspec.spec.models import Host, SlurmHost, SshHost
from ccspec.spec.resolved import ResolvedJob
from ccspec.state.store import Attempt, StateStore
from ccspec.targets.claims import launch_claim
from ccspec.targets.hosts import backend_for
from ccspec.targets.remote import START_GRACE, RemoteLaunch, Submitted
from tests.services import TestServices, services
from tests.test_apply import ccspec, start, status, trace, wait_for, write
from tests.test_remote import remote_text, slurm_host, ssh_host

FAST = START_GRACE / 2  # an apply that waited for the start grace took longer than this


@pytest.fixture
def svc() -> TestServices:
    return services()


@pytest.fixture
def remote_dir() -> str:
    return f"~/t/{uuid.uuid4().hex[:12]}"


def ssh_model(svc: TestServices, remote_dir: str) -> SshHost:
    """The test ssh host, as the spec's `ssh_host()` names it."""
    return SshHost(
        type="ssh",
        host="127.0.0.1",
        port=svc.ssh_port,
        user=svc.ssh_user,
        key=str(svc.ssh_key),
        workdir=remote_dir,
    )


def record_launch(repo: Path, job: str, host: str) -> Attempt:
    """What a runner killed between recording a launch and the host's answer leaves."""
    store = StateStore(repo / ".ccspec")
    try:
        return store.begin_attempt(
            "flow",
            job,
            job,
            host=host,
            fingerprint="sha256:" + "0" * 64,
            parts={},
            # the run folder an earlier ccspec recorded (JOB/N; now JOB.N): still followed
            run_dir=Path(".ccspec", "runs", "flow", job, "1"),
            log_path=repo / ".ccspec" / "logs" / "flow" / job / "1.log",
        )
    finally:
        store.close()


def attempts(repo: Path, job: str) -> list[tuple[int, str]]:
    store = StateStore(repo / ".ccspec")
    try:
        return [(a.number, a.state.value) for a in store.attempts("flow", job)]
    finally:
        store.close()


def timed_apply(repo: Path) -> tuple[str, float]:
    began = time.monotonic()
    result = ccspec(repo, "apply", "flow.yaml")
    took = time.monotonic() - began
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, took


SSH_RUN = "echo ran >> LEDGER; sleep 1"
SSH_FLOW = """
    version: 1
    hosts: {{box: {host}}}
    jobs:
      a: {{host: box, run: "echo ran >> LEDGER; sleep 1"}}
      b: {{run: "echo b >> trace", needs: [a]}}
"""


def test_an_ssh_launch_that_never_reached_the_host_runs_once_at_once(
    repo: Path, svc: TestServices, remote_dir: str
) -> None:
    write(repo, SSH_FLOW.format(host=ssh_host(svc, remote_dir)))
    recorded = record_launch(repo, "a", "box")
    out, took = timed_apply(repo)
    assert took < FAST, f"the apply took {took:.1f}s: it waited for the start grace"
    assert remote_text(f"{remote_dir}/flow/LEDGER").split() == ["ran"]
    assert trace(repo) == ["b"]
    assert attempts(repo, "a") == [(1, "lost"), (2, "succeeded")]
    assert "attached" not in out
    assert status(repo)["jobs"]["a"]["state"] == "succeeded"
    # a late copy of the killed runner's launch (a runner that was only stalled) is refused
    launch = _launch(repo, ssh_model(svc, remote_dir), SSH_RUN, recorded)
    assert launch.error and "never started" in launch.error
    assert remote_text(f"{remote_dir}/flow/LEDGER").split() == ["ran"]


def _launch(repo: Path, host: Host, run: str, attempt: Attempt) -> Submitted:
    """Submit the recorded attempt of `a` by hand, through the same backend and wrapper as
    ccspec's own launches (a launch whose answer the killed runner never got)."""
    job = ResolvedJob("a", "a", "run", "x", run=run)
    assert attempt.run_dir and attempt.log_path and attempt.created
    launch = RemoteLaunch(
        attempt.id,
        "flow",
        job,
        attempt.number,
        repo,
        attempt.run_dir,
        Path(attempt.log_path),
        {},
        claim=launch_claim(attempt.id, attempt.created),
    )
    backend = backend_for(host)
    try:
        return backend.submit([launch])[0]
    finally:
        backend.close()


def test_an_ssh_launch_that_reached_the_host_is_followed_not_repeated(
    repo: Path, svc: TestServices, remote_dir: str
) -> None:
    write(repo, SSH_FLOW.format(host=ssh_host(svc, remote_dir)))
    attempt = record_launch(repo, "a", "box")
    submitted = _launch(repo, ssh_model(svc, remote_dir), SSH_RUN, attempt)
    assert submitted.error is None and submitted.handle
    out, took = timed_apply(repo)
    assert took < FAST
    assert "attached" in out
    assert remote_text(f"{remote_dir}/flow/LEDGER").split() == ["ran"]  # launched once
    assert trace(repo) == ["b"]
    assert attempts(repo, "a") == [(1, "succeeded")]


SLURM_FLOW = """
    version: 1
    hosts: {{hpc: {host}}}
    jobs:
      a: {{host: hpc, run: "echo ran >> {repo}/LEDGER; sleep 1"}}
      b: {{run: "echo b >> trace", needs: [a]}}
"""


def test_a_slurm_launch_that_was_never_submitted_runs_once_at_once(
    repo: Path, svc: TestServices
) -> None:
    write(repo, SLURM_FLOW.format(host=slurm_host(svc, repo / "slurm-work"), repo=repo))
    record_launch(repo, "a", "hpc")
    _, took = timed_apply(repo)
    assert took < FAST, f"the apply took {took:.1f}s: it waited for the start grace"
    assert (repo / "LEDGER").read_text().split() == ["ran"]
    assert trace(repo) == ["b"]
    assert attempts(repo, "a") == [(1, "lost"), (2, "succeeded")]


def test_a_slurm_job_submitted_before_its_id_was_kept_is_followed_not_repeated(
    repo: Path, svc: TestServices
) -> None:
    """sbatch ran but the job's id reached neither the runner nor the run folder: squeue
    finds it by its comment (ccspec:WF/JOB/N/CLAIM). It is held until the apply found it."""
    workdir = repo / "slurm-work"
    write(repo, SLURM_FLOW.format(host=slurm_host(svc, workdir), repo=repo))
    attempt = record_launch(repo, "a", "hpc")
    held = SlurmHost(
        type="slurm", partition=svc.slurm_partition, workdir=str(workdir), sbatch={"hold": True}
    )
    submitted = _launch(repo, held, f"echo ran >> {repo}/LEDGER; sleep 1", attempt)
    assert submitted.error is None and submitted.handle
    id_file = workdir / ".ccspec" / "runs" / "flow" / "a" / "1" / "slurm_id"
    id_file.unlink()
    proc = start(repo, "apply", "flow.yaml")
    try:
        wait_for(id_file.exists)  # found by the apply
        subprocess.run(["scontrol", "release", submitted.handle], check=True)
        out, err = proc.communicate(timeout=FAST)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        subprocess.run(["scancel", submitted.handle], check=False)  # no held job left behind
    assert proc.returncode == 0, out + err
    assert id_file.read_text().strip() == submitted.handle
    assert "attached" in out
    assert (repo / "LEDGER").read_text().split() == ["ran"]
    assert trace(repo) == ["b"]
    assert attempts(repo, "a") == [(1, "succeeded")]
