"""One long-lived bash that forks `run:` jobs on this machine (templates/run-launcher.sh).

Starting a bash means an exec and dynamic linking, most of which the runner's thread waits
for inside posix_spawn; a fork of a small, already running bash is much cheaper (figures in
bench/README.md). The launcher keeps up to four of them forked ahead of time (spares, which
read the next launch records themselves: one reads, three wait for their turn), so a
launch is: take a spare's pid, write one record. The jobs are the launcher's children, not
the runner's: their exits are watched through pidfds (Linux), and their exit codes come
from the wrapper's `exit_code` file, as for a re-attached job; when a job was killed before
its wrapper could write one, the launcher tells its wait status (`status`).

Only where the result is the same as a fresh `bash -c` does a job go through here (see
`eligible`); everything else, and everything when the launcher is gone, is spawned as before.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import re
import signal
import sys
import threading
from collections.abc import Mapping, Sequence

from ccspec.fdwait import wait_readable
from ccspec.resources import template_path

__all__ = ["SIGDEF", "BashLauncher", "eligible", "launcher_script"]

# A forked subshell keeps the launcher's $$ and ends without its EXIT trap when the
# command execs: those commands start their own bash.
_OWN_SHELL = re.compile(r"\$\$|\$\{\$\}|\bexec\b|BASH_SUBSHELL")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Variables bash reads only when it starts, or that steer the wrapper itself.
_STARTUP_ONLY = frozenset(
    {
        "ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "IFS",
        "POSIXLY_CORRECT",
        "UID",
        "EUID",
        "PPID",
        "GROUPS",
        "SHLVL",
    }
)
MAX_RECORD = 999_999  # bytes of a launch record (six digits of length); longer ones are spawned
# The launcher's file descriptors: the runner dup2s its pipes onto these numbers, and
# `launcher_script` writes the same numbers into templates/run-launcher.sh (its @NAME@ words).
RECORDS_FD = 0  # launch records, runner -> spares (stdin)
REPLIES_FD = 3  # spare pids and asked-for statuses, launcher -> runner
SAID_W_FD = 4  # spares -> launcher ("r": my turn, fork the next; "e": end of input)
SAID_R_FD = 5
TURN_R_FD = 10  # read end of turn pipe i is TURN_R_FD + i
TURN_W_FD = 20  # write end of turn pipe i is TURN_W_FD + i
TURN_PIPES = 4  # up to three spares wait for their turn
_FD_CEILING = 32  # the runner's own ends of the pipes go above every number above
REPLY_TIMEOUT = 10.0  # seconds a spare may take to appear before the launcher counts as stuck
# Python ignores these; a job must start with them at their defaults (`yes | head` ends).
SIGDEF = tuple(
    s for s in (getattr(signal, "SIGPIPE", None), getattr(signal, "SIGXFSZ", None)) if s is not None
)


def eligible(argv: Sequence[str]) -> bool:
    """Whether `argv` (bash -c WRAPPER bash COMMAND LOG CWD, the run: wrapper's form) runs a
    command that a forked subshell runs exactly as a new bash would."""
    return (
        len(argv) == 7
        and os.path.basename(argv[0]) == "bash"
        and _OWN_SHELL.search(argv[4]) is None
    )


class BashLauncher:
    """The launcher process and the runner's two pipes to it (records in, pids out; Python's
    pipes are close-on-exec, so no job inherits them). Not thread-safe: one runner thread
    uses it."""

    available = sys.platform.startswith("linux") and hasattr(os, "pidfd_open")

    def __init__(self, bash: str, wrapper: str) -> None:
        self._bash, self._wrapper = bash, wrapper
        self._pid = 0
        self._records = -1  # write end of the launcher's stdin
        self._replies = -1  # read end of its REPLIES_FD
        self._asks = -1  # write end of its SAID_R_FD: the runner asks for statuses there
        self._pending = b""
        self._statuses: dict[int, int] = {}  # answers to `status`, by pid
        self._spares: collections.deque[int] = collections.deque()  # pids read ahead
        self._base: dict[str, str] = {}
        self.broken = False

    def launch(
        self, command: str, log: str, cwd: str, wrapper: str, env: Mapping[str, str]
    ) -> int | None:
        """Fork one job running `wrapper` (the launcher's own copy must be the same text);
        its pid, or None when this launch cannot go through the launcher (the caller spawns
        it the usual way)."""
        if self.broken or wrapper != self._wrapper:
            return None
        if not self._pid and not self._start():
            return None
        record = self._record(command, log, cwd, env)
        if record is None:
            return None
        try:
            # the spare that takes this record, forked while the last job ran
            pid = self._read_pid()
            self._write_all(record)
        except OSError:
            self._fail()
            return None
        return pid

    def _record(self, command: str, log: str, cwd: str, env: Mapping[str, str]) -> bytes | None:
        """One launch record: its length in six digits, then shell code made of ASCII only
        (so a length in bytes is one in characters whatever the locale) that exports the
        environment's changes and sets the job's command, log and folder. A spare reads it
        with two reads of known size (`read -N`), not one read call per byte."""
        changes = self._changes(env)
        if changes is None or "\0" in command or "\0" in log or "\0" in cwd:
            return None
        body = (
            f"{changes}{'; ' if changes else ''}__ccspec_cmd={_quoted(command)} __ccspec_log={_quoted(log)} "
            f"__ccspec_cwd={_quoted(cwd)}"
        ).encode("ascii")
        if len(body) > MAX_RECORD:
            return None
        return b"%06d" % len(body) + body

    def _changes(self, env: Mapping[str, str]) -> str | None:
        """The shell commands (`export NAME='VALUE'...; unset -v NAME...`) that turn the
        launcher's environment into `env`: one command for the spare to run, not one per
        variable; None when a name is one a subshell cannot take over."""
        base = self._base
        changed = {k: v for k, v in env.items() if base.get(k) != v}
        gone = [k for k in base if k not in env]
        for name in (*changed, *gone):
            if (
                not _NAME.fullmatch(name)
                or name in _STARTUP_ONLY
                or name.startswith(("BASH", "__ccspec_"))
            ):
                return None
        if any("\0" in v for v in changed.values()):
            return None
        script = (
            "export " + " ".join(f"{k}={_quoted(v)}" for k, v in changed.items()) if changed else ""
        )
        if gone:
            script += f"{'; ' if script else ''}unset -v {' '.join(gone)}"
        return script

    def _start(self) -> bool:
        # the pipes' ends above the fds they go to: dup2 in turn must not overwrite one
        records_r, records_w = map(_above_targets, os.pipe())
        replies_r, replies_w = map(_above_targets, os.pipe())
        # spare -> launcher: "I have the turn, fork the next" (or "end")
        said_r, said_w = map(_above_targets, os.pipe())
        # spare i-1 -> spare i: "stdin is yours"
        turns = [tuple(map(_above_targets, os.pipe())) for _ in range(TURN_PIPES)]
        try:
            self._base = dict(os.environ)
            self._pid = os.posix_spawn(
                self._bash,
                [
                    self._bash,
                    "-c",
                    launcher_script(),
                    "bash",
                    self._wrapper,
                ],
                self._base,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, records_r, RECORDS_FD),
                    (os.POSIX_SPAWN_DUP2, replies_w, REPLIES_FD),
                    (os.POSIX_SPAWN_DUP2, said_w, SAID_W_FD),
                    (os.POSIX_SPAWN_DUP2, said_r, SAID_R_FD),
                    *((os.POSIX_SPAWN_DUP2, r, TURN_R_FD + i) for i, (r, _) in enumerate(turns)),
                    *((os.POSIX_SPAWN_DUP2, w, TURN_W_FD + i) for i, (_, w) in enumerate(turns)),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                ],
                setsid=True,
                setsigdef=SIGDEF,
            )
        except OSError:
            for fd in (records_w, replies_r, said_w):
                os.close(fd)
            self.broken = True
            return False
        finally:
            for fd in (records_r, replies_w, said_r, *(fd for pair in turns for fd in pair)):
                os.close(fd)
        self._records, self._replies, self._asks = records_w, replies_r, said_w
        # pids of an earlier launcher's spares (after close) are not this one's
        self._pending = b""
        self._spares.clear()
        self._statuses.clear()
        return True

    def status(self, pid: int) -> int | None:
        """The wait status of a job this launcher forked that has ended, as an exit code
        (-N: killed by signal N); None when the launcher cannot say. Asked only for a job
        whose wrapper wrote no exit code: the launcher, its parent, knows why it ended."""
        if self._asks < 0:
            return None
        try:
            os.write(self._asks, b"w%d\n" % pid)  # one write: atomic among the spares' bytes
            while pid not in self._statuses:
                self._take_line()
        except (OSError, ValueError):
            self._fail()
            return None
        code = self._statuses.pop(pid)
        return -(code - 128) if code > 128 else code

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._records, view) :]

    def _read_pid(self) -> int:
        """The pid of the next spare (the one that takes the next record)."""
        while not self._spares:
            self._take_line()
        return self._spares.popleft()

    def _take_line(self) -> None:
        """One answer of the launcher: a spare's pid (kept in order for the launches) or
        `=PID STATUS`, the status asked for."""
        while b"\n" not in self._pending:
            if not wait_readable(self._replies, REPLY_TIMEOUT):
                raise OSError("the launcher did not answer")
            chunk = os.read(self._replies, 4096)
            if not chunk:
                raise OSError("the launcher ended")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        if line.startswith(b"="):
            pid, _, code = line[1:].partition(b" ")
            self._statuses[int(pid)] = int(code)
        else:
            self._spares.append(int(line))

    def _fail(self) -> None:
        """The launcher died or misbehaved: spawn every job from now on."""
        self.broken = True
        self.close()

    def close(self) -> None:
        """End of input ends the launcher (its jobs go on); reap it in the background."""
        for fd in (self._records, self._replies, self._asks):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._records = self._replies = self._asks = -1
        pid, self._pid = self._pid, 0
        if pid:
            threading.Thread(target=_reap, args=(pid,), name="reap-launcher", daemon=True).start()


@functools.lru_cache(maxsize=1)
def launcher_script() -> str:
    """templates/run-launcher.sh with its @NAME@ words replaced by the fd map above."""
    turns = range(TURN_PIPES)
    close = [
        f"{SAID_W_FD}>&-",
        f"{SAID_R_FD}<&-",
        *(f"{TURN_R_FD + i}<&-" for i in turns),
        *(f"{TURN_W_FD + i}>&-" for i in turns),
    ]
    words = {
        "@K@": str(TURN_PIPES),
        "@REPLIES@": str(REPLIES_FD),
        "@SAID_W@": str(SAID_W_FD),
        "@SAID_R@": str(SAID_R_FD),
        "@TURN_R@": str(TURN_R_FD),
        "@TURN_W@": str(TURN_W_FD),
        "@CLOSE@": " ".join(close),
    }
    text = template_path("run-launcher.sh").read_text()
    for word, value in words.items():
        text = text.replace(word, value)
    return text


def _above_targets(fd: int) -> int:
    """`fd` moved to a number above the launcher's fds (close-on-exec, as os.pipe's)."""
    import fcntl

    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _FD_CEILING)
    os.close(fd)
    return moved


def _quoted(value: str) -> str:
    """`value` as one bash word of ASCII characters (any text but NUL): in single quotes, or,
    with characters beyond ASCII, in $'...' with each byte of its UTF-8 escaped."""
    if value.isascii():
        return "'" + value.replace("'", "'\\''") + "'"
    return "$'" + "".join(_ANSI_C[b] for b in value.encode("utf-8", "surrogateescape")) + "'"


# each byte inside $'...': printable ASCII as itself (but ' and \), anything else as \xHH
_ANSI_C = [chr(b) if 32 <= b < 127 and b not in (39, 92) else f"\\x{b:02x}" for b in range(256)]
_ANSI_C[39], _ANSI_C[92] = "\\'", "\\\\"


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
