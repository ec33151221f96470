"""This machine: each attempt runs under a wrapper in its own session, so it survives the
death of ccspec, and a timeout or cancel kills its whole process group.

`run:` jobs in bash are forked by one long-lived bash (`BashLauncher`, Linux) running
templates/run-wrapper.sh's text; other `run:` jobs start with one posix_spawn of their shell
running that wrapper; scripts and notebooks with subprocess under templates/job-wrapper.sh.
The wrappers record pid and exit code in the attempt's run folder. A job killed before its
wrapper could write an exit code gets its wait status from its parent, whichever path
started it (this process, or the launcher): "killed by signal 9" either way. Exits arrive through
pidfds in one selector (a waiter thread per child where pidfds do not exist), with no
polling loop; attempts found after a restart are not our children and are polled through
the wrappers' files.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import queue
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from ccspec.errors import PermanentTargetError
from ccspec.processes import pid_alive
from ccspec.resources import template_path
from ccspec.state.private import DIR_MODE, make_dirs, opener
from ccspec.state.unwritable import folder_problem
from ccspec.states import JobState
from ccspec.targets.base import Launch, Status
from ccspec.targets.launcher import SIGDEF, BashLauncher, eligible

__all__ = [
    "ExitCallback",
    "LocalTarget",
    "exit_status",
    "read_exit_code",
    "read_pid",
]

LOST_REASON = "the job's process is gone and left no exit code (killed by SIGKILL?)"
# run folders made ahead of their launch at most at a time (a layer of a wide DAG)
PREPARE_AHEAD = 256

_SPAWN = hasattr(os, "posix_spawn") and not sys.platform.startswith("win")
_NULL_STDIO = (
    [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)] if _SPAWN else []
)


@functools.lru_cache(maxsize=32)
def _which(program: str) -> str:
    """posix_spawn wants a path; look programs up once."""
    return shutil.which(program) or program


# (handle, exit code or None if it left none; -N: killed by signal N) -> None, from any thread
ExitCallback = Callable[[str, int | None], None]


def read_exit_code(run_dir: Path | str) -> int | None:
    """The exit code the job's wrapper recorded: in the file `exit_code`, or, where that could
    not be written (a full folder), in the name of an empty file `exit_code.N`."""
    try:  # os-level: this runs once for every job that ends
        fd = os.open(os.path.join(run_dir, "exit_code"), os.O_RDONLY)
    except OSError:
        return _exit_code_in_name(run_dir)
    try:
        text = os.read(fd, 64).decode(errors="replace").strip()
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


def _lost_reason(run_dir: Path | str | None) -> str:
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
        return Status(JobState.LOST, None, _lost_reason(run_dir), _exit_time(run_dir))
    if code == 0:
        return Status(JobState.SUCCEEDED, 0, None, _exit_time(run_dir))
    reason = f"exit code {code}" if code > 0 else f"killed by signal {-code}"
    return Status(JobState.FAILED, code, reason, _exit_time(run_dir))


def _forked_exit(run_dir: Path, launcher: BashLauncher, pid: int) -> int | None:
    """The exit code of a job the launcher forked: its wrapper's, else (killed before the
    wrapper could write one) the wait status its parent, the launcher, saw."""
    code = read_exit_code(run_dir)
    return code if code is not None else launcher.status(pid)


def _after_gone(pid: int, run_dir: Path) -> int | None:
    """The exit code a process that is not our child left, once it is gone (a waiter
    thread's polling, where no pidfd can be had)."""
    while pid_alive(pid):
        time.sleep(0.05)
    return read_exit_code(run_dir)


def read_pid(run_dir: Path | str) -> int | None:
    """The pid the attempt's wrapper recorded (its process group's leader), if any."""
    run_dir = Path(run_dir)
    try:
        text = (run_dir / "pid").read_text().strip()
    except OSError:
        text = ""
    return int(text) if text.isdigit() else _number_in_name(run_dir, "pid.")


class LocalTarget:
    """Exits are watched without threads where the OS allows: a pidfd per child (Linux 5.3+)
    in one selector, which `wait` blocks on together with the caller's wake-up fd. Elsewhere
    a waiter thread per child reports the exit through the same wake-up fd."""

    name = "local"

    def __init__(self) -> None:
        self._wrapper = str(template_path("job-wrapper.sh"))
        # handle -> wait for that child's exit code
        self._reapers: dict[str, Callable[[], int | None]] = {}
        self._callbacks: dict[str, ExitCallback] = {}
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._exited: queue.SimpleQueue[tuple[str, int | None]] = queue.SimpleQueue()
        self._dirs: set[Path] = set()
        self._launcher: BashLauncher | None = None
        self._forked: set[str] = set()  # handles of jobs the launcher forked (its children)
        self._forked_dirs: dict[str, Path] = {}  # their run folders
        # run folders `prepare` was asked for and no launch has used yet
        self._asked: set[Path] = set()
        # of those, the ones not made yet, in order
        self._to_make: collections.deque[Path] = collections.deque()
        self._made: set[Path] = set()  # the ones made ahead
        self.made_ahead = 0  # launches whose run folder was made ahead

    def _ensure_dir(self, folder: Path) -> None:
        """mkdir -p, remembering which parents exist (a failed mkdir costs an exception)."""
        if folder in self._dirs:
            return
        if folder.parent not in self._dirs:
            make_dirs(folder.parent)  # 0700, as every folder under the state folder
            self._dirs.add(folder.parent)
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, DIR_MODE)
        self._dirs.add(folder)

    def prepare(self, run_dir: Path) -> None:
        """Note the run folder of an attempt that will launch soon, to be made by
        `make_prepared` while the runner waits for jobs instead of during its launch (the
        mkdir calls are a noticeable share of the runner's work per job). At most
        PREPARE_AHEAD folders wait to be used at a time; a launch whose folder is not made
        yet makes it itself."""
        if len(self._asked) >= PREPARE_AHEAD or run_dir in self._asked:
            return
        self._asked.add(run_dir)
        self._to_make.append(run_dir)

    def make_prepared(self, most: int = 2) -> None:
        """Make up to `most` of the folders asked for (the runner calls this right before it
        waits: a job that ends meanwhile is seen at most that many folders later). In the
        runner's thread: each wake-up of a thread of its own would take the GIL from the
        runner at its next system call."""
        while most > 0 and self._to_make:
            run_dir = self._to_make.popleft()
            if run_dir not in self._asked:  # launched meanwhile: made by its launch
                continue
            try:
                self._make_folders(run_dir)
            except OSError:  # its launch makes it again and reports what is wrong
                self._asked.discard(run_dir)
                continue
            self._made.add(run_dir)
            most -= 1

    @property
    def prepared_unused(self) -> int:
        """Run folders `prepare` was asked for that no launch has used yet."""
        return len(self._asked | self._made)

    def close(self) -> None:
        """Release the selector, pidfds and wake-up pipe. Children still running are left
        alone (they are detached; a newer engine follows them through their files); a thread
        reaps each one when it ends, so a long-lived reconciler gathers no zombies."""
        for key in list(self._selector.get_map().values()):
            if key.data is not None:
                os.close(key.fd)
                reap = self._reapers.get(key.data)
                if reap is not None and key.data not in self._forked:  # the launcher reaps those
                    threading.Thread(target=reap, name=f"reap-{key.data}", daemon=True).start()
        self._selector.close()
        if self._launcher is not None:
            self._launcher.close()
        self._asked.clear()  # folders not made yet are not needed
        self._to_make.clear()
        self._made.clear()
        # a late wake() writes nowhere
        wake_r, wake_w, self._wake_r, self._wake_w = self._wake_r, self._wake_w, -1, -1
        for fd in (wake_r, wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._reapers.clear()
        self._callbacks.clear()
        self._forked.clear()
        self._forked_dirs.clear()

    def wake(self) -> None:
        """Make a blocked `wait` return (safe to call from a signal handler or a thread)."""
        if self._wake_w < 0:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def submit(self, launch: Launch, on_exit: ExitCallback) -> str:
        if launch.wrapped and _SPAWN:
            return self._spawn(launch, on_exit)
        self._ensure_dir(launch.run_dir)
        self._ensure_dir(launch.log_path.parent)
        argv = (
            list(launch.argv)
            if launch.wrapped
            else ["/bin/sh", self._wrapper, str(launch.run_dir), *launch.argv]
        )
        try:
            # 0600: the log may show secrets
            with open(launch.log_path, "ab", opener=opener) as log:
                proc = subprocess.Popen(
                    argv,
                    cwd=launch.cwd,
                    env=dict(launch.env),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as exc:
            raise PermanentTargetError(
                f"cannot start {launch.argv[0]!r}: {exc.strerror or exc}"
            ) from exc
        return self._watch(proc.pid, proc.wait, on_exit)

    def _spawn(self, launch: Launch, on_exit: ExitCallback) -> str:
        """A run: job: forked by the bash launcher, or one posix_spawn (vfork+exec, no Python
        in between); its wrapper opens the log and changes folder in the job's own process."""
        self._make_run_dir(launch.run_dir)
        argv = launch.argv
        if BashLauncher.available and eligible(argv):
            if self._launcher is None:
                self._launcher = BashLauncher(_which(argv[0]), argv[2])
            launcher = self._launcher
            pid = launcher.launch(argv[4], argv[5], argv[6], argv[2], launch.env)
            if pid is not None:
                run_dir, forked = launch.run_dir, pid
                self._forked.add(str(pid))
                self._forked_dirs[str(pid)] = run_dir
                return self._watch(pid, lambda: _forked_exit(run_dir, launcher, forked), on_exit)
        try:
            pid = os.posix_spawn(
                _which(argv[0]),
                list(argv),
                launch.env,
                file_actions=_NULL_STDIO,
                setsid=True,
                setsigdef=SIGDEF,
            )
        except OSError as exc:
            raise PermanentTargetError(
                f"cannot start {launch.argv[0]!r}: {exc.strerror or exc}"
            ) from exc
        return self._watch(pid, lambda: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), on_exit)

    def _make_run_dir(self, run_dir: Path) -> None:
        """A launch's run folder, unless `make_prepared` made it."""
        self._asked.discard(run_dir)
        if run_dir in self._made:
            self._made.discard(run_dir)
            self.made_ahead += 1
            return
        self._make_folders(run_dir)

    def _make_folders(self, run_dir: Path) -> None:
        """Two mkdir calls for a job's first attempt, one after (a mkdir here costs less than
        the `mkdir` process the wrapper would otherwise start)."""
        job_dir = run_dir.parent
        if job_dir not in self._dirs:
            self._ensure_dir(job_dir.parent)  # logs/WF, once
            with contextlib.suppress(FileExistsError):  # a job that ran before
                os.mkdir(job_dir, DIR_MODE)
            self._dirs.add(job_dir)
        with contextlib.suppress(FileExistsError):
            os.mkdir(run_dir, DIR_MODE)

    def _watch(self, pid: int, reap: Callable[[], int | None], on_exit: ExitCallback) -> str:
        """Watch a process's exit through a pidfd in the selector, or a waiter thread where
        pidfds do not exist; `reap` collects its exit code once it has exited (None: it left
        none)."""
        handle = str(pid)
        self._reapers[handle] = reap
        self._callbacks[handle] = on_exit
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:  # a launcher's job that ended already (and was reaped)
            self._exited.put((handle, reap()))
            self.wake()
        except (AttributeError, OSError):
            if handle in self._forked:  # not our child, and the launcher is not thread-safe:
                run_dir = self._forked_dirs[handle]  # watch its pid, then read its exit code
                reap = functools.partial(_after_gone, pid, run_dir)
            threading.Thread(
                target=self._wait_thread, args=(handle, reap), name=f"wait-{handle}", daemon=True
            ).start()
        else:
            self._selector.register(fd, selectors.EVENT_READ, handle)
        return handle

    def watches(self, handle: str) -> bool:
        """Whether `handle` is a child whose exit `wait` has not reported yet."""
        return handle in self._reapers

    def _wait_thread(self, handle: str, reap: Callable[[], int | None]) -> None:
        self._exited.put((handle, reap()))
        self.wake()

    def wait(self, timeout: float | None) -> None:
        """Block until a child exits, `wake` is called, or `timeout` passes; then call the
        exit callbacks of the children that exited."""
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_r, 4096):
                        pass
                continue
            handle = key.data
            self._selector.unregister(key.fileobj)
            os.close(key.fd)
            reap = self._reapers.get(handle)
            if reap is not None:
                self._exited.put((handle, reap()))
        while True:
            try:
                handle, code = self._exited.get_nowait()
            except queue.Empty:
                return
            self._reapers.pop(handle, None)
            self._forked.discard(handle)
            self._forked_dirs.pop(handle, None)
            callback = self._callbacks.pop(handle, None)
            if callback is not None:
                callback(handle, code)

    def poll(self, handles: Mapping[str, Path]) -> dict[str, Status | None]:
        out: dict[str, Status | None] = {}
        for handle, run_dir in handles.items():
            code = read_exit_code(run_dir)
            if code is not None:
                out[handle] = exit_status(code, run_dir)
            elif handle.isdigit() and pid_alive(int(handle)):
                out[handle] = Status(JobState.RUNNING)
            else:
                out[handle] = Status(JobState.LOST, None, _lost_reason(run_dir))
        return out

    def cancel(self, handle: str, run_dir: Path, *, force: bool = False) -> None:
        """Signal the attempt's process group. Its leader is the pid its wrapper wrote in
        the run folder (the job's own word), else the handle: a handle learnt some other
        way (the launcher's order of spares) never sends the signal to another group."""
        pid = read_pid(run_dir)
        if pid is None:
            if not handle.isdigit() or read_exit_code(run_dir) is not None:
                return  # ended: its pid may belong to another process by now
            pid = int(handle)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL if force else signal.SIGTERM)

    @staticmethod
    def read_log(log_path: Path, offset: int, most: int = 1 << 20) -> bytes:
        """At most `most` bytes of the log from `offset` on (call again for more: a log may
        be gigabytes). The engine mines logs through `ccspec.logfile.mine_log`."""
        try:
            fd = os.open(log_path, os.O_RDONLY)
        except OSError:
            return b""
        try:
            return os.pread(fd, most, offset)
        except OSError:
            return b""
        finally:
            os.close(fd)
