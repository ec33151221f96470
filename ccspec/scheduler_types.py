"""What the scheduler (ccspec.scheduler) reads and says: jobs as it sees them, the events the
engine feeds it and the commands it answers with. Frozen data, no behaviour.

A launch is named by its job and its number, counted per job by the scheduler (from the
launches recorded before this run); an event about a launch that is no longer the job's
latest is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from ccspec.states import JobState

__all__ = [
    "Attached",
    "Cancel",
    "CannotLaunch",
    "Command",
    "Ended",
    "Event",
    "Expand",
    "Expanded",
    "Finish",
    "HandOver",
    "Interrupt",
    "Launch",
    "LaunchAccepted",
    "LaunchRefused",
    "LeaseLost",
    "Prepare",
    "Retry",
    "Settle",
    "Start",
    "StateSeen",
    "Task",
    "Tick",
]


@dataclass(frozen=True)
class Task:
    """A job as the scheduler sees it."""

    id: str
    needs: tuple[str, ...] = ()
    pools: tuple[str, ...] = ()  # slot pools a launch holds until it ends
    retries: int = 0
    timeout: float | None = None
    host: str = "local"  # named in messages only
    remote: bool = False  # a forced kill waits for its host to confirm it
    fanout: bool = False  # the engine expands it into its members when its needs are met
    launches: int = 0  # launches recorded before this run
    state: JobState = JobState.PENDING  # a final state: nothing to do (e.g. up to date)


# -- events ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Launching may begin (after re-attaching to what an earlier runner left)."""


@dataclass(frozen=True)
class Tick:
    """Time passed: timeouts, kills and retries that are due."""


@dataclass(frozen=True)
class LaunchAccepted:
    job: str
    number: int
    queued: bool = False  # in its host's queue, not running yet


@dataclass(frozen=True)
class LaunchRefused:
    """The host did not take the launch. Temporary (unreachable, busy): launched again after
    a backoff, without spending a retry. Permanent: the job fails."""

    job: str
    number: int
    reason: str
    temporary: bool


@dataclass(frozen=True)
class StateSeen:
    job: str
    number: int
    state: JobState  # QUEUED or RUNNING


@dataclass(frozen=True)
class Ended:
    job: str
    number: int
    state: JobState
    exit_code: int | None = None
    reason: str | None = None
    finished: float | None = None  # wall time it ended by its own account


@dataclass(frozen=True)
class Attached:
    """An attempt an earlier runner launched runs (or waits in a queue) out there.
    `task`: the job, when it is not one of the scheduler's (it left the spec); `ran`: the
    seconds it has run already (its timeout counts them)."""

    job: str
    number: int
    queued: bool = False
    task: Task | None = None
    ran: float = 0.0


@dataclass(frozen=True)
class Expanded:
    job: str
    members: tuple[Task, ...]


@dataclass(frozen=True)
class CannotLaunch:
    """The job cannot be launched at all (its templates do not render): it fails."""

    job: str
    reason: str


@dataclass(frozen=True)
class Interrupt:
    force: bool = False


@dataclass(frozen=True)
class HandOver:
    """Stop launching; running jobs are left to the next runner."""


@dataclass(frozen=True)
class LeaseLost:
    """Another runner took the workflow over: as a hand-over."""


Event = (
    Start
    | Tick
    | LaunchAccepted
    | LaunchRefused
    | StateSeen
    | Ended
    | Attached
    | Expanded
    | CannotLaunch
    | Interrupt
    | HandOver
    | LeaseLost
)


# -- commands --------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepare:
    """The job is ready: its run folder may be made ahead of its launch."""

    job: str


@dataclass(frozen=True)
class Launch:
    """Render, record and submit launch `number` of the job; it holds its slots."""

    job: str
    number: int


@dataclass(frozen=True)
class Expand:
    """Render a fan-out's members; answer with Expanded or CannotLaunch."""

    job: str


@dataclass(frozen=True)
class Cancel:
    """TERM (force: KILL) the launch; its end comes as an Ended event."""

    job: str
    number: int
    force: bool


@dataclass(frozen=True)
class Finish:
    """Record the end of launch `number`."""

    job: str
    number: int
    state: JobState
    exit_code: int | None
    reason: str | None
    finished: float | None


@dataclass(frozen=True)
class Retry:
    """The job waits `delay` seconds, then is launched again; `reason` says why."""

    job: str
    delay: float
    reason: str


@dataclass(frozen=True)
class Settle:
    """The job's final state. `record`: no Finish already recorded it."""

    job: str
    state: JobState
    reason: str | None
    record: bool


Command = Prepare | Launch | Expand | Cancel | Finish | Retry | Settle
