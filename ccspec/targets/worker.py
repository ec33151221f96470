"""A thread per remote host that drives its backend, so a slow ssh round trip or scheduler
never blocks the engine's loop (local exits, timeouts, other hosts).

Launches queued while the thread was busy go out together as one batch, as do those the
engine hands in one round (it says when the round is over: `flush`); every poll asks
about all of the host's jobs at once. The poll interval starts short after a change and
backs off while nothing changes. A batch the host refuses for now (unreachable, a command
timed out, no answer) is sent again with backoff, a bounded number of times, before the
refusal reaches the engine marked temporary; a permanent refusal reaches it at once. Sending
a launch again is safe: its claim in the run folder (ccspec.targets.claims) starts it once.
Results reach the engine as typed events (`TargetEvent`, ccspec.targets.base) through
`post`:

    LaunchAnswered(Submitted)            the handle (or why the launch was refused)
    StatusChanged(attempt_id, Status)    a change of state; final states end the tracking
    StatusUnknown(attempt_ids, reason)   the host could not be asked this time
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from ccspec.backoff import Backoff
from ccspec.errors import HostUnreachable, TargetError, TemporaryTargetError
from ccspec.states import FINAL
from ccspec.targets.base import (
    LaunchAnswered,
    RemoteLaunch,
    StatusChanged,
    StatusUnknown,
    Submitted,
    Target,
    TargetEvent,
    Tracked,
)

__all__ = ["HostWorker", "Post"]

Post = Callable[[TargetEvent], None]
# seconds to wait for more launches before sending a batch: the engine hands over a round's
# launches back to back (some 50 us apart); a pause as long as the interpreter's thread
# switch interval (5 ms) is the end of the round
BATCH_GATHER = 0.005
SUBMIT_RETRIES = 4  # sends of a refused batch after the first (backoff 1, 2, 4, 8 s)


class HostWorker:
    def __init__(
        self,
        backend: Target[RemoteLaunch],
        post: Post,
        *,
        min_interval: float = 0.2,
        max_interval: float = 5.0,
        retries: int = SUBMIT_RETRIES,
        retry_first: float = 1.0,
        gather: float = BATCH_GATHER,
    ) -> None:
        self.backend = backend
        self.post = post
        self.min_interval, self.max_interval = min_interval, max_interval
        self.retries, self.retry_first, self.gather = retries, retry_first, gather
        self.interval = min_interval
        self._cond = threading.Condition()
        self._launches: list[RemoteLaunch] = []
        self._cancels: list[tuple[Tracked, bool]] = []
        self._tracked: dict[int, Tracked] = {}
        self._next_poll = 0.0
        self._closing = False
        self._flushed = False  # the queued launches are the whole of the engine's round
        self._thread = threading.Thread(
            target=self._loop, name=f"host-{backend.label}", daemon=True
        )
        self._thread.start()

    # -- called by the engine ----------------------------------------------------------

    def submit(self, launch: RemoteLaunch) -> None:
        with self._cond:
            self._launches.append(launch)
            self._cond.notify()

    def flush(self) -> None:
        """The engine handed its round's launches: send them without waiting for more."""
        with self._cond:
            if self._launches:
                self._flushed = True
                self._cond.notify()

    def watch(self, tracked: Tracked) -> None:
        with self._cond:
            self._tracked[tracked.attempt_id] = tracked
            self._next_poll = 0.0
            self._cond.notify()

    def cancel(self, attempt_id: int, force: bool) -> None:
        with self._cond:
            tracked = self._tracked.get(attempt_id)
            if tracked is not None:
                self._cancels.append((tracked, force))
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout=30)
        self.backend.close()

    # -- the thread --------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not (
                    self._closing
                    or self._launches
                    or self._cancels
                    or (self._tracked and time.monotonic() >= self._next_poll)
                ):
                    wait = self._next_poll - time.monotonic() if self._tracked else None
                    self._cond.wait(timeout=wait)
                if self._closing and not self._launches and not self._cancels:
                    return
                seen = 0
                while (
                    self._launches
                    and len(self._launches) != seen
                    and not (self._closing or self._flushed)
                ):
                    # the engine launches in bursts: take the whole burst
                    seen = len(self._launches)
                    self._cond.wait(timeout=self.gather)
                launches, self._launches, self._flushed = self._launches, [], False
                cancels, self._cancels = self._cancels, []
                tracked = list(self._tracked.values())
            if cancels:
                self._cancel(cancels)
            if launches:
                self._submit(launches)
            elif tracked and time.monotonic() >= self._next_poll:
                self._poll(tracked)

    def _send(self, launches: list[RemoteLaunch]) -> list[Submitted]:
        """Submit a batch; the launches refused for now go again after a backoff, at most
        `retries` times (or until the worker closes), then their refusal stands, temporary."""
        backoff = Backoff(first=self.retry_first, cap=8 * self.retry_first)
        answers: dict[int, Submitted] = {}
        pending = launches
        while True:
            for result in self._submit_once(pending):
                answers[result.attempt_id] = result
            again = {i for i, r in answers.items() if r.handle is None and r.temporary}
            if not again or backoff.failures >= self.retries:
                break
            if not self._pause(backoff.failed(time.monotonic())):
                break
            pending = [launch for launch in launches if launch.attempt_id in again]
        return [
            answers.get(i, Submitted(i, None, f"{self.backend.label} did not answer", True))
            for i in (launch.attempt_id for launch in launches)
        ]

    def _submit_once(self, launches: list[RemoteLaunch]) -> list[Submitted]:
        try:
            return self.backend.submit(launches)
        except (TemporaryTargetError, OSError) as exc:
            return [
                Submitted(launch.attempt_id, None, str(exc), temporary=True) for launch in launches
            ]
        except TargetError as exc:  # permanent: retrying will not help
            return [Submitted(launch.attempt_id, None, str(exc)) for launch in launches]

    def _pause(self, due: float) -> bool:
        """Wait until `due` (monotonic); False when the worker closes meanwhile."""
        with self._cond:
            while not self._closing and (left := due - time.monotonic()) > 0:
                self._cond.wait(left)
            return not self._closing

    def _submit(self, launches: list[RemoteLaunch]) -> None:
        results = self._send(launches)
        by_id = {launch.attempt_id: launch for launch in launches}
        with self._cond:
            for result in results:
                if result.handle is not None:
                    launch = by_id[result.attempt_id]
                    self._tracked[result.attempt_id] = Tracked(
                        result.attempt_id,
                        result.handle,
                        launch.run_dir,
                        launch.log_path,
                        time.time(),
                        fetch=launch.fetch,
                    )
            self.interval = self.min_interval
            # a detached host's launch command reports the jobs that ended at once
            # (ccspec.targets.launch_report): the poll that passes them on asks the host
            # nothing, so it follows without a pause; a scheduler is asked at its own pace
            self._next_poll = time.monotonic() + (self.interval if self.backend.queues else 0.0)
        for result in results:
            self.post(LaunchAnswered(result))

    def _poll(self, tracked: Sequence[Tracked]) -> None:
        try:
            states = self.backend.poll(tracked)
        except (TargetError, OSError) as exc:
            reason = (
                str(exc) if isinstance(exc, HostUnreachable) else f"{self.backend.label}: {exc}"
            )
            self.post(StatusUnknown(tuple(t.attempt_id for t in tracked), reason))
            for t in tracked:
                t.last = None  # the next answer is news, even if the state did not change
            states = {}
        changed = False
        # a log still being fetched: ask again at once (a scheduler's host keeps its pace)
        behind = not self.backend.queues and any(
            s is not None and s.extra.get("mirroring") for s in states.values()
        )
        with self._cond:
            for t in tracked:
                status = states.get(t.attempt_id)
                if status is None:
                    continue
                handle = status.extra.get("handle") if status.extra else None
                if handle:
                    t.handle = handle
                if t.last != status:
                    changed = True
                    t.last = status
                    self.post(StatusChanged(t.attempt_id, status))
                if status.state in FINAL:
                    self._tracked.pop(t.attempt_id, None)
            self.interval = (
                self.min_interval if changed else min(self.max_interval, self.interval * 1.5)
            )
            self._next_poll = time.monotonic() + (0.0 if behind else self.interval)

    def _cancel(self, cancels: list[tuple[Tracked, bool]]) -> None:
        for force in (False, True):
            chosen = [t for t, f in cancels if f is force]
            if not chosen:
                continue
            try:
                self.backend.cancel(chosen, force)
            except (TargetError, OSError) as exc:
                self.post(
                    StatusUnknown(tuple(t.attempt_id for t in chosen), f"cancel failed: {exc}")
                )
        with self._cond:
            self._next_poll = time.monotonic() + self.min_interval
