"""Remote logs are mirrored in bounded pieces: one poll of a host brings at most
POLL_LOG_BUDGET bytes of all its jobs' logs (LOG_CHUNK of one job), a job whose log is still
being fetched is reported running (and the host polled again soon), and its end is the time
its wrapper wrote the exit code, however many polls the log took. The poll script runs for
real in bash on this machine (`LocalShell`), as it does on a Slurm login node, and end to end
on the ssh test service."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import tracemalloc
import uuid
from pathlib import Path

from ccspec.state.store import StateStore
from ccspec.states import JobState
from ccspec.targets.detached import DetachedBackend
from ccspec.targets.remote import LOG_CHUNK, POLL_LOG_BUDGET, Tracked, fetch_results
from ccspec.targets.shells import LocalShell
from tests.services import services, ssh

JOBS = 5
LOG_BYTES = 10 << 20
ENDED_AGO = 100.0  # seconds before the polls that the jobs wrote their exit codes


def _job(workdir: Path, i: int) -> tuple[str, float]:
    """A job's run folder on the "host", as its wrapper leaves it, and when it ended."""
    run_dir = f".ccspec/runs/flow/j{i}/1"
    folder = workdir / run_dir
    folder.mkdir(parents=True)
    with open(folder / "log", "wb") as fh:
        fh.write(b"x" * (LOG_BYTES - 24) + b"\n# ccspec output done=1\n")
    (folder / "pid").write_text("999999999\n")
    (folder / "exit_code").write_text("0\n")
    ended = time.time() - ENDED_AGO
    os.utime(folder / "exit_code", (ended, ended))
    return run_dir, ended


def test_a_poll_brings_a_bounded_share_of_long_logs(tmp_path: Path) -> None:
    workdir, mirror = tmp_path / "host", tmp_path / "mirror"
    mirror.mkdir()
    jobs = [_job(workdir, i) for i in range(JOBS)]
    tracked = [Tracked(i, str(1000 + i), run_dir, mirror / f"{i}.log", time.time()) for i, (run_dir, _) in enumerate(jobs)]
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
        if polls == 2:  # the budget is shared in turns: no job waits behind the others' long logs
            assert all(sizes)
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
    # the end is when the exit code was written (give or take a poll's round trip)
    for i, finished in done.items():
        assert finished is not None and abs(finished - jobs[i][1]) < 0.5


def test_an_ssh_job_with_a_long_log_ends_when_it_ended(repo: Path) -> None:
    """32 MB of log take several polls to mirror; the job's recorded end is still its own,
    and the output at the end of the log is found."""
    svc = services()
    workdir = f"~/t/{uuid.uuid4().hex[:12]}"
    host = (f"{{type: ssh, host: 127.0.0.1, port: {svc.ssh_port}, user: {svc.ssh_user}, key: {svc.ssh_key}, "
            f"workdir: {workdir}}}")
    (repo / "flow.yaml").write_text(textwrap.dedent(f"""
        version: 1
        hosts: {{box: {host}}}
        jobs:
          big:
            host: box
            run: |
              yes "$(head -c 999 /dev/zero | tr '\\0' x)" | head -c {32_000_000}
              echo '# ccspec output last=42'
              date +%s.%N > ended
          after: {{needs: [big], run: "echo {{{{ jobs.big.outputs.last }}}} > after.txt"}}
    """))
    result = subprocess.run([sys.executable, "-m", "ccspec", "apply", "flow.yaml"], cwd=repo, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (repo / "after.txt").read_text().strip() == "42"
    [attempt] = StateStore(repo / ".ccspec").attempts("flow", "big")
    ended = float(ssh(f"cat {workdir}/flow/ended").stdout)
    assert attempt.finished is not None
    assert abs(attempt.finished - ended) < 0.5, f"recorded {attempt.finished - ended:.1f}s after the job ended"


def test_results_are_fetched_in_bounded_pieces(tmp_path: Path) -> None:
    """An executed notebook three times a poll's budget comes back whole, in pieces, with
    ccspec holding about two pieces at a time (the answer and the pipe's buffers)."""
    workdir, local = tmp_path / "host", tmp_path / "local"
    run_dir = ".ccspec/runs/flow/nb/1"
    (workdir / run_dir).mkdir(parents=True)
    notebook = workdir / run_dir / "executed.ipynb"
    notebook.write_bytes(os.urandom(POLL_LOG_BUDGET) * 3 + b"end")
    fetch = {"executed.ipynb": local / "1.ipynb", "missing.txt": local / "missing.txt"}
    backend = DetachedBackend(LocalShell(), str(workdir))
    tracked = Tracked(1, "1", run_dir, local / "1.log", time.time(), fetch=fetch)
    tracemalloc.start()
    try:
        fetch_results(backend.layout, [tracked])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (local / "1.ipynb").read_bytes() == notebook.read_bytes()
    assert sorted(p.name for p in local.iterdir()) == ["1.ipynb"]
    assert peak < 2.5 * POLL_LOG_BUDGET, f"peak {peak / 2**20:.0f} MiB"
