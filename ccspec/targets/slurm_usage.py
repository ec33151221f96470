"""Resource usage of Slurm jobs from accounting (`sacct` Elapsed, TotalCPU, MaxRSS), for the
attempts whose wrapper left no usage line: a job that Slurm killed (out of memory, over its
time) or that was killed by KILL never ran its wrapper's exit trap. What sacct knows goes
into the attempt's final status, as the wrapper's line would have. Called by the Slurm
target's poll (ccspec.targets.slurm); it asks nothing when every finished attempt came back
with its usage, which is the usual case.

Without slurmdbd, `sacct -c` (the completion log) knows only Elapsed: the wall time alone is
recorded then."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from ccspec.targets.base import Tracked
from ccspec.usage import Usage

__all__ = ["parse_sacct_usage", "slurm_seconds", "slurm_size", "usage_from_accounting"]

FIELDS = "JobID,Elapsed,TotalCPU,MaxRSS"
_TIME = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?)$", re.I)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


def slurm_seconds(text: str) -> float | None:
    """Seconds in a Slurm duration: `[D-][HH:]MM:SS[.mmm]` (None when empty or unknown)."""
    match = _TIME.match(text.strip())
    if not match:
        return None
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def slurm_size(text: str) -> int | None:
    """Bytes in a Slurm size such as `51200K` or `1.5G` (None when empty)."""
    match = _SIZE.match(text.strip())
    if not match:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def parse_sacct_usage(text: str) -> dict[str, Usage]:
    """`sacct -n -P -o JobID,Elapsed,TotalCPU,MaxRSS` by job id: Elapsed and TotalCPU of the
    job's line (TotalCPU sums its steps), MaxRSS the largest of its steps' (`123.batch`...)."""
    wall: dict[str, float | None] = {}
    cpu: dict[str, float | None] = {}
    rss: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 4:
            continue
        job, _, step = parts[0].strip().partition(".")
        if not job.isdigit():
            continue
        size = slurm_size(parts[3])
        if size:
            rss[job] = max(rss.get(job, 0), size)
        if not step:
            wall[job], cpu[job] = slurm_seconds(parts[1]), slurm_seconds(parts[2]) or None
    return {job: Usage(wall[job], cpu.get(job), rss.get(job)) for job in wall}


def usage_from_accounting(
    finished: Sequence[Tracked],
    handles: Mapping[int, str | None],
    ask: Callable[[str], str | None],
) -> dict[int, Usage]:
    """What accounting knows of the `finished` attempts (those that came back without a usage
    line), by attempt id. `ask(fields_and_ids)` runs sacct with those options and returns its
    output (None when it failed: nothing is known, and nothing is asked again for these
    attempts, which are recorded without usage)."""
    missing = {h: t for t in finished if (h := handles.get(t.attempt_id)) and h.isdigit()}
    if not missing:
        return {}
    text = ask(f"-n -P -o {FIELDS} -j {','.join(sorted(missing, key=int))}")
    if text is None:
        return {}
    found: dict[int, Usage] = {}
    for job, used in parse_sacct_usage(text).items():
        t = missing.get(job)
        if t is not None and (used.wall, used.cpu, used.max_rss) != (None, None, None):
            found[t.attempt_id] = used
    return found
