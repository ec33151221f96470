"""This machine as a `Target` (ccspec.targets.base): the batch protocol over `LocalTarget`,
whose exit callbacks it gathers for `poll`. Attempts another process started are polled
through their run folders (the wrappers' pid and exit-code files), as after a restart.

A launch whose run folder already names a process (a pid or an exit code) is not started
again: submitting the same attempt twice starts it once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ccspec.errors import PermanentTargetError, TargetError
from ccspec.states import JobState
from ccspec.targets.base import LOG_READ, Fenced, Launch, Status, Submitted, Target, Tracked
from ccspec.targets.local import LocalTarget, exit_status, read_exit_code, read_pid

__all__ = ["LocalBatch"]

# seconds an attempt recorded with no handle may take to write its pid before it counts as
# never started (its wrapper writes the pid first thing)
START_WAIT = 1.0


class LocalBatch:
    queues = False
    label = "this machine"

    def __init__(self, target: LocalTarget | None = None) -> None:
        self.target = target or LocalTarget()
        self._exits: dict[str, int | None] = {}  # handle -> exit code of our children
        self._lock = threading.Lock()  # exit callbacks may come from waiter threads

    def _exited(self, handle: str, code: int | None) -> None:
        with self._lock:
            self._exits[handle] = code

    def submit(self, launches: Sequence[Launch]) -> list[Submitted]:
        out: list[Submitted] = []
        for launch in launches:
            known = _recorded_handle(launch.run_dir)
            if known is not None:  # sent before: it runs (or ran) already
                out.append(Submitted(launch.attempt_id, known))
                continue
            try:
                handle = self.target.submit(launch, self._exited)
            except PermanentTargetError as exc:
                out.append(Submitted(launch.attempt_id, None, str(exc)))
            except (TargetError, OSError) as exc:  # out of processes, a folder failing
                out.append(Submitted(launch.attempt_id, None, str(exc), temporary=True))
            else:
                out.append(Submitted(launch.attempt_id, handle))
        return out

    def poll(self, tracked: Sequence[Tracked]) -> dict[int, Status | None]:
        self.target.wait(0)  # exits of our children that already happened
        with self._lock:
            exits = dict(self._exits)
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
            if handle in exits:
                status: Status | None = exit_status(exits[handle], t.run_dir)
            else:
                status = self.target.poll({handle: Path(t.run_dir)})[handle]
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

    def cancel(self, tracked: Sequence[Tracked], force: bool) -> None:
        for t in tracked:
            handle = t.handle or _recorded_handle(Path(t.run_dir))
            if handle is not None:
                self.target.cancel(handle, Path(t.run_dir), force=force)

    def read_log(self, tracked: Tracked, offset: int, most: int = LOG_READ) -> bytes:
        return LocalTarget.read_log(tracked.log_path, offset, most)

    def fence(self, tracked: Sequence[Tracked]) -> dict[int, Fenced]:
        """A local launch has no claim: it started when its wrapper wrote a pid (or an exit
        code); one that wrote neither within START_WAIT of now never will."""
        found: dict[int, Fenced] = {}
        deadline = time.monotonic() + START_WAIT
        waiting = list(tracked)
        while waiting:
            left = []
            for t in waiting:
                if not os.path.isdir(t.run_dir):  # made before every launch: none happened
                    found[t.attempt_id] = "never"
                elif _recorded_handle(Path(t.run_dir)) is not None:
                    found[t.attempt_id] = "started"
                else:
                    left.append(t)
            if not left or time.monotonic() >= deadline:
                found.update((t.attempt_id, "never") for t in left)
                break
            waiting = left
            time.sleep(0.05)  # a wrapper starting: it writes its pid first thing
        return found

    def close(self) -> None:
        self.target.close()


def _recorded_handle(run_dir: Path) -> str | None:
    """The pid an attempt's wrapper recorded in its run folder, "-" when only its exit code
    is left there (it ended), None when it left nothing yet."""
    pid = read_pid(run_dir)
    if pid is not None:
        return str(pid)
    return "-" if read_exit_code(run_dir) is not None else None


def _check(batch: LocalBatch) -> Target[Launch]:
    return batch  # mypy: a LocalBatch is a Target of local launches
