"""This machine as a `Target` (ccspec.targets.base): the batch protocol over `LocalTarget`.
The engine (ccspec.engine) uses it for every local attempt; the contract suite checks it
against the other targets. Given `post`, the exit of a child becomes a `StatusChanged`
with the final Status computed here (`exit_status`: the same mapping of exit codes and
signals to states whatever path started the job), posted from `wait`; without it, exits
are gathered for `poll`. Attempts another process started are polled through their run
folders (the wrappers' pid and exit-code files), as after a restart.

Beyond the protocol, the engine's loop reaches the pidfd selector through `wait` and
`wake`, and makes run folders ahead of launches through `prepare` and `make_prepared`.

Every launch first takes its claim: it makes the attempt's run folder (`mkdir` is atomic).
A launch that finds the folder made starts nothing and answers with the pid the first one's
wrapper wrote, so submitting the same attempt twice starts it once; `fence` makes the folder
of an attempt that never started, so a late launch of it gives up (ccspec.targets.claims
does the same on remote hosts).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ccspec.errors import PermanentTargetError, TargetError
from ccspec.state import unwritable
from ccspec.states import JobState
from ccspec.targets.base import (
    LOG_READ,
    Fenced,
    Launch,
    Status,
    StatusChanged,
    Submitted,
    Target,
    TargetEvent,
    Tracked,
)
from ccspec.targets.local import LocalTarget
from ccspec.targets.run_folder import exit_status, read_exit_code, read_pid, take_claim

__all__ = ["LocalBatch"]

# seconds an attempt recorded with no handle may take to write its pid before it counts as
# never started (its wrapper writes the pid first thing)
START_WAIT = 1.0
_NONE = object()  # no exit seen


class LocalBatch:
    queues = False
    label = "this machine"

    def __init__(
        self,
        target: LocalTarget | None = None,
        *,
        post: Callable[[TargetEvent], None] | None = None,
        state_dir: Path | None = None,
    ) -> None:
        """`post`: where exits go as they happen (called from `wait`, in its caller's
        thread). `state_dir`: a launch that cannot write under it raises
        StateFolderUnwritable instead of being refused (every launch would fail so)."""
        self.target = target or LocalTarget()
        self._post = post
        self._state_dir = state_dir
        self._launched: dict[str, tuple[int, Path]] = {}  # handle -> (attempt id, run folder)
        self._exits: dict[str, int | None] = {}  # handle -> exit code of our children
        self._lock = threading.Lock()

    def _exited(self, handle: str, code: int | None) -> None:
        known = self._launched.pop(handle, None) if self._post is not None else None
        if known is not None and self._post is not None:
            attempt_id, run_dir = known
            self._post(StatusChanged(attempt_id, exit_status(code, run_dir)))
            return
        with self._lock:
            self._exits[handle] = code

    # -- the engine loop's reach into this machine ----------------------------------------

    def wait(self, timeout: float | None) -> None:
        """Block until a child exits, `wake` is called or `timeout` passes; exits are then
        posted (or gathered for `poll`)."""
        self.target.wait(timeout)

    def wake(self) -> None:
        """Make a blocked `wait` return; safe from a signal handler or another thread."""
        self.target.wake()

    def prepare(self, run_dir: Path) -> None:
        """Note the run folder of an attempt that will launch soon (made by `make_prepared`)."""
        self.target.prepare(run_dir)

    def make_prepared(self) -> None:
        """Make a few of the folders noted, while the caller has nothing else to do."""
        self.target.make_prepared()

    @property
    def made_ahead(self) -> int:
        """Launches whose run folder was made ahead."""
        return self.target.made_ahead

    @property
    def prepared_unused(self) -> int:
        """Run folders noted or made ahead that no launch has used yet."""
        return self.target.prepared_unused

    # -- the protocol ---------------------------------------------------------------------

    def submit(self, launches: Sequence[Launch]) -> list[Submitted]:
        out: list[Submitted] = []
        for launch in launches:
            try:
                took = self.target.claim(launch.run_dir, launch.created)
            except OSError as exc:
                self._check(exc)
                out.append(Submitted(launch.attempt_id, None, str(exc), temporary=True))
                continue
            if not took:  # sent before (it runs or ran), or fenced by a later run
                known = _await_handle([launch.run_dir]).get(launch.run_dir)
                error = None if known else "the launch was settled as never started"
                out.append(Submitted(launch.attempt_id, known, error))
                if known is not None and self._post is not None:  # its exit is posted too
                    self._follow(known, launch)
                continue
            try:
                handle = self.target.submit(launch, self._exited)
            except (TargetError, OSError) as exc:  # nothing started: a later send may try again
                self.target.release(launch.run_dir)
                self._check(exc)
                temporary = not isinstance(exc, PermanentTargetError)  # out of processes...
                out.append(Submitted(launch.attempt_id, None, str(exc), temporary=temporary))
            else:
                if self._post is not None:
                    self._launched[handle] = (launch.attempt_id, launch.run_dir)
                out.append(Submitted(launch.attempt_id, handle))
        return out

    def _follow(self, handle: str, launch: Launch) -> None:
        """Post the exit of a process an earlier send of `launch` started, as a child's."""
        if handle.isdigit():
            self._launched[handle] = (launch.attempt_id, launch.run_dir)
            self.target.follow(handle, launch.run_dir, self._exited)
        elif self._post is not None:  # it ended already: only its exit code is left
            code = read_exit_code(launch.run_dir)
            self._post(StatusChanged(launch.attempt_id, exit_status(code, launch.run_dir)))

    def _check(self, exc: BaseException) -> None:
        if self._state_dir is not None:
            unwritable.check(exc, self._state_dir)  # a full or read-only state folder: exit 5

    def poll(self, tracked: Sequence[Tracked]) -> dict[int, Status | None]:
        self.target.wait(0)  # exits of our children that already happened
        states: dict[int, Status | None] = {}
        for t in tracked:
            handle = t.handle or _recorded_handle(Path(t.run_dir))
            if handle is None:
                states[t.attempt_id] = (
                    Status(JobState.RUNNING)
                    if time.time() - t.since < START_WAIT
                    else Status(JobState.LOST, None, "the job never started (no pid)")
                )
                continue
            status = self._status(handle, Path(t.run_dir))
            if status is not None and handle != t.handle:
                status = Status(
                    status.state,
                    status.exit_code,
                    status.reason,
                    status.finished,
                    {**status.extra, "handle": handle},
                )
            states[t.attempt_id] = status
        return states

    def _exit_of(self, handle: str) -> object:
        with self._lock:
            return self._exits.get(handle, _NONE)

    def _status(self, handle: str, run_dir: Path) -> Status | None:
        """From the exit we saw (our children), else the run folder; a child found gone
        there ended after `wait` looked: its exit is collected now (it tells a KILL)."""
        code = self._exit_of(handle)
        if code is _NONE:
            status = self.target.poll({handle: run_dir})[handle]
            if (
                status is None
                or status.state is not JobState.LOST
                or not self.target.watches(handle)
            ):
                return status
            self.target.wait(0)
            code = self._exit_of(handle)
            if code is _NONE:
                return status
        assert code is None or isinstance(code, int)
        return exit_status(code, run_dir)

    def cancel(self, tracked: Sequence[Tracked], force: bool) -> None:
        for t in tracked:
            handle = t.handle or _recorded_handle(Path(t.run_dir))
            if handle is not None:
                self.target.cancel(handle, Path(t.run_dir), force=force)

    def read_log(self, tracked: Tracked, offset: int, most: int = LOG_READ) -> bytes:
        return LocalTarget.read_log(tracked.log_path, offset, most)

    def fence(self, tracked: Sequence[Tracked]) -> dict[int, Fenced]:
        """Attempts whose wrapper wrote a pid or exit code (within START_WAIT: one may be
        starting) started; of the others, those whose claim the fence takes never will."""
        found: dict[int, Fenced] = {}
        dirs = {t.attempt_id: Path(t.run_dir) for t in tracked}
        handles = _await_handle([d for d in dirs.values() if d.is_dir()])
        for attempt_id, run_dir in dirs.items():
            if run_dir in handles:
                found[attempt_id] = "started"
                continue
            try:
                found[attempt_id] = "never" if take_claim(run_dir) else "claimed"
            except OSError:
                continue  # cannot say: unknown
        return found

    def close(self) -> None:
        self.target.close()


def _await_handle(run_dirs: Sequence[Path]) -> dict[Path, str]:
    """The handles the attempts in these run folders recorded, waiting up to START_WAIT for
    those that recorded none yet (a wrapper writes its pid first thing)."""
    found: dict[Path, str] = {}
    deadline = time.monotonic() + START_WAIT
    waiting = list(run_dirs)
    while True:
        left = []
        for run_dir in waiting:
            handle = _recorded_handle(run_dir)
            if handle is None:
                left.append(run_dir)
            else:
                found[run_dir] = handle
        if not left or time.monotonic() >= deadline:
            return found
        waiting = left
        time.sleep(0.02)


def _recorded_handle(run_dir: Path) -> str | None:
    """The pid an attempt's wrapper recorded in its run folder, "-" when only its exit code
    is left there (it ended), None when it left nothing yet."""
    pid = read_pid(run_dir)
    if pid is not None:
        return str(pid)
    return "-" if read_exit_code(run_dir) is not None else None


def _check(batch: LocalBatch) -> Target[Launch]:
    return batch  # mypy: a LocalBatch is a Target of local launches
