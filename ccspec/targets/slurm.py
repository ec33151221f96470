"""Slurm clusters: sbatch scripts rendered from templates/sbatch.sh.j2, submitted on this
machine or on a login node over ssh.

Per poll, whatever the number of jobs: one `squeue` for every active id, and one `sacct`
for those squeue no longer shows as active (plain `sacct`, or `sacct -c` from the job
completion log when the cluster has no accounting storage). The wrapper's exit-code file in
the run folder settles what both have forgotten. A query that fails leaves the job's state
unknown for that poll, never failed.
"""

from __future__ import annotations

import functools
import math
import re
import secrets
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
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
from ccspec.targets.slurm_usage import record_from_accounting

if TYPE_CHECKING:
    import jinja2

__all__ = ["SlurmBackend", "busy", "map_state", "sbatch_options"]

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

QUEUED_STATES = {
    "PENDING",
    "CONFIGURING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESV_DEL_HOLD",
    "SUSPENDED",
}
RUNNING_STATES = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING"}
FINAL_REASONS = {
    "TIMEOUT": (JobState.TIMED_OUT, "Slurm's time limit was reached (TIMEOUT)"),
    "NODE_FAIL": (JobState.FAILED, "the node failed (NODE_FAIL)"),
    "OUT_OF_MEMORY": (JobState.FAILED, "out of memory (OUT_OF_MEMORY)"),
    "BOOT_FAIL": (JobState.FAILED, "the node failed to boot (BOOT_FAIL)"),
    "DEADLINE": (JobState.FAILED, "the job missed its deadline (DEADLINE)"),
    "PREEMPTED": (JobState.FAILED, "preempted by Slurm (PREEMPTED)"),
    "REVOKED": (JobState.FAILED, "revoked by Slurm (REVOKED)"),
    "SPECIAL_EXIT": (JobState.FAILED, "held in a special exit state (SPECIAL_EXIT)"),
}


@dataclass(frozen=True)
class SlurmRecord:
    state: str
    exit_code: int | None = None
    reason: str | None = None


def map_state(record: SlurmRecord, file_code: int | None) -> Status:
    """A Slurm state (from squeue or sacct) as a ccspec status, with the reason."""
    state = record.state.split()[0].rstrip("+") if record.state else ""
    if state in QUEUED_STATES:
        reason = record.reason if record.reason and record.reason != "None" else None
        return Status(
            JobState.QUEUED, None, f"{state.lower()}: {reason}" if reason else state.lower()
        )
    if state in RUNNING_STATES:
        return Status(JobState.RUNNING)
    code = file_code if file_code is not None else record.exit_code
    if state == "COMPLETED":
        if code in (None, 0):
            return Status(JobState.SUCCEEDED, 0)
        return Status(JobState.FAILED, code, f"exit code {code}")
    if state == "FAILED":
        return Status(
            JobState.FAILED, code, f"exit code {code}" if code else "failed in Slurm (FAILED)"
        )
    if state == "CANCELLED":
        return Status(JobState.CANCELLED, code, "cancelled in Slurm (scancel)")
    if state in FINAL_REASONS:
        mapped, reason = FINAL_REASONS[state]
        return Status(mapped, code, reason)
    return (
        Status(JobState.RUNNING, None, f"Slurm state {state}")
        if state
        else Status(JobState.RUNNING)
    )


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
        lines = [SUBMIT_FUNCTION]
        failed: list[Submitted] = []
        for launch in launches:
            try:
                stage = self.layout.stage_script(launch)
                script = self.render(launch)
            except (TargetError, OSError) as exc:
                failed.append(refused(launch, f"cannot ship files to {self.label}: {exc}", exc))
                continue
            run = q(self.layout.path(launch.run_dir))
            eof = f"CCSPEC_{secrets.token_hex(8)}"
            lines.append(
                f"{stage} && cat > {run}/job.sbatch <<'{eof}'\n{script}{eof}\nS {launch.attempt_id} {run} {q(launch.claim)}"
            )
        if len(lines) == 1:
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
            if status == "ok" and value.strip().isdigit():
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

    def poll(self, tracked: Sequence[Tracked]) -> dict[int, Status | None]:
        ids = sorted({t.handle for t in tracked if t.handle and t.handle.isdigit()}, key=int)
        script = poll_lines(self.layout, tracked)
        if ids:
            self.queries += 1
            script = (
                f"echo '@@squeue'; squeue -h -t all -j {','.join(ids)} -o '%i|%T|%r' 2>&1; "
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
            sorted({h for h in handles.values() if h and h.isdigit() and h not in queue}, key=int)
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
            record = queue.get(handle or "") if handle else None
            if record is None or _final(record.state):
                record = accounting.get(handle or "", record)
            f = files.get(t.attempt_id)
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
        finished = [t for t in tracked if (s := states.get(t.attempt_id)) and s.state in FINAL]
        record_from_accounting(finished, handles, self._accounting)
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
            self._find_submitted(claimed)
        return {i: "started" if f == "claimed" else f for i, f in found.items()}

    def _find_submitted(self, tracked: Sequence[Tracked]) -> None:
        keys: dict[str, Tracked] = {}
        names: set[str] = set()
        for t in tracked:  # the run folder is .ccspec/runs/WF/JOB/N: the names that render() gives
            parts = PurePosixPath(t.run_dir).parts
            if len(parts) < 3:
                continue
            workflow, job, number = parts[-3:]
            keys[f"ccspec:{workflow}/{job}/{number}/{t.claim}"] = t
            names.add(f"ccspec.{workflow}.{job}"[:200])
        self.queries += 1
        result = self.shell.run(f"squeue -h -t all --name={q(','.join(sorted(names)))} -o '%i|%k'")
        lines = []
        for line in result.text.splitlines():
            slurm_id, _, comment = line.partition("|")
            match = keys.pop(comment.strip(), None)
            if match is not None and slurm_id.isdigit():
                lines.append(f"echo {slurm_id} > {q(self.layout.path(match.run_dir))}/slurm_id")
        if lines:
            self.shell.run("\n".join(lines))

    def _sacct(self, ids: list[str]) -> tuple[dict[str, SlurmRecord], bool]:
        fmt = "-n -P -o JobID,State,ExitCode -j " + ",".join(ids)
        if self.completion_log is not True:
            self.queries += 1
            result = self.shell.run(f"sacct -X {fmt}")
            if result.code == 0:
                self.completion_log = False
                return _parse_sacct(result.text), True
            if self.completion_log is False:
                return {}, False
        self.queries += 1
        result = self.shell.run(f"sacct -c {fmt}")
        if result.code != 0:
            return {}, False
        self.completion_log = True
        return _parse_sacct(result.text), True

    def cancel(self, tracked: Sequence[Tracked], force: bool) -> None:
        lines = []
        for t in tracked:
            job = (
                t.handle
                if t.handle and t.handle.isdigit()
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
    ended = f.ended(now) if status.state not in (JobState.QUEUED, JobState.RUNNING) else None
    return Status(status.state, status.exit_code, status.reason, ended or status.finished, extra)


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


def _final(state: str) -> bool:
    name = state.split()[0].rstrip("+") if state else ""
    return name not in QUEUED_STATES and name not in RUNNING_STATES


def _parse_squeue(text: str) -> tuple[dict[str, SlurmRecord], bool]:
    body, _, tail = text.partition("@@rc ")
    body = body.replace("@@squeue\n", "", 1)
    rc = tail.strip().split()[0] if tail.strip() else "1"
    records: dict[str, SlurmRecord] = {}
    for line in body.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[0].isdigit():
            records[parts[0]] = SlurmRecord(parts[1], None, parts[2])
    # "Invalid job id" only means squeue forgot every id asked for: ask sacct instead
    ok = rc == "0" or (not records and "Invalid job id" in body)
    return records, ok


_EXIT = re.compile(r"^(\d+):(\d+)$")


def _parse_sacct(text: str) -> dict[str, SlurmRecord]:
    records: dict[str, SlurmRecord] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 3 or not parts[0].isdigit():  # skip steps (123.batch) and blank lines
            continue
        match = _EXIT.match(parts[2].strip())
        code = int(match.group(1)) if match else None
        records[parts[0]] = SlurmRecord(parts[1], code)  # the last record wins (requeued jobs)
    return records
