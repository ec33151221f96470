"""The one protocol every target implements -- this machine (`ccspec.targets.local_batch`),
ssh and WSL hosts (`ccspec.targets.detached`), Slurm (`ccspec.targets.slurm`) -- and the
values that cross it: launches, answers to launches, tracked attempts, statuses, and the
events a host's worker thread (`ccspec.targets.worker`) posts to the engine.

Batch-first: `submit` takes every launch ready for a target at once and `poll` every attempt
it runs, so 1,000 running jobs cost one status query per host per poll. A query that fails
answers `None` for a job ("unknown"), never "failed". `hosts.backend_for` gives the target of
a host of the spec, typed as this protocol.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, TypeVar

from ccspec.spec.resolved import ResolvedJob
from ccspec.states import JobState
from ccspec.usage import Usage

__all__ = [
    "LOG_READ",
    "Fenced",
    "Launch",
    "LaunchAnswered",
    "RemoteLaunch",
    "Status",
    "StatusChanged",
    "StatusUnknown",
    "Submitted",
    "Target",
    "TargetEvent",
    "Tracked",
    "launched_at",
]

LOG_READ = 1 << 20  # bytes `read_log` returns at most unless asked for another amount


@dataclass(frozen=True)
class Launch:
    """Everything this machine needs to start one attempt."""

    workflow: str
    job_id: str
    attempt: int
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    run_dir: Path  # the wrapper writes pid and exit_code here
    log_path: Path
    timeout: float | None = None
    wrapped: bool = False  # argv already records pid and exit code (the run: wrapper)
    attempt_id: int = 0  # the attempt's record: the key of its answer in a batch
    # wall time the attempt was recorded: a run folder older than that is another state's
    created: float | None = None


@dataclass(frozen=True)
class RemoteLaunch:
    """One attempt to start on a remote host."""

    attempt_id: int
    workflow: str
    job: ResolvedJob
    attempt: int
    base_dir: Path  # the spec's folder on this machine
    run_dir: str  # relative to the host's workdir
    log_path: Path  # the local mirror of the log
    env: Mapping[str, str]  # the job's and host's env plus CCSPEC_* (not this machine's env)
    # path relative to the spec -> local file
    files: Mapping[str, Path] = field(default_factory=dict)
    # run-folder files to bring back when it ends
    fetch: Mapping[str, Path] = field(default_factory=dict)
    claim: str = "launch"  # taken in the run folder right before the start (ccspec.targets.claims)


@dataclass(frozen=True)
class Status:
    state: JobState
    exit_code: int | None = None
    reason: str | None = None
    # when it ended by its host's account (None: when ccspec learnt of it)
    finished: float | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    # what a remote attempt used, reported with its end (a local one's is in its run folder)
    usage: Usage | None = None


@dataclass(frozen=True)
class Submitted:
    """A target's answer to one launch: its handle, or why it was refused. A temporary
    refusal (the host could not be reached, a command timed out) is worth launching again
    later; a permanent one (bad partition, options the scheduler rejects) is not."""

    attempt_id: int
    handle: str | None
    error: str | None = None
    temporary: bool = False


@dataclass
class Tracked:
    """An attempt a target watches."""

    attempt_id: int
    handle: str | None  # pid or Slurm job id; None while unknown (found in the run folder)
    run_dir: str  # remote: relative to the host's workdir; this machine: the folder's path
    log_path: Path
    since: float  # wall time of the launch, for the start grace
    last: Status | None = None
    # files of the run folder to bring back when it ends
    fetch: Mapping[str, Path] = field(default_factory=dict)
    claim: str | None = None  # a launch recorded with no answer: its claim, for `Target.fence`


def launched_at(created: float | None) -> float:
    """`Tracked.since` of a recorded attempt. One recorded without a launch time gets the whole
    start grace from now: judged lost at once, a job still starting would run twice."""
    return time.time() if created is None else created


# What `Target.fence` learnt of a launch an earlier run recorded with no answer:
#   never    it did not reach the host, and now never will (relaunch it)
#   claimed  it took its claim, nothing in its run folder yet (follow it, never relaunch)
#   started  its pid, exit code or scheduler id is in the run folder (follow it)
Fenced = Literal["never", "claimed", "started"]

LaunchT = TypeVar("LaunchT", contravariant=True)


class Target(Protocol[LaunchT]):
    """A place where attempts run. Every method takes a batch; none blocks on a job."""

    queues: bool  # jobs wait in a scheduler's queue before they run (Slurm)

    @property
    def label(self) -> str:
        """The target in messages: "this machine", "user@host:port", "wsl:Ubuntu"."""
        ...

    def submit(self, launches: Sequence[LaunchT]) -> list[Submitted]:
        """Start each attempt detached; one answer per launch. Submitting an attempt that
        was submitted already (a retry after a lost answer) starts nothing new."""
        ...

    def poll(self, tracked: Sequence[Tracked]) -> dict[int, Status | None]:
        """States of attempts by attempt id; None means unknown this time, never failed.
        A handle found in a run folder comes back as `Status.extra["handle"]`."""
        ...

    def cancel(self, tracked: Sequence[Tracked], force: bool) -> None:
        """TERM (force: KILL) the attempts and everything they started; a later poll
        confirms their end."""
        ...

    def read_log(self, tracked: Tracked, offset: int, most: int = LOG_READ) -> bytes:
        """At most `most` bytes of the attempt's log from `offset` on (b"" past its end)."""
        ...

    def fence(self, tracked: Sequence[Tracked]) -> dict[int, Fenced]:
        """What became of launches an earlier run recorded with no answer (see `Fenced`);
        an attempt missing from the answer is unknown (the host could not say)."""
        ...

    def close(self) -> None:
        """Release connections; attempts still running go on (they are detached)."""
        ...


# -- what a target tells the engine: a host's worker thread posts these, and this machine's
# target posts StatusChanged when one of its children exits ---------------------------------


@dataclass(frozen=True)
class LaunchAnswered:
    result: Submitted


@dataclass(frozen=True)
class StatusChanged:
    attempt_id: int
    status: Status  # final states end the tracking


@dataclass(frozen=True)
class StatusUnknown:
    attempt_ids: tuple[int, ...]
    reason: str  # the host could not be asked this time


TargetEvent = LaunchAnswered | StatusChanged | StatusUnknown
