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
from ccspec.targets.remote import LOG_CHUNK, POLL_LOG_BUDGET, Tracked, fetch_results, parse_poll
from ccspec.targets.shells import LocalShell, SshShell
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
    tracked = [
        Tracked(i, str(1000 + i), run_dir, mirror / f"{i}.log", time.time())
        for i, (run_dir, _) in enumerate(jobs)
    ]
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
        # the budget is shared in turns: no job
        if polls == -(-JOBS * LOG_CHUNK // POLL_LOG_BUDGET):
            # waits behind the others' long logs longer than it takes to serve each once
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
    """32 MB of log take several polls to mirror, one right after the other; the job's
    recorded end is still its own, and the output at the end of the log is found."""
    svc = services()
    workdir = f"~/t/{uuid.uuid4().hex[:12]}"
    host = (
        f"{{type: ssh, host: 127.0.0.1, port: {svc.ssh_port}, user: {svc.ssh_user}, key: {svc.ssh_key}, "
        f"workdir: {workdir}}}"
    )
    (repo / "flow.yaml").write_text(
        textwrap.dedent(f"""
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
    """)
    )
    result = subprocess.run(
        [sys.executable, "-m", "ccspec", "apply", "flow.yaml"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (repo / "after.txt").read_text().strip() == "42"
    [attempt] = StateStore(repo / ".ccspec").attempts("flow", "big")
    ended = float(ssh(f"cat {workdir}/flow/ended").stdout)
    assert attempt.finished is not None
    assert abs(attempt.finished - ended) < 0.5, (
        f"recorded {attempt.finished - ended:.1f}s after the job ended"
    )
    # its log is fetched poll after poll without backing off: the dependant starts soon
    [after] = StateStore(repo / ".ccspec").attempts("flow", "after")
    assert after.started is not None and after.started - ended < 4, (
        f"after started {after.started - ended:.1f}s later"
    )


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


def test_jobs_that_keep_printing_do_not_starve_the_others(tmp_path: Path) -> None:
    """Two running jobs print a full share between every two polls; the third job's short
    log still arrives within two polls."""
    workdir, mirror = tmp_path / "host", tmp_path / "mirror"
    mirror.mkdir()
    folders = []
    for i in range(3):
        folder = workdir / f".ccspec/runs/flow/j{i}/1"
        folder.mkdir(parents=True)
        (folder / "pid").write_text(f"{os.getpid()}\n")  # alive: this test's own process
        (folder / "log").write_bytes(b"# ccspec output short=1\n" if i == 2 else b"")
        folders.append(folder)
    tracked = [
        Tracked(i, str(os.getpid()), f".ccspec/runs/flow/j{i}/1", mirror / f"{i}.log", time.time())
        for i in range(3)
    ]
    backend = DetachedBackend(LocalShell(), str(workdir))
    for _ in range(2):
        for folder in folders[:2]:
            with open(folder / "log", "ab") as fh:
                fh.write(b"p" * LOG_CHUNK)
        states = backend.poll(tracked)
        assert all(s is not None and s.state is JobState.RUNNING for s in states.values())
    assert (mirror / "2.log").read_bytes() == b"# ccspec output short=1\n"


def test_a_long_answer_over_ssh_arrives_whole() -> None:
    """The exit status may arrive before the output the channel's window held back: the
    answer ends at the channel's EOF (it was cut short in about one run in five)."""
    svc = services()
    shell = SshShell("127.0.0.1", user=svc.ssh_user, port=svc.ssh_port, key=str(svc.ssh_key))
    try:
        sizes = [
            len(shell.run(f"head -c {POLL_LOG_BUDGET} /dev/zero; exit 3").out) for _ in range(10)
        ]
    finally:
        shell.close()
    assert sizes == [POLL_LOG_BUDGET] * 10


def test_a_poll_answer_cut_short_is_not_complete(tmp_path: Path) -> None:
    tracked = Tracked(1, "1", "r", tmp_path / "1.log", 0.0)
    found = parse_poll(b"@@ 1 0 d - 10 0 - -\n0123", [tracked])
    assert (tmp_path / "1.log").read_bytes() == b"0123"
    assert found[1].exit_code == 0 and not found[1].complete and found[1].left == 6
