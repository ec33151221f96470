"""A state folder that cannot be written (ccspec.state.unwritable): a full disk or a read-only
mount stops a command with exit 5 and a message naming the folder; the database stays intact;
a job whose wrapper could not write its exit code keeps its real outcome; the next apply
after space is freed finishes the run, launching nothing twice. On a real 2 MB tmpfs (the
tests run as root, which may mount it)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ccspec.resources import template_path
from ccspec.states import JobState
from ccspec.targets.base import Status, Tracked
from ccspec.targets.local_batch import LocalBatch


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MB tmpfs, unmounted at the end whatever happened."""
    folder = tmp_path / "small"
    folder.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,nr_inodes=400", "tmpfs", str(folder)], check=True
    )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def ccspec(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccspec", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def integrity(db: Path) -> str:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


FILLS = """
    version: 1
    jobs:
      a: {run: "echo a >> ledger"}
      fill:
        run: 'head -c 3000000 /dev/zero > "$CCSPEC_RUN_DIR/big"; echo fill >> ledger'
        needs: [a]
      b: {run: "echo b >> ledger", needs: [fill]}
"""


def test_a_job_that_fills_the_state_folder_stops_apply_with_exit_5_and_the_next_apply_recovers(
    repo: Path, small_disk: Path
) -> None:
    (repo / "flow.yaml").write_text(textwrap.dedent(FILLS))
    full = ccspec(repo, "apply", "flow.yaml", "--state", str(small_disk))
    assert full.returncode == 5, full.stderr
    assert f"state folder {small_disk} is full (" in full.stderr
    assert "free some space (ccspec needs about" in full.stderr and "--state DIR" in full.stderr
    assert "internal error" not in full.stderr and "rollback" not in full.stderr
    assert integrity(small_disk / "state.db") == "ok"

    # status still shows what was recorded
    shown = ccspec(repo, "status", "--json", "flow.yaml", "--state", str(small_disk))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["workflows"][0]["jobs"]["a"]["state"] == "succeeded"

    (small_disk / "logs" / "flow" / "fill" / "1" / "big").unlink()
    again = ccspec(repo, "apply", "flow.yaml", "--state", str(small_disk))
    assert again.returncode == 0, again.stdout + again.stderr
    assert (repo / "ledger").read_text().split() == ["a", "fill", "b"]  # each job exactly once
    jobs = json.loads(
        ccspec(repo, "status", "--json", "flow.yaml", "--state", str(small_disk)).stdout
    )["workflows"][0]["jobs"]
    assert (
        jobs["fill"]["state"] == "succeeded"
        and jobs["fill"]["exit_code"] == 0
        and jobs["fill"]["attempt"] == 1
    )
    assert integrity(small_disk / "state.db") == "ok"


def test_a_read_only_state_folder_stops_apply_with_exit_5(repo: Path, small_disk: Path) -> None:
    (repo / "flow.yaml").write_text("version: 1\njobs:\n  a: {run: 'echo a >> ledger'}\n")
    assert ccspec(repo, "apply", "flow.yaml", "--state", str(small_disk)).returncode == 0
    (repo / "flow.yaml").write_text("version: 1\njobs:\n  a: {run: 'echo A >> ledger'}\n")
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = ccspec(repo, "apply", "flow.yaml", "--state", str(small_disk))
    assert result.returncode == 5, result.stderr
    assert (
        f"state folder {small_disk} is read-only" in result.stderr
        and "internal error" not in result.stderr
    )
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert ccspec(repo, "apply", "flow.yaml", "--state", str(small_disk)).returncode == 0
    assert (repo / "ledger").read_text().split() == ["a", "A"]


def _fill(folder: Path, *, inodes: bool) -> None:
    """Leave no data block (and, with `inodes`, no inode) free on the tmpfs under `folder`."""
    with open(folder / "filler", "wb") as fh, pytest.raises(OSError):
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()
    if inodes:
        with pytest.raises(OSError):
            for i in range(100_000):
                (folder / f"inode-{i}").touch()


def _start_wrapped(wrapper: str, run_dir: Path, command: str) -> subprocess.Popen[bytes]:
    """A real wrapper running the shell command `command`, in a session of its own."""
    if wrapper == "job-wrapper.sh":
        argv = ["/bin/sh", str(template_path(wrapper)), str(run_dir), "sh", "-c", command]
    else:
        argv = ["bash", "-c", template_path(wrapper).read_text(), "bash", command]
    env = {**os.environ, "CCSPEC_RUN_DIR": str(run_dir)}
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def _run_wrapped(wrapper: str, run_dir: Path, code: int) -> int:
    """Run a real wrapper around a command that exits with `code`; returns the wrapper's pid,
    reaped: the process is gone, as a job is when ccspec reads its run folder."""
    proc = _start_wrapped(wrapper, run_dir, f"exit {code}")
    assert proc.wait(timeout=30) == code  # the wrapper exits with the job's code even so
    return proc.pid


def _poll(handle: str | None, run_dir: Path) -> Status | None:
    """This machine's target polls the attempt in `run_dir` (as `ccspec status` does)."""
    batch = LocalBatch()
    try:
        return batch.poll([Tracked(1, handle, str(run_dir), run_dir / "log", time.time())])[1]
    finally:
        batch.close()


def _found_handle(run_dir: Path) -> str | None:
    """The pid this machine's target finds in a run folder for an attempt recorded with none."""
    status = _poll(None, run_dir)
    return None if status is None else status.extra.get("handle")


@pytest.mark.parametrize("wrapper", ["job-wrapper.sh", "run-wrapper.sh"])
def test_a_wrapper_on_a_full_folder_keeps_the_exit_code_in_a_file_name(
    small_disk: Path, wrapper: str
) -> None:
    run_dir = small_disk / "run"
    run_dir.mkdir()
    _fill(small_disk, inodes=False)
    pid = _run_wrapped(wrapper, run_dir, 7)
    status = _poll(str(pid), run_dir)
    assert status is not None and status.state is JobState.FAILED and status.exit_code == 7


@pytest.mark.parametrize("wrapper", ["job-wrapper.sh", "run-wrapper.sh"])
def test_a_job_whose_exit_code_could_not_be_recorded_is_not_called_killed(
    small_disk: Path, wrapper: str
) -> None:
    run_dir = small_disk / "run"
    run_dir.mkdir()
    _fill(small_disk, inodes=True)
    pid = _run_wrapped(wrapper, run_dir, 0)
    status = _poll(str(pid), run_dir)
    assert status is not None and status.state is JobState.LOST
    assert (
        status.reason is not None
        and "exit code could not be recorded: state folder full" in status.reason
    )
    assert "SIGKILL" not in status.reason


@pytest.mark.parametrize("left", [0, 16 * 1024])
def test_a_fresh_state_folder_on_a_full_disk_is_reported_full(
    repo: Path, small_disk: Path, left: int
) -> None:
    (repo / "flow.yaml").write_text("version: 1\njobs:\n  a: {run: 'echo a >> ledger'}\n")
    st = os.statvfs(small_disk)
    (small_disk / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - left))
    result = ccspec(repo, "apply", "flow.yaml", "--state", str(small_disk / "state"))
    assert result.returncode == 5, result.stderr
    assert f"state folder {small_disk / 'state'} is full (" in result.stderr
    assert not (repo / "ledger").exists()  # nothing ran without a record of it


def test_a_status_file_that_cannot_be_written_is_reported_and_written_by_the_next_apply(
    small_disk: Path, tmp_path: Path
) -> None:
    (small_disk / ".git").mkdir()  # the spec's repository is on the small disk; the state is not
    (small_disk / "flow.yaml").write_text("version: 1\njobs:\n  a: {run: 'true'}\n")
    st = os.statvfs(small_disk)
    (small_disk / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize))
    state = str(tmp_path / "state")
    full = ccspec(small_disk, "apply", "flow.yaml", "--state", state)
    assert full.returncode == 5, full.stderr
    assert f"cannot write {small_disk / 'flow.status.yaml'}: No space left on device" in full.stderr
    (small_disk / "filler").unlink()
    again = ccspec(small_disk, "apply", "flow.yaml", "--state", state)
    assert again.returncode == 0, again.stderr
    job = yaml.safe_load((small_disk / "flow.status.yaml").read_text())["jobs"]["a"]
    # written now; the job did not run again
    assert job["state"] == "succeeded" and job["attempt"] == 1


@pytest.mark.parametrize("wrapper", ["job-wrapper.sh", "run-wrapper.sh"])
def test_a_job_started_on_a_full_folder_can_be_found_again_by_its_pid(
    small_disk: Path, wrapper: str
) -> None:
    run_dir = small_disk / "run"
    run_dir.mkdir()
    _fill(small_disk, inodes=False)
    proc = _start_wrapped(wrapper, run_dir, "sleep 30")
    try:  # a runner that could not record the handle finds the job from its run folder
        end = time.monotonic() + 10
        while _found_handle(run_dir) is None and time.monotonic() < end:
            time.sleep(0.02)
        assert _found_handle(run_dir) == str(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
