"""An attempt's run folder on this machine: what its wrapper records there (pid, exit code,
the time it ended) and the folder itself as the launch's claim. Read by the local target
(ccspec.targets.local, local_batch) and by `settle`."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ccspec.state.private import DIR_MODE, make_dirs
from ccspec.state.unwritable import folder_problem
from ccspec.states import JobState
from ccspec.targets.base import Status

__all__ = [
    "LOST_REASON",
    "exit_status",
    "lost_reason",
    "move_stale",
    "read_exit_code",
    "read_pid",
    "take_claim",
]

LOST_REASON = "the job's process is gone and left no exit code (killed by SIGKILL?)"
# seconds by which a run folder must predate its attempt's record to be another state's (a
# fence or an earlier send of the same launch makes it after the record)
STALE_MARGIN = 1.0


def read_exit_code(run_dir: Path | str) -> int | None:
    """The exit code the job's wrapper recorded: the first line of the file `exit_code` (its
    second is the usage, ccspec.usage), or, where that could not be written (a full folder),
    in the name of an empty file `exit_code.N`."""
    try:  # os-level: this runs once for every job that ends
        fd = os.open(os.path.join(run_dir, "exit_code"), os.O_RDONLY)
    except OSError:
        return _exit_code_in_name(run_dir)
    try:
        text = os.read(fd, 64).decode(errors="replace").partition("\n")[0].strip()
    except OSError:
        text = ""
    finally:
        os.close(fd)
    return int(text) if text.lstrip("-").isdigit() else _exit_code_in_name(run_dir)


def _exit_code_in_name(run_dir: Path | str) -> int | None:
    return _number_in_name(run_dir, "exit_code.")


def _number_in_name(run_dir: Path | str, prefix: str) -> int | None:
    """N of an empty file PREFIX.N, which a wrapper leaves where its folder is full."""
    try:
        names = os.listdir(run_dir)
    except OSError:
        return None
    for name in names:
        number = name[len(prefix) :] if name.startswith(prefix) else ""
        if number.lstrip("-").isdigit():
            return int(number)
    return None


def lost_reason(run_dir: Path | str | None) -> str:
    """Why a job that is gone left no exit code: its run folder could not take one (full or
    read-only, as it is now), or else it was most likely killed by KILL."""
    problem = folder_problem(run_dir) if run_dir is not None else None
    if problem is not None:
        return f"the job ended but its exit code could not be recorded: state folder {problem}"
    return LOST_REASON


def _exit_time(run_dir: Path | str) -> float | None:
    """When the attempt ended, by its own clock: the wrapper writes the exit-code file as the
    job ends, so its mtime is the end whenever ccspec gets round to it (None: no such file)."""
    try:
        return os.stat(os.path.join(run_dir, "exit_code")).st_mtime
    except OSError:
        code = _exit_code_in_name(run_dir)  # a full folder: the empty file named after the code
    try:
        return (
            None if code is None else os.stat(os.path.join(run_dir, f"exit_code.{code}")).st_mtime
        )
    except OSError:
        return None


def exit_status(code: int | None, run_dir: Path | str) -> Status:
    """The status of an attempt that ended with `code` (the wrapper's exit code, or -N when
    its process was killed by signal N before the wrapper could write one; None when
    nothing is known), the same on every path a job took."""
    if code is None:
        return Status(JobState.LOST, None, lost_reason(run_dir), _exit_time(run_dir))
    if code == 0:
        return Status(JobState.SUCCEEDED, 0, None, _exit_time(run_dir))
    reason = f"exit code {code}" if code > 0 else f"killed by signal {-code}"
    return Status(JobState.FAILED, code, reason, _exit_time(run_dir))


def read_pid(run_dir: Path | str) -> int | None:
    """The pid the attempt's wrapper recorded (its process group's leader), if any."""
    run_dir = Path(run_dir)
    try:
        text = (run_dir / "pid").read_text().strip()
    except OSError:
        text = ""
    return int(text) if text.isdigit() else _number_in_name(run_dir, "pid.")


def take_claim(run_dir: Path) -> bool:
    """Make an attempt's run folder, its launch claim; False when it exists already."""
    try:
        os.mkdir(run_dir, DIR_MODE)
    except FileExistsError:
        return False
    except FileNotFoundError:
        make_dirs(run_dir.parent)
        try:
            os.mkdir(run_dir, DIR_MODE)
        except FileExistsError:
            return False
    return True


def move_stale(run_dir: Path, created: float) -> bool:
    """Move an attempt's run folder and log aside (as N.orphaned-MTIME and its .log) when the
    folder was last changed more than STALE_MARGIN before `created`; True if moved."""
    try:
        st = run_dir.stat()
    except OSError:
        return False
    changed = st.st_mtime
    if changed >= created - STALE_MARGIN:
        return False
    aside = run_dir.with_name(f"{run_dir.name}.orphaned-{int(changed)}")
    try:
        os.rename(run_dir, aside)
    except OSError:
        return False
    with contextlib.suppress(OSError):
        os.rename(run_dir.with_name(f"{run_dir.name}.log"), aside.with_name(f"{aside.name}.log"))
    return True
