"""Slurm clusters: sbatch scripts rendered from templates/sbatch.sh.j2, submitted on this
machine or on a login node over ssh.

Per poll, whatever the number of jobs: one `squeue` for every active id, and one `sacct`
for those squeue no longer shows as active (plain `sacct`, or `sacct -c` from the job
completion log when the cluster has no accounting storage). The wrapper's exit-code file in
the run folder settles what both have forgotten. A query that fails leaves the job's state
unknown for that poll, never failed.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import secrets
import shlex
import time
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from ccspec.errors import TargetError
from ccspec.resources import template_path
from ccspec.spec.models import SlurmHost
from ccspec.states import FINAL, JobState
from ccspec.targets.base import LOG_READ, Fenced, RemoteLaunch, Status, Submitted, Target, Tracked
from ccspec.targets.claims import CLAIM_CHECK, fence
from ccspec.targets.remote import (
    START_GRACE,
    FileState,
    RemoteLayout,
    fetch_results,
    parse_poll,
    poll_lines,
    read_remote_log,
    refused,
)
from ccspec.targets.shells import Shell
from ccspec.targets.slurm_array import (
    ARRAY_FUNCTION,
    SLURM_ID,
    array_folder,
    array_script,
    find_lines,
    split_arrays,
    submit_line,
)
from ccspec.targets.slurm_pack import (
    PACK_FUNCTION,
    PACK_MEMBER,
    cancel_members,
    member_record,
    pack_folder,
    pack_script,
    pack_submit_line,
    split_packs,
)
from ccspec.targets.slurm_states import SlurmRecord, map_state
from ccspec.targets.slurm_states import final as _final
from ccspec.targets.slurm_states import parse_sacct as _parse_sacct
from ccspec.targets.slurm_states import parse_squeue as _parse_squeue
from ccspec.targets.slurm_usage import usage_from_accounting

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "SlurmBackend",
    "SlurmRecord",
    "_parse_sacct",
    "_parse_squeue",
    "attempt_of",
    "busy",
    "map_state",
    "sbatch_options",
]

q = shlex.quote

# S KEY RUN_DIR CLAIM: take the launch's claim (ccspec.targets.claims), then sbatch the run
# folder's job.sbatch and keep its id in RUN_DIR/slurm_id. A launch sent again answers with
# the same id.
SUBMIT_FUNCTION = r"""
U=$(umask)
S() {
  k=$1 r=$2 m=$3
  CLAIM_CHECK
  umask 077; : >> "$2/log"; umask "$U"  # Slurm appends to it and keeps its mode: 0600 (the log may show secrets)
  if o=$(sbatch --parsable "$2/job.sbatch" 2>&1); then
    i=${o%%;*}; echo "$i" > "$2/slurm_id"; echo "$i" > "$r/$m/handle"; printf '@@ %s ok %s\n' "$1" "$i"
  else
    rm -rf "$r/$m"  # nothing was submitted: a later send of this launch may try again
    printf '@@ %s err %s\n' "$1" "$(printf '%s' "$o" | tr '\n' ' ')"
  fi
}
""".replace("CLAIM_CHECK", CLAIM_CHECK)


def sbatch_options(launch: RemoteLaunch, host: SlurmHost) -> list[str]:
    """resources -> --cpus-per-task, --mem, --time, --gres; host -> partition, account, qos
    and the free `sbatch:` options (a job's own options win)."""
    res = launch.job.resources
    options: dict[str, str | None] = {}
    if host.partition:
        options["partition"] = host.partition
    if host.account:
        options["account"] = host.account
    if host.qos:
        options["qos"] = host.qos
    if res.cpus:
        options["cpus-per-task"] = str(res.cpus)
    if res.mem:
        options["mem"] = f"{res.mem}M"
    limit = res.time or launch.job.timeout
    if limit:
        minutes = max(1, math.ceil(limit / 60))
        options["time"] = f"{minutes // 1440}-{minutes % 1440 // 60:02d}:{minutes % 60:02d}:00"
    if res.gpus:
        options["gres"] = f"gpu:{res.gpus}"
    for key, value in host.sbatch.items():
        key = key.replace("_", "-")
        options[key] = (
            None if value is True else str(value).lower() if isinstance(value, bool) else str(value)
        )
    return [f"--{k}" if v is None else f"--{k}={v}" for k, v in options.items() if v != "false"]


@functools.lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    import jinja2

    template: jinja2.Template = jinja2.Template(
        template_path("sbatch.sh.j2").read_text(), keep_trailing_newline=True
    )
    return template


class SlurmBackend:
    queues = True

    def __init__(self, shell: Shell, host: SlurmHost, workdir: str) -> None:
        self.shell = shell
        self.host = host
        self.layout = RemoteLayout(shell, workdir, host.python)
        self.completion_log: bool | None = None  # None: not known yet whether plain sacct works
        self.queries = 0  # squeue and sacct calls so far (benchmarks count them)

    @property
    def label(self) -> str:
        return self.shell.label

    def render(self, launch: RemoteLaunch) -> str:
        job = launch.job
        return _template().render(
            workflow=launch.workflow,
            job_id=job.id,
            attempt=launch.attempt,
            job_name=f"ccspec.{launch.workflow}.{job.id}"[:200],
            comment=f"ccspec:{launch.workflow}/{job.id}/{launch.attempt}/{launch.claim}",  # unique: the claim
            run_dir=self.layout.path(launch.run_dir),
            cwd=self.layout.job_folder(launch),
            options=sbatch_options(launch, self.host),
            command=shlex.join([*self.layout.env_argv(launch), *self.layout.argv(launch)]),
        )

    def submit(self, launches: Sequence[RemoteLaunch]) -> list[Submitted]:
        rest, packs = split_packs(launches)
        singles, arrays = split_arrays(rest)
        lines = [SUBMIT_FUNCTION, ARRAY_FUNCTION if arrays else "", PACK_FUNCTION if packs else ""]
        failed: list[Submitted] = []
        groups = [
            *((self._single_line, [launch]) for launch in singles),
            *((self._array_line, members) for members in arrays),
            *((self._pack_line, members) for members in packs),
        ]
        for make, members in groups:
            try:
                lines.append(make(members))
            except (TargetError, OSError) as exc:
                failed += [
                    refused(m, f"cannot ship files to {self.label}: {exc}", exc) for m in members
                ]
        if len(lines) == 3:
            return failed
        result = self.shell.run("\n".join(lines))
        answers = {}
        for line in result.text.splitlines():
            parts = line[3:].split(" ", 2) if line.startswith("@@ ") else []
            if len(parts) >= 2 and parts[0].isdigit():
                answers[int(parts[0])] = (parts[1], parts[2] if len(parts) > 2 else "")
        out = list(failed)
        done = {f.attempt_id for f in failed}
        for launch in launches:
            if launch.attempt_id in done:
                continue
            status, value = answers.get(launch.attempt_id, ("", ""))
            if status == "ok" and SLURM_ID.match(value.strip()):
                out.append(Submitted(launch.attempt_id, value.strip()))
            else:
                # no answer: the command died on the way (safe to send again: the claim
                # submits once); "err": sbatch refused it, for good unless Slurm was busy
                detail = value.strip() or result.err.strip() or f"exit code {result.code}"
                out.append(
                    Submitted(
                        launch.attempt_id,
                        None,
                        f"sbatch on {self.label} failed: {detail}",
                        temporary=not status or busy(detail),
                    )
                )
        return out

    def _single_line(self, members: Sequence[RemoteLaunch]) -> str:
        launch = members[0]
        stage = self.layout.stage_script(launch)
        script = self.render(launch)
        run = q(self.layout.path(launch.run_dir))
        eof = f"CCSPEC_{secrets.token_hex(8)}"
        return f"{stage} && cat > {run}/job.sbatch <<'{eof}'\n{script}{eof}\nS {launch.attempt_id} {run} {q(launch.claim)}"

    def _array_line(self, members: Sequence[RemoteLaunch]) -> str:
        stage = " && ".join(self.layout.stage_script(m) for m in members)
        folder = array_folder(self.layout, members[0].workflow)
        options = sbatch_options(members[0], self.host)
        script = array_script(self.layout, members, folder, options)
        return f"{stage} && {submit_line(self.layout, members, folder, script, self.host.max_jobs)}"

    def _pack_line(self, members: Sequence[RemoteLaunch]) -> str:
        stage = " && ".join(self.layout.stage_script(m) for m in members)
        folder = pack_folder(self.layout, members[0].workflow)
        options = sbatch_options(members[0], self.host)
        name = f"ccspec.{members[0].workflow}.{members[0].job.name}"[:200]
        script = pack_script(self.layout, members, folder, name, options)
        line = pack_submit_line(self.layout, members, folder, script, self.host.partition)
        return f"{stage} && {line}"

    def poll(self, tracked: Sequence[Tracked]) -> dict[int, Status | None]:
        ids = sorted(
            {_job(t.handle) for t in tracked if t.handle and SLURM_ID.match(t.handle)}, key=_order
        )
        script = poll_lines(self.layout, tracked)
        if ids:
            self.queries += 1
            script = (
                f"echo '@@squeue'; squeue -h -t all -r -j {','.join(ids)} -o '%i|%T|%r' 2>&1; "
                f"echo \"@@rc $?\"; echo '@@end'\n{script}"
            )
        result = self.shell.run(script)
        head, _, rest = result.out.partition(b"@@end\n") if ids else (b"", b"", result.out)
        files = parse_poll(rest, tracked)
        queue, queue_ok = _parse_squeue(head.decode("utf-8", "replace")) if ids else ({}, True)
        # squeue forgets finished jobs after MinJobAge: ask accounting for the ones it does not show as active
        handles = {
            t.attempt_id: t.handle
            or (files[t.attempt_id].slurm_id if t.attempt_id in files else None)
            for t in tracked
        }
        # what squeue still shows (final states included) needs no accounting query
        ask = (
            sorted(
                {
                    _job(h)
                    for h in handles.values()
                    if h and SLURM_ID.match(h) and _job(h) not in queue
                },
                key=_order,
            )
            if queue_ok
            else []
        )
        accounting: dict[str, SlurmRecord] = {}
        accounting_ok = True
        if ask:
            accounting, accounting_ok = self._sacct(ask)
        now = time.time()
        states: dict[int, Status | None] = {}
        for t in tracked:
            handle = handles[t.attempt_id]
            job = _job(handle) if handle else ""
            record = queue.get(job) if handle else None
            if record is None or _final(record.state):
                record = accounting.get(job, record)
            f = files.get(t.attempt_id)
            if f is not None and handle and PACK_MEMBER.match(handle):
                record = member_record(record, f.exit_code, f.pid != "-")
            states[t.attempt_id] = (
                None
                if f is None
                else _status(t, f, handle, record, queue_ok and accounting_ok, now)
            )
        fetch_results(
            self.layout,
            [
                t
                for t in tracked
                if t.fetch and (s := states.get(t.attempt_id)) is not None and s.state in FINAL
            ],
        )
        # usage of the ones whose wrapper wrote none (killed by Slurm), from accounting
        unmeasured = [
            t
            for t in tracked
            if (s := states.get(t.attempt_id)) and s.state in FINAL and s.usage is None
        ]
        for i, used in usage_from_accounting(unmeasured, handles, self._accounting).items():
            if (s := states.get(i)) is not None:
                states[i] = dataclasses.replace(s, usage=used)
        return states

    def _accounting(self, options: str) -> str | None:
        for flag in ("-c ",) if self.completion_log else ("", "-c "):
            self.queries += 1
            if (result := self.shell.run(f"sacct {flag}{options}")).code == 0:
                return result.text
        return None

    def fence(self, tracked: Sequence[Tracked]) -> dict[int, Fenced]:
        """A claimed launch ran sbatch right after it took its claim; when its id did not
        reach the run folder, squeue finds the job by its comment (ccspec:WF/JOB/N/CLAIM: the
        claim tells it from the same attempt of another state folder) and the id is written
        there for the polls. Claimed and not found: followed (never twice)."""
        found = fence(self.layout, tracked)
        claimed = [t for t in tracked if found.get(t.attempt_id) == "claimed"]
        if claimed:
            self.shell.run(find_lines(self.layout, claimed))  # members of an array
            self._find_submitted(claimed)
        return {i: "started" if f == "claimed" else f for i, f in found.items()}

    def _find_submitted(self, tracked: Sequence[Tracked]) -> None:
        keys: dict[str, Tracked] = {}
        names: set[str] = set()
        for t in tracked:  # the names that render() gives
            if (attempt := attempt_of(t.run_dir)) is None:
                continue
            workflow, job, number = attempt
            keys[f"ccspec:{workflow}/{job}/{number}/{t.claim}"] = t
            names.add(f"ccspec.{workflow}.{job}"[:200])
        self.queries += 1
        result = self.shell.run(f"squeue -h -t all --name={q(','.join(sorted(names)))} -o '%i|%k'")
        lines = []
        for line in result.text.splitlines():
            slurm_id, _, comment = line.partition("|")
            match = keys.pop(comment.strip(), None)
            if match is not None and slurm_id.isdigit():  # a single job (arrays: find_lines)
                lines.append(f"echo {slurm_id} > {q(self.layout.path(match.run_dir))}/slurm_id")
        if lines:
            self.shell.run("\n".join(lines))

    def _sacct(self, ids: list[str]) -> tuple[dict[str, SlurmRecord], bool]:
        fmt = "-n -P -o JobID,State,ExitCode -j "
        if self.completion_log is not True:
            self.queries += 1
            result = self.shell.run(f"sacct -X {fmt}{','.join(ids)}")
            if result.code == 0:
                self.completion_log = False
                return _parse_sacct(result.text), True
            if self.completion_log is False:
                return {}, False
        # the completion log knows array tasks only by their own numeric ids: the run
        # folder's exit code settles those
        ids = [i for i in ids if i.isdigit()]
        if not ids and self.completion_log:
            return {}, True
        fmt += ",".join(ids) if ids else "0"
        self.queries += 1
        result = self.shell.run(f"sacct -c {fmt}")
        if result.code != 0:
            return {}, False
        self.completion_log = True
        return _parse_sacct(result.text), True

    def cancel(self, tracked: Sequence[Tracked], force: bool) -> None:
        packed = [
            (t.run_dir, t.handle) for t in tracked if t.handle and PACK_MEMBER.match(t.handle)
        ]
        lines = cancel_members(self.layout, packed, force)
        for t in tracked:
            if t.handle and PACK_MEMBER.match(t.handle):
                continue
            job = (
                t.handle
                if t.handle and SLURM_ID.match(t.handle)
                else f"$(cat {q(self.layout.path(t.run_dir))}/slurm_id 2>/dev/null)"
            )
            lines.append(f"scancel {'--signal=KILL --full ' if force else ''}{job} 2>/dev/null")
            if force:
                lines.append(f"scancel {job} 2>/dev/null")
        if lines:
            self.shell.run("\n".join(lines) + "\ntrue")

    def read_log(self, tracked: Tracked, offset: int, most: int = LOG_READ) -> bytes:
        return read_remote_log(self.layout, tracked, offset, most)

    def close(self) -> None:
        self.shell.close()


def _check(backend: SlurmBackend) -> Target[RemoteLaunch]:
    return backend  # mypy: a SlurmBackend is a Target of remote launches


def attempt_of(run_dir: str) -> tuple[str, str, str] | None:
    """Workflow, job and number of a remote run folder .ccspec/runs/WF/JOB.N (WF/JOB/N when an
    earlier ccspec recorded it)."""
    parts = PurePosixPath(run_dir).parts
    job, dot, number = parts[-1].rpartition(".") if parts else ("", "", "")
    if dot and number.isdigit() and len(parts) >= 2:
        return parts[-2], job, number
    return (parts[-3], parts[-2], parts[-1]) if len(parts) >= 3 else None


def _status(
    t: Tracked,
    f: FileState,
    handle: str | None,
    record: SlurmRecord | None,
    asked: bool,
    now: float,
) -> Status | None:
    """One attempt's status from Slurm's record of it and its run folder's files (`asked`:
    squeue and sacct answered); None when it is unknown this time."""
    extra = {"handle": handle} if handle and handle != t.handle else {}
    if record is not None:
        status = map_state(record, f.exit_code)
    elif f.exit_code is not None:  # forgotten by Slurm: the wrapper's file settles it
        status = map_state(SlurmRecord("COMPLETED" if f.exit_code == 0 else "FAILED"), f.exit_code)
    elif not asked:
        return None  # the scheduler could not be asked: unknown this time
    elif handle is None and now - t.since < START_GRACE:
        status = Status(JobState.QUEUED, None, "submitting")
    elif handle is not None and now - t.since < 5:
        status = Status(JobState.QUEUED)  # just submitted: squeue may lag a moment
    else:
        status = Status(
            JobState.LOST,
            None,
            f"Slurm job {handle or '(never submitted)'} is unknown to squeue and "
            "sacct and left no exit code",
        )
    if status.state not in (JobState.QUEUED, JobState.RUNNING) and not f.complete:
        status = Status(JobState.RUNNING)  # mirror the rest of the log first
    if status.state is JobState.RUNNING:
        extra = {**extra, **f.mirroring()}
    if status.state in (JobState.QUEUED, JobState.RUNNING):
        return Status(status.state, status.exit_code, status.reason, status.finished, extra)
    ended = f.ended(now) or status.finished
    return Status(status.state, status.exit_code, status.reason, ended, extra, f.usage)


# sbatch's words for a controller that could not take the job now (it is down, restarting
# or overloaded), unlike a refusal of the job itself (options, partition, account)
_BUSY = re.compile(
    r"socket timed out|unable to contact slurm controller|slurm_persist_conn|"
    r"resource temporarily unavailable|try again|slurmctld.*(down|not responding)|"
    r"too many pending jobs|QOSMaxSubmitJob",
    re.IGNORECASE,
)


def busy(message: str) -> bool:
    """Whether sbatch's error says Slurm could not take the job now (worth sending again)."""
    return _BUSY.search(message) is not None


def _job(handle: str) -> str:
    """The id squeue and sacct know a handle by: a pack member's is its pack's."""
    return handle.partition("+")[0]


def _order(slurm_id: str) -> tuple[int, int]:
    job, _, task = slurm_id.partition("_")
    return int(job), int(task or -1)
