"""Attempts outside a run: collect the results of detached attempts that ended while no runner
watched them (`settle`), stop active ones (`cancel_attempts`), and the recorded status of every
job (`job_statuses`). Called by `ccspec status`, `ccspec cancel` and the reconciler, through
ccspec.runner."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ccspec.redact import Redactor
from ccspec.report.status import JobStatus
from ccspec.state.store import Attempt, StateStore
from ccspec.usage import attempt_usage, usage_warning

if TYPE_CHECKING:
    from ccspec.progress import LogMiner
    from ccspec.spec.models import Host, Resources
    from ccspec.targets.base import Status, Tracked

__all__ = ["cancel_attempts", "job_statuses", "settle", "spec_hosts"]


def settle(
    store: StateStore,
    workflow: str,
    hosts: Mapping[str, Host] | None = None,
    *,
    redactor: Redactor | None = None,
    resources: Mapping[str, Resources] | None = None,
) -> int:
    """Collect the results of detached attempts that finished while no runner watched them
    (ccspec was killed): local ones from their run folders, remote ones with one poll per
    host (`hosts`: the spec's hosts). Leaves everything to the runner holding the lease.
    `redactor`: the workflow's, to record outputs and messages with its secrets masked;
    `resources`: its jobs' (by id), to warn when an attempt's usage did not fit them."""
    from ccspec.states import FINAL, JobState
    from ccspec.targets.local_batch import LocalBatch
    from ccspec.targets.run_folder import read_pid

    if store.lease_holder(workflow) is not None:
        return 0
    local: dict[int, tuple[Attempt, Tracked]] = {}
    remote: dict[str, list[Attempt]] = {}
    for attempt in store.active_attempts(workflow):
        if not attempt.run_dir:
            continue
        host = (hosts or {}).get(attempt.host)
        if host is not None and host.type != "local":
            remote.setdefault(attempt.host, []).append(attempt)
            continue
        if host is None and attempt.host != "local":
            continue  # a remote host the spec no longer names: nobody can ask it
        # one that left no pid yet is skipped, not called lost: it may be starting, and only
        # the runner that launched it (holding the lease) fences a launch
        pid = read_pid(attempt.run_dir)
        handle = attempt.handle or (str(pid) if pid is not None else None)
        if handle is not None:
            local[attempt.id] = (attempt, _tracked(attempt, handle))
    found: list[tuple[Attempt, Status]] = []
    if local:
        batch = LocalBatch()
        try:
            polled = batch.poll([t for _, t in local.values()])
        finally:
            batch.close()
        found.extend((local[i][0], s) for i, s in polled.items() if s is not None)
    for name, attempts in remote.items():
        found.extend(_poll_remote((hosts or {})[name], attempts))
    settled = 0
    for attempt, status in found:
        if status.state not in FINAL:
            continue
        miner = _mine_all(attempt.log_path)
        progress = 100.0 if status.state is JobState.SUCCEEDED else miner.progress
        mask = redactor or Redactor()
        used = status.usage if attempt.id not in local else attempt_usage(attempt.run_dir)
        asked = (resources or {}).get(attempt.job)
        # when it ended, not when it was found
        store.finish_attempt(
            attempt.id,
            status.state,
            exit_code=status.exit_code,
            reason=status.reason,
            outputs=mask.value(dict(miner.outputs)),
            progress=progress,
            message=None if miner.message is None else mask.text(miner.message),
            finished=status.finished,
            usage=used,
            usage_warning=usage_warning(used, asked) if asked is not None else None,
        )
        settled += 1
    return settled


def _poll_remote(host: Host, attempts: list[Attempt]) -> list[tuple[Attempt, Status]]:
    """One poll of a remote host for the given attempts (their logs are mirrored on the way)."""
    from ccspec.errors import TargetError
    from ccspec.targets.hosts import backend_for
    from ccspec.targets.remote import Tracked, launched_at

    backend = backend_for(host)
    tracked = [
        Tracked(a.id, a.handle, a.run_dir, Path(a.log_path), launched_at(a.created))
        for a in attempts
        if a.log_path and a.run_dir
    ]
    try:
        states = backend.poll(tracked)
    except (TargetError, OSError):
        return []  # unreachable now: unknown, settled another time
    finally:
        backend.close()
    by_id = {a.id: a for a in attempts}
    return [(by_id[i], s) for i, s in states.items() if s is not None]


def spec_hosts(store: StateStore, workflow: str) -> Mapping[str, Host]:
    """The hosts of a workflow's spec as last applied (empty when the file is gone or invalid)."""
    path = store.spec_path(workflow)
    if not path or not Path(path).is_file():
        return {}
    from ccspec.spec.validate import validate_file

    report = validate_file(Path(path))
    return report.workflow.hosts if report.workflow is not None else {}


def cancel_attempts(
    store: StateStore, hosts: Mapping[str, Host], attempts: list[Attempt], reason: str
) -> dict[int, str]:
    """Stop active attempts wherever they run (local process groups; one cancel command per
    remote host) and record them cancelled with `reason`. Returns, by attempt id, why some
    could not be stopped; those stay recorded as running."""
    from ccspec.states import JobState
    from ccspec.targets.local_batch import LocalBatch

    remote = [a for a in attempts if a.host in hosts and hosts[a.host].type != "local"]
    problems = _cancel_remote(hosts, remote)
    local = LocalBatch()
    try:
        for attempt in attempts:
            if attempt.id in problems:
                continue
            if attempt not in remote and attempt.handle and attempt.run_dir:
                local.cancel([_tracked(attempt, attempt.handle)], False)
            store.finish_attempt(
                attempt.id,
                JobState.CANCELLED,
                exit_code=None,
                reason=reason,
                outputs=attempt.outputs,
                progress=attempt.progress,
                message=attempt.message,
            )
    finally:
        local.close()
    return problems


def _tracked(attempt: Attempt, handle: str | None) -> Tracked:
    """A recorded attempt as a target follows it."""
    from ccspec.targets.base import Tracked, launched_at

    log_path = Path(attempt.log_path or ".")
    return Tracked(
        attempt.id, handle, attempt.run_dir or "", log_path, launched_at(attempt.created)
    )


def _cancel_remote(hosts: Mapping[str, Host], attempts: list[Attempt]) -> dict[int, str]:
    """Cancel remote attempts, one command per host; returns why some could not be."""
    from ccspec.errors import TargetError
    from ccspec.targets.hosts import backend_for
    from ccspec.targets.remote import Tracked, launched_at

    problems: dict[int, str] = {}
    by_host: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        by_host.setdefault(attempt.host, []).append(attempt)
    for name, group in by_host.items():
        backend = backend_for(hosts[name])
        tracked = [
            Tracked(a.id, a.handle, a.run_dir, Path(a.log_path or "."), launched_at(a.created))
            for a in group
            if a.run_dir
        ]
        try:
            backend.cancel(tracked, False)
        except (TargetError, OSError) as exc:
            problems.update({a.id: str(exc) for a in group})
        finally:
            backend.close()
    return problems


def _mine_all(log_path: str | None) -> LogMiner:
    from ccspec.logfile import mine_log
    from ccspec.progress import LogMiner

    miner = LogMiner()
    if log_path:
        mine_log(miner, log_path, final=True)  # in bounded chunks, however long the log
    return miner


def job_statuses(store: StateStore, workflow: str) -> list[JobStatus]:
    """Status of every recorded job from the store (for `ccspec status` without a run)."""
    out = []
    attempts = {a.job: a for a in store.attempts(workflow)}  # last attempt of each job
    for job_id, rec in sorted(store.recorded_jobs(workflow).items()):
        a = attempts.get(job_id)
        out.append(
            JobStatus(
                job_id,
                rec.state,
                a.host if a else None,
                rec.attempts,
                rec.fingerprint,
                a.started if a else None,
                a.finished if a else None,
                a.exit_code if a else None,
                a.progress if a else None,
                a.message if a else None,
                rec.reason,
                dict(a.outputs) if a and a.outputs else dict(rec.outputs),
                a.usage if a else None,
                a.usage_warning if a else None,
            )
        )
    return out
