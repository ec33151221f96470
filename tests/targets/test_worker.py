"""A host's worker thread sends a batch the host refused for now again, with backoff and a
bounded number of times, and passes a permanent refusal on at once. The host is a FAKE
wsl.exe (there is no Windows here) that runs its script with bash on this machine, after
dropping the first N launch commands it is given, or answering them with a refusal."""

from __future__ import annotations

import queue
import subprocess
import time
from pathlib import Path

from ccspec.spec.models import Host, SlurmHost, SshHost, WslHost
from ccspec.spec.resolved import ResolvedJob
from ccspec.targets.base import LaunchAnswered, RemoteLaunch, Submitted, TargetEvent
from ccspec.targets.hosts import backend_for
from ccspec.targets.worker import HostWorker
from tests.services import services

FAKE = """#!/bin/bash
# FAKE wsl.exe for tests: wsl.exe -d DISTRO -- bash -lc SCRIPT, run with bash here. A script
# that launches jobs (it defines the launch function `L`) is counted in `sends`; while `drop`
# holds a number above 0 it is dropped unanswered (as by a dead connection); with `refuse`
# present the host answers that it refuses the launch.
[ "$1" = -d ] && [ "$3" = -- ] || exit 99
shift 3
case "$*" in *'L() {{'*)
  echo send >> {dir}/sends
  n=$(cat {dir}/drop 2>/dev/null || echo 0)
  if [ "$n" -gt 0 ]; then echo $((n - 1)) > {dir}/drop; exit 255; fi
  if [ -e {dir}/refuse ]; then echo '@@ 1 err the partition does not exist'; exit 0; fi
esac
exec "$@"
"""


def _worker(
    tmp: Path, retries: int, gather: float = 0.005
) -> tuple[HostWorker, queue.SimpleQueue[TargetEvent]]:
    fake = tmp / "fake-wsl.exe"
    fake.write_text(FAKE.format(dir=tmp))
    fake.chmod(0o755)
    host = WslHost(type="wsl", distro="Ubuntu", wsl_exe=str(fake), workdir=str(tmp / "home"))
    posted: queue.SimpleQueue[TargetEvent] = queue.SimpleQueue()
    worker = HostWorker(
        backend_for(host), posted.put,
        retries=retries, retry_first=0.05, gather=gather,
    )  # fmt: skip
    return worker, posted


def _launch(tmp: Path, i: int = 1) -> RemoteLaunch:
    job = ResolvedJob(f"a{i}", f"a{i}", "run", "win", run="echo ran >> ledger")
    return RemoteLaunch(
        i, "flow", job, 1, tmp, f".ccspec/runs/flow/a{i}.1", tmp / f"a{i}.log", {},
        claim=f"launch.{i}.1",
    )  # fmt: skip


def _answer(tmp: Path, retries: int) -> tuple[Submitted, int]:
    """Submit one launch through a worker: its answer, and how many times it was sent."""
    worker, posted = _worker(tmp, retries)
    try:
        worker.submit(_launch(tmp))
        event = posted.get(timeout=30)
    finally:
        worker.close()
    assert isinstance(event, LaunchAnswered), event
    answer = event.result
    return answer, len((tmp / "sends").read_text().split())


def test_a_launch_refused_for_now_is_sent_again_and_runs_once(tmp_path: Path) -> None:
    (tmp_path / "drop").write_text("2")
    answer, sends = _answer(tmp_path, retries=4)
    assert answer.handle and answer.error is None, answer
    assert sends == 3
    ledger = tmp_path / "home" / "flow" / "ledger"
    end = time.monotonic() + 10  # a bounded wait for the detached job
    while not ledger.exists():
        assert time.monotonic() < end
        time.sleep(0.01)
    assert ledger.read_text().split() == ["ran"]


def test_the_sends_are_bounded_and_the_refusal_stays_temporary(tmp_path: Path) -> None:
    (tmp_path / "drop").write_text("100")
    answer, sends = _answer(tmp_path, retries=2)
    assert answer.handle is None and answer.temporary, answer
    assert sends == 3


def test_a_permanent_refusal_is_passed_on_at_once(tmp_path: Path) -> None:
    (tmp_path / "refuse").touch()
    answer, sends = _answer(tmp_path, retries=4)
    assert answer.handle is None and not answer.temporary, answer
    assert answer.error and "the partition does not exist" in answer.error
    assert sends == 1


def _answer_without_backoff(host: Host, tmp: Path) -> tuple[Submitted, float]:
    """Submit one launch through a worker whose backoff would take 30 s: its answer, and
    when the submit began (monotonic)."""
    posted: queue.SimpleQueue[TargetEvent] = queue.SimpleQueue()
    worker = HostWorker(backend_for(host), posted.put, retry_first=30.0)
    began = time.monotonic()
    try:
        worker.submit(_launch(tmp))
        event = posted.get(timeout=60)
    finally:
        worker.close()
    assert isinstance(event, LaunchAnswered), event
    return event.result, began


def test_slurm_refusing_a_partition_is_a_permanent_refusal(tmp_path: Path) -> None:
    """The real test cluster: sbatch rejects a partition that does not exist; the worker
    passes that on at once (no backoff), marked permanent."""
    host = SlurmHost(type="slurm", partition="no-such-partition", workdir=str(tmp_path / "w"))
    answer, began = _answer_without_backoff(host, tmp_path)
    assert answer.handle is None and not answer.temporary, answer
    assert "partition" in (answer.error or "").lower()
    assert time.monotonic() - began < 30  # no backoff of 30 s was waited


def test_ssh_refusing_the_key_is_a_permanent_refusal(tmp_path: Path) -> None:
    """The real test sshd, with a key it does not know: refused at once, permanent."""
    svc = services()
    key = tmp_path / "unknown-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    host = SshHost(
        type="ssh", host="127.0.0.1", port=svc.ssh_port, user=svc.ssh_user, key=str(key),
        workdir=f"~/t/{tmp_path.name}",
    )  # fmt: skip
    answer, began = _answer_without_backoff(host, tmp_path)
    assert answer.handle is None and not answer.temporary, answer
    assert "authentication failed" in (answer.error or "")
    assert time.monotonic() - began < 30  # no backoff of 30 s was waited


def test_a_round_the_engine_flushes_goes_at_once_as_one_batch(tmp_path: Path) -> None:
    """The engine says when it has handed its round's launches: the worker sends them then,
    together, without waiting out its gathering pause (30 s here, to tell)."""
    worker, posted = _worker(tmp_path, retries=0, gather=30.0)
    began = time.monotonic()
    try:
        worker.submit(_launch(tmp_path, 1))
        worker.submit(_launch(tmp_path, 2))
        worker.flush()
        events = [posted.get(timeout=60), posted.get(timeout=60)]
    finally:
        worker.close()
    assert time.monotonic() - began < 30  # the pause was not waited out
    assert all(isinstance(e, LaunchAnswered) and e.result.handle for e in events), events
    assert len((tmp_path / "sends").read_text().split()) == 1  # one launch command for both
