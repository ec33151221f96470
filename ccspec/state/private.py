"""The state folder is private to its user: folders 0700, files 0600.

`state.db` and the jobs' logs may hold what jobs print, secrets included; nobody else on the
machine may read them. `prepare` is called by `StateStore` when it opens the folder: it makes
a new folder private and tightens one that an older ccspec (or a loose umask) left readable,
everything in it included. `make_dirs` and `opener` are what code that writes under the
folder uses (the local target's log and run folders, the remote targets' log mirrors).

A 0700 folder alone already stops other users from opening anything below it; its files are
0600 too because copies of the folder (a backup, `cp -r`, `tar`) keep the files' modes and
not the folder's.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "current_umask", "make_dirs", "opener", "prepare", "with_umask"]

DIR_MODE = 0o700
FILE_MODE = 0o600
DATABASE = "state.db"


def prepare(folder: Path) -> None:
    """Make the state folder (0700) with an empty `state.db` (0600: SQLite gives its -wal and
    -shm files the database's mode), or tighten an existing folder that others can read."""
    make_dirs(folder)
    database = folder / DATABASE
    # SQLite would make it 0644; there already, or unwritable (SQLite then says why): left alone
    with contextlib.suppress(OSError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    if os.name == "nt":  # modes do not say who may read there (ACLs do): nothing to tighten
        return
    if _loose(folder) or _loose(database):  # one stat each on every open; the walk only once
        tighten(folder)


def tighten(folder: Path) -> None:
    """chmod everything under `folder` private (its own mode last: a walk cut short is done
    again on the next open). Symbolic links are left alone, and what they point to."""
    for root, dirs, files in os.walk(folder):
        for name in (*files, *dirs):
            _chmod(os.path.join(root, name))
    _chmod(str(folder))


def make_dirs(path: Path | str) -> None:
    """`mkdir -p` where every folder it makes is 0700 (`os.makedirs` gives the parents it
    makes the default mode, whatever `mode` says)."""
    missing: list[str] = []
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            os.mkdir(folder, DIR_MODE)


def opener(path: str | os.PathLike[str], flags: int) -> int:
    """For `open(path, mode, opener=opener)`: a file it creates is 0600."""
    return os.open(path, flags, FILE_MODE)


def current_umask() -> int:
    """This process's umask (read from /proc where it is shown: setting it to ask would
    change it for a moment under the other threads' feet)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


# The set-up's lines that ask for the umask and then count the children reaped so far (the
# subshell that asked); replaced on this machine, where nothing needs asking.
_ASK_UMASK = (
    "  __ccspec_umask=$(umask)\n"
    "  { IFS=' ' read -r __ccspec_x __ccspec_x __ccspec_x __ccspec_x __ccspec_x __ccspec_x"
    " __ccspec_x \\\n"
    "      __ccspec_x __ccspec_x __ccspec_x __ccspec_had __ccspec_x </proc/self/stat; }"
    " 2>/dev/null\n"
)


def with_umask(wrapper: str, umask: str | None = None) -> str:
    """templates/run-wrapper.sh with the job's umask written into the lines that ask for it
    (one fork less per job): `umask` is shell text (ssh and WSL launch commands pass "$U",
    the umask they start jobs with), ccspec's own by default (jobs on this machine). The
    children the job's shell reaped before it ran are none: it is a fresh shell, or a fresh
    fork of the launcher's, and no subshell asked the umask (one read of /proc less a job)."""
    if _ASK_UMASK not in wrapper:
        raise ValueError(
            "templates/run-wrapper.sh no longer asks for the umask where ccspec looks for it"
        )
    value = f"{current_umask():04o}" if umask is None else umask
    return wrapper.replace(_ASK_UMASK, f"  __ccspec_umask={value} __ccspec_had=0\n", 1)


def _loose(path: Path) -> bool:
    try:
        return bool(os.stat(path).st_mode & 0o077)
    except OSError:
        return False


def _chmod(path: str) -> None:
    """Take group's and others' bits away (0755 -> 0700, 0644 -> 0600)."""
    with contextlib.suppress(OSError):  # gone meanwhile, or not ours: nothing to do about it here
        info = os.lstat(path)
        if not stat.S_ISLNK(info.st_mode) and stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o077)
