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
from ccspec.states import JobState
from ccspec.targets.base import Launch, Status
from ccspec.targets.launcher import SIGDEF, BashLauncher, eligible
from ccspec.targets.run_folder import (
    exit_status,
    lost_reason,
    move_stale,
    read_exit_code,
    read_pid,
    take_claim,
)

__all__ = [
    "ExitCallback",
    "LocalTarget",
]

# run folders noted ahead of their launch at most at a time (a layer of a wide DAG)
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
        self._made: set[Path] = set()  # the ones whose job folder is made
        self._claimed: set[Path] = set()  # run folders made by `claim`, not launched yet
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
        """Note the run folder of an attempt that will launch soon: its job's folder is made
        by `make_prepared` while the runner waits for jobs instead of during its launch (a
        mkdir is a noticeable share of the runner's work per job). The run folder itself is
        made by the launch: it is the launch's claim (`claim`). At most PREPARE_AHEAD
        folders wait to be used at a time; a launch whose job folder is not made yet makes
        it itself."""
        if len(self._asked) >= PREPARE_AHEAD or run_dir in self._asked:
            return
        self._asked.add(run_dir)
        self._to_make.append(run_dir)

    def make_prepared(self, most: int = 2) -> None:
        """Make up to `most` of the job folders asked for (the runner calls this right
        before it waits: a job that ends meanwhile is seen at most that many folders later).
        In the runner's thread: each wake-up of a thread of its own would take the GIL from
        the runner at its next system call."""
        while most > 0 and self._to_make:
            run_dir = self._to_make.popleft()
            if run_dir not in self._asked:  # launched meanwhile: made by its launch
                continue
            if run_dir.parent not in self._dirs:
                try:
                    self._make_job_dir(run_dir.parent)
                except OSError:  # its launch makes it again and reports what is wrong
                    self._asked.discard(run_dir)
                    continue
                most -= 1
            self._made.add(run_dir)

    def claim(self, run_dir: Path, created: float | None = None) -> bool:
        """Make the attempt's run folder: its launch claim (mkdir is atomic). False when it
        was made before: by an earlier send of the same launch, or by a later run's fence
        (`take_claim`). A folder last changed before the attempt was recorded (`created`)
        was left by an attempt of a state folder deleted since: it and its log are moved
        aside, and the claim is taken."""
        self._note_used(run_dir)
        self._make_job_dir(run_dir.parent)  # unless made ahead: no mkdir that fails first
        try:
            os.mkdir(run_dir, DIR_MODE)
        except FileNotFoundError:  # the job's folder was removed meanwhile
            self._dirs.discard(run_dir.parent)
            self._make_job_dir(run_dir.parent)
            if not take_claim(run_dir):
                return False
        except FileExistsError:
            if created is None or not move_stale(run_dir, created) or not take_claim(run_dir):
                return False
        self._dirs.add(run_dir.parent)
        self._claimed.add(run_dir)
        return True

    def release(self, run_dir: Path) -> None:
        """Give back the claim of a launch that started nothing (a later send may try again)."""
        self._claimed.discard(run_dir)
        with contextlib.suppress(OSError):
            os.rmdir(run_dir)

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
        self._claimed.clear()
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
        self._make_run_dir(launch.run_dir)
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
        """A launch's run folder, unless its claim made it."""
        if run_dir in self._claimed:
            self._claimed.discard(run_dir)
            return
        self._note_used(run_dir)
        self._make_job_dir(run_dir.parent)
        with contextlib.suppress(FileExistsError):
            os.mkdir(run_dir, DIR_MODE)

    def _note_used(self, run_dir: Path) -> None:
        self._asked.discard(run_dir)
        if run_dir in self._made:
            self._made.discard(run_dir)
            self.made_ahead += 1

    def _make_job_dir(self, job_dir: Path) -> None:
        """One mkdir for a job's first attempt (a mkdir here costs less than the `mkdir`
        process the wrapper would otherwise start), none after."""
        if job_dir not in self._dirs:
            self._ensure_dir(job_dir.parent)  # logs/WF, once
            with contextlib.suppress(FileExistsError):  # a job that ran before
                os.mkdir(job_dir, DIR_MODE)
            self._dirs.add(job_dir)

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

    def follow(self, handle: str, run_dir: Path, on_exit: ExitCallback) -> None:
        """Report, as a child's, the exit of the process `handle` (a pid) that this target
        did not start (an earlier send of the same launch): through a pidfd while it runs,
        then from its run folder."""
        if handle in self._callbacks:  # our child: its exit is reported anyway
            return
        self._watch(int(handle), functools.partial(_after_gone, int(handle), run_dir), on_exit)

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
                out[handle] = Status(JobState.LOST, None, lost_reason(run_dir))
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
