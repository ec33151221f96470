"""When the state folder cannot be written: a full disk, a read-only mount, a quota, an I/O error.

Such errors are translated here, once, into `StateFolderUnwritable` (exit 5), whose message
names the folder, what is wrong and what to do; any other error goes on unchanged.

- The state store opens its database with `GuardedConnection`, whose statements hand their
  errors to `check` (SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY).
- The engine hands `check` the OSError of a launch (ENOSPC, EDQUOT, EROFS, EIO while it makes
  a run folder or opens a log).
- The local target asks `folder_problem` why a job's wrapper left no exit code behind.
- The command line hands `for_file` any other OSError that escapes (a status file beside a
  spec that cannot be written), which then names that file's folder.
"""

from __future__ import annotations

import errno
import math
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from ccspec.errors import StateFolderUnwritable

__all__ = [
    "GuardedConnection",
    "check",
    "folder_problem",
    "for_file",
    "free_bytes",
    "needed_bytes",
    "translate",
]

# SQLite's primary result codes (the low byte of an extended code; sqlite3 names them only
# from Python 3.11) and errno values, by kind
SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN = 8, 10, 13, 14
_SQLITE_KINDS = {
    SQLITE_FULL: "full",
    SQLITE_READONLY: "read-only",
    SQLITE_IOERR: "io",
}
_OS_KINDS = {errno.ENOSPC: "full", errno.EDQUOT: "quota", errno.EROFS: "read-only", errno.EIO: "io"}
# the store checkpoints its write-ahead log every 4,000 pages of 4 KiB: the log may grow that large
WAL_BYTES = 4000 * 4096
LOW_BYTES = 64 * 1024  # less free than this and a wrapper could not write its exit code: "full"
MB = 1024 * 1024
# sqlite3's own methods, called directly: cheaper than super() on the store's hot path
_EXECUTE = sqlite3.Connection.execute
_EXECUTEMANY = sqlite3.Connection.executemany


class GuardedConnection(sqlite3.Connection):
    """A SQLite connection (the state store's) whose statements raise StateFolderUnwritable
    when the database's folder cannot be written; other errors are left as they are."""

    def execute(self, sql: str, parameters: object = (), /) -> sqlite3.Cursor:
        try:
            return _EXECUTE(self, sql, parameters)  # type: ignore[arg-type]
        except sqlite3.Error as exc:
            check(exc, self._folder())
            raise

    def executemany(self, sql: str, parameters: Iterable[object], /) -> sqlite3.Cursor:
        try:
            return _EXECUTEMANY(self, sql, parameters)  # type: ignore[arg-type]
        except sqlite3.Error as exc:
            check(exc, self._folder())
            raise

    def _folder(self) -> Path:
        """The database file's folder, asked of SQLite only when a statement failed."""
        try:
            row = super().execute("PRAGMA database_list").fetchone()
        except sqlite3.Error:
            return Path(".")
        return Path(row[2]).parent if row and row[2] else Path(".")


def check(exc: BaseException, folder: Path | str) -> None:
    """Raise StateFolderUnwritable from `exc` when it says `folder` cannot be written; else
    return (the caller re-raises `exc`)."""
    error = translate(exc, folder)
    if error is not None:
        raise error from exc


def translate(exc: BaseException, folder: Path | str) -> StateFolderUnwritable | None:
    """The StateFolderUnwritable that `exc` (or the error it was raised from) stands for, or None."""
    kind = _kind(exc, Path(folder))
    if kind is None:
        return None
    return StateFolderUnwritable(str(folder), _message(kind, Path(folder), exc))


def for_file(exc: OSError, path: Path | None = None) -> StateFolderUnwritable | None:
    """A full or read-only disk met while writing some file of ccspec's outside the state store
    (`path`, when the error does not name it): the error names the file and its folder; None
    for any other error."""
    kind = _OS_KINDS.get(exc.errno or 0)
    name = os.fsdecode(exc.filename) if exc.filename else str(path or "")
    if kind is None or kind == "io" or not name:  # EIO: a read may fail so too
        return None
    folder = Path(name).parent
    free = free_bytes(folder)
    shown = f", {_size(free)} free" if free is not None and kind in ("full", "quota") else ""
    return StateFolderUnwritable(
        str(folder),
        f"cannot write {name}: {exc.strerror or exc} "
        f"(folder {folder}{shown}): free some space or make it writable",
    )


def _kind(exc: BaseException, folder: Path) -> str | None:
    seen: BaseException | None = exc
    for _ in range(4):  # the error, or the one it was raised from (a target error from an OSError)
        if seen is None or isinstance(seen, StateFolderUnwritable):
            return None
        if isinstance(seen, sqlite3.Error):
            code = getattr(seen, "sqlite_errorcode", None)
            if code is None:
                return None
            if code & 0xFF in (SQLITE_CANTOPEN, SQLITE_IOERR):
                # SQLite says "disk I/O error" when it cannot grow its shared-memory file on a
                # full disk, and "unable to open" for a missing folder too: the disk says why
                problem = folder_problem(folder)
                if problem is not None:
                    return "read-only" if problem == "read-only" else "full"
            return _SQLITE_KINDS.get(code & 0xFF)  # CANTOPEN with room to write: not ours
        if isinstance(seen, OSError) and seen.errno in _OS_KINDS:
            return _OS_KINDS[seen.errno]
        seen = seen.__cause__
    return None


def _message(kind: str, folder: Path, exc: BaseException) -> str:
    move = "or move the state with --state DIR"
    if kind in ("full", "quota"):
        free = free_bytes(folder)
        shown = f"{_size(free)} free" if free is not None else "free space unknown"
        what = "is full" if kind == "full" else "is over its disk quota"
        need = math.ceil(needed_bytes(folder) / MB)
        return f"state folder {folder} {what} ({shown}): free some space (ccspec needs about {need} MB) {move}"
    if kind == "read-only":
        return f"state folder {folder} is read-only ({_detail(exc)}): make it writable {move}"
    return f"state folder {folder} cannot be written: disk I/O error ({_detail(exc)}): check the disk {move}"


def _detail(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return str(exc)


def free_bytes(folder: Path | str) -> int | None:
    """Bytes this user may still write on the folder's file system (None: unknown)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def needed_bytes(folder: Path | str) -> int:
    """About the free space the state folder needs to go on: room for the store's write-ahead
    log to grow to its checkpoint size, and a megabyte for logs and run folders."""
    try:
        wal = os.stat(os.path.join(folder, "state.db-wal")).st_size
    except OSError:
        wal = 0
    return max(0, WAL_BYTES - wal) + MB


def folder_problem(path: Path | str) -> str | None:
    """Why nothing can be written at `path` now: "read-only", "full (12 KB free)", "full (no
    free inodes)"; None when it looks writable."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return "read-only"
    if st.f_bavail * st.f_frsize < LOW_BYTES:
        return f"full ({_size(st.f_bavail * st.f_frsize)} free)"
    if st.f_files and st.f_favail == 0:  # file systems without an inode limit report 0 files
        return "full (no free inodes)"
    return None


def _size(count: int) -> str:
    if count < MB:
        return f"{count // 1024} KB"
    if count < 1024 * MB:
        return f"{count / MB:.1f} MB"
    return f"{count / (1024 * MB):.1f} GB"
