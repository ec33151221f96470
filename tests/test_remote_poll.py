"""The remote poll stats every job's files in one process at its start: a job that ends
after that stat must still be reported with its whole log and its end time, never with the
log size the stat saw. The poll script runs here, with dash and with bash (the shells an
ssh host's `sh` is), on real run folders; between the stat and the job's report the test
lets the job write more and end, as a job does when it ends mid-poll."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from ccspec.targets.base import Tracked
from ccspec.targets.remote import (
    POLL_FUNCTION,
    RemoteLayout,
    parse_poll,
    poll_calls,
    poll_lines,
)
from ccspec.targets.shells import LocalShell

SHELLS = [s for s in ("dash", "bash") if shutil.which(s)]


def layout(tmp: Path, shell: str) -> RemoteLayout:
    return RemoteLayout(LocalShell((shell,)), str(tmp / "host"))


def job(tmp: Path, lay: RemoteLayout, i: int) -> tuple[Tracked, Path]:
    tracked = Tracked(i, None, f"runs/j{i}", tmp / f"mirror-{i}.log", time.time())
    folder = Path(lay.path(tracked.run_dir))
    folder.mkdir(parents=True)
    return tracked, folder


@pytest.mark.parametrize("shell", SHELLS)
def test_a_job_that_ends_after_the_stat_is_reported_whole(tmp_path: Path, shell: str) -> None:
    lay = layout(tmp_path, shell)
    ended, early = job(tmp_path, lay, 1)
    (early / "log").write_text("all of it\n")
    (early / "exit_code").write_text("0\n")
    late_job, late = job(tmp_path, lay, 2)
    (late / "log").write_text("first\n")
    (late / "pid").write_text(f"{os.getpid()}\n")  # alive until it ends
    calls = poll_calls(lay, [ended, late_job]).splitlines()
    stat, rest = calls[0], calls[1:]
    assert stat.startswith("T=$(stat ")
    # the late job writes its last line and ends between the poll's stat and its report
    q = f"{late}"
    script = "\n".join(
        [POLL_FUNCTION, stat, f"echo last >> {q}/log; echo 4 > {q}/exit_code", *rest]
    )
    found = parse_poll(lay.shell.run(script).out, [ended, late_job])
    assert found[1].exit_code == 0 and found[1].complete and found[1].age is not None
    assert found[2].exit_code == 4 and found[2].complete and found[2].age is not None
    assert (tmp_path / "mirror-1.log").read_text() == "all of it\n"
    assert (tmp_path / "mirror-2.log").read_text() == "first\nlast\n"


@pytest.mark.parametrize("shell", SHELLS)
def test_running_and_missing_jobs_in_one_poll(tmp_path: Path, shell: str) -> None:
    """A running job's new log bytes from its offset on, a job with nothing yet, a job gone
    without an exit code: each read right, in one poll whose stat lists only some files."""
    lay = layout(tmp_path, shell)
    running, r = job(tmp_path, lay, 1)
    (r / "pid").write_text(f"{os.getpid()}\n")
    (r / "log").write_text("0123456789")
    (tmp_path / "mirror-1.log").write_text("0123")  # mirrored before: offset 4
    waiting, _ = job(tmp_path, lay, 2)
    gone, g = job(tmp_path, lay, 3)
    (g / "pid").write_text("999999999\n")
    found = parse_poll(lay.shell.run(poll_lines(lay, [running, waiting, gone])).out, [
        running, waiting, gone
    ])  # fmt: skip
    assert (found[1].exit_code, found[1].pid, found[1].complete) == (None, "r", True)
    assert (tmp_path / "mirror-1.log").read_text() == "0123456789"
    assert (found[2].exit_code, found[2].pid) == (None, "-")
    assert (found[3].exit_code, found[3].pid) == (None, "d")
