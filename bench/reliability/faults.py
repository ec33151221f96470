"""Fault trials: the world breaks under a running `ccspec apply`.

- `ssh_outage_trial`: the test sshd is killed (listener and apply's sessions) while ssh jobs
  run, and restarted a few seconds later.
- `slurm_outage_trial`: slurmctld is stopped while Slurm jobs run, and restarted.
- `full_disk_trial`: the state folder sits on a 2 MB tmpfs that the jobs' logs overflow;
  then the tmpfs grows (as when space is freed) and apply runs again.
- `big_output_trial`: one job prints 1 GB; apply's peak RSS must stay under 200 MB.

Each records jobs lost, jobs duplicated (a ledger of side effects), exit codes and the errors
seen; apply runs again after the fault until it converges. Called by run.py and
tests/test_reliability.py.
"""

from __future__ import annotations

import contextlib
import datetime
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

from bench.reliability import outages
from bench.reliability.lib import (
    SLURM_RESOURCES,
    TrialResult,
    Workspace,
    check_settled,
    converge,
    count_outcome,
    finish,
    integrity,
    internal_error,
    note_failures,
    run,
    run_measured,
    sampling,
    services,
    slurm_host,
    ssh_host,
    start,
)

RSS_LIMIT_MB = 200.0  # the bound for apply under a job's huge output
TIME_SLACK = (
    3.0  # seconds a recorded duration may exceed the job's own (whole-second stamps, polling)
)
RSS_GUARD_MB = 1500.0  # past this, apply is killed: a leak must not take the shared machine down


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll `predicate` (20 times a second) until it holds; False after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def outage_spec(
    ws: Workspace, name: str, host: str, n_jobs: int, sleep: float
) -> tuple[dict[str, object], list[str]]:
    """`n_jobs` jobs on `host` ("box": ssh, "hpc": Slurm), in chains of three, so that some
    run across the outage and some start after it."""
    svc = services()
    hosts = {
        "box": ssh_host(svc, ws.remote_workdir),
        "hpc": slurm_host(svc, ws.root / "slurm-work"),
    }
    jobs: dict[str, dict[str, object]] = {}
    for i in range(n_jobs):
        key = f"{name}/o{i:02d}"
        entry: dict[str, object] = {
            "host": host,
            "run": f"{ws.ledger.append_command(key)}; sleep {sleep}",
        }
        if host == "hpc":
            entry["resources"] = dict(SLURM_RESOURCES)
        if i >= 3:
            entry["needs"] = [f"o{i - 3:02d}"]
        jobs[f"o{i:02d}"] = entry
    return {"version": 1, "hosts": {host: hosts[host]}, "jobs": jobs}, [
        f"{name}/o{i:02d}" for i in range(n_jobs)
    ]


def outage_trial(
    title: str, host: str, stop: Callable[[int], str], seconds: float, n_jobs: int, sleep: float
) -> TrialResult:
    """Start apply on `n_jobs` jobs on `host`; once two side effects happened, `stop(apply's
    pid)` a service for `seconds`, restore it; let apply finish, then converge."""
    result = TrialResult(name=title, kind="fault")
    started = time.monotonic()
    ws = Workspace(host)
    try:
        doc, keys = outage_spec(ws, "outage", host, n_jobs, sleep)
        spec = ws.write_spec("outage", doc)
        result.inputs = n_jobs
        with sampling(ws.status_path("outage")) as sampler:
            proc = start(ws, "apply", "specs/outage.yaml")
            if not wait_until(lambda: len(ws.ledger.counts()) >= 2, timeout=120):
                result.error("no job started within 120 s: the fault was not injected mid-run")
            result.facts["outage"] = outages.outage(lambda: stop(proc.pid), seconds)
            result.faults += 1
            done = finish(proc, timeout=600)
            result.runs += 1
            result.count_exit(done.code)
            result.facts["exit_code_during_fault"] = done.code
            if bug := internal_error(done):
                result.error(f"apply during the fault: {bug}")
            note_failures(done, "apply during the fault", result)
            if converge(ws, spec, result):
                check_settled(ws, spec, result)
            else:
                result.error("apply did not converge in 3 runs after the fault")
        count_outcome(ws, "outage", keys, result)
        if sampler.bad:
            result.error(f"status YAML unparseable: {sampler.bad[0]}")
        if sampler.vanished:
            result.error(
                f"the status YAML was missing at {sampler.vanished} samples after it existed"
            )
        if (check := integrity(ws.state)) != "ok":
            result.error(f"PRAGMA integrity_check: {check}")
    finally:
        ws.close()
    result.seconds = time.monotonic() - started
    return result


def ssh_outage_trial(seconds: float = 3.0, n_jobs: int = 9) -> TrialResult:
    return outage_trial(
        "fault: sshd killed and restarted mid-run",
        "box",
        outages.kill_sshd,
        seconds,
        n_jobs,
        sleep=2.0,
    )


def slurm_outage_trial(seconds: float = 3.0, n_jobs: int = 9) -> TrialResult:
    return outage_trial(
        "fault: slurmctld restarted mid-run",
        "hpc",
        lambda _pid: outages.stop_slurmctld(),
        seconds,
        n_jobs,
        sleep=3.0,
    )


@contextlib.contextmanager
def tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of `size_mb` MB mounted at `path` for the block (needs root); unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def grow_tmpfs(path: Path, size_mb: int) -> None:
    """Give the tmpfs more room (as when the user frees space)."""
    subprocess.run(["mount", "-o", f"remount,size={size_mb}m", str(path)], check=True)


def full_disk_spec(
    ws: Workspace, n_jobs: int, output_kb: int
) -> tuple[dict[str, object], list[str]]:
    """Jobs that each print `output_kb` KB, then (only when that worked) write their ledger
    line: a job that failed because its log could not be written may run again."""
    jobs = {
        f"d{i:02d}": {
            "run": f"head -c {output_kb * 1024} /dev/zero | tr '\\0' x | fold -w 99 && "
            f"{ws.ledger.append_command(f'disk/d{i:02d}')}"
        }
        for i in range(n_jobs)
    }
    return {"version": 1, "jobs": jobs}, [f"disk/d{i:02d}" for i in range(n_jobs)]


def full_disk_trial(size_mb: int = 2, n_jobs: int = 12, output_kb: int = 300) -> TrialResult:
    """apply with its state folder on a `size_mb` MB tmpfs that the logs overflow: a clear
    error (no internal error), an intact database, and a full recovery once there is room."""
    result = TrialResult(name=f"fault: state folder on a {size_mb} MB tmpfs", kind="fault")
    started = time.monotonic()
    ws = Workspace("disk")
    try:
        doc, keys = full_disk_spec(ws, n_jobs, output_kb)
        spec = ws.write_spec("disk", doc)
        result.inputs = n_jobs
        state = ws.root / "small-state"
        with tmpfs(state, size_mb):
            done = run(ws, "apply", "specs/disk.yaml", "--state", str(state), "-j", "2")
            result.runs += 1
            result.faults += 1
            result.count_exit(done.code)
            result.facts["exit_code_when_full"] = done.code
            said = [
                line for line in done.err.splitlines() if line.strip()
            ] or done.out.splitlines()[-1:]
            result.facts["message_when_full"] = said[0].strip()[:200] if said else ""
            note_failures(done, "apply on the full disk", result)
            if bug := internal_error(done):
                result.error(f"apply on a full disk: {bug}")
            if (check := integrity(state)) != "ok":
                result.error(f"PRAGMA integrity_check on the full disk: {check}")
            grow_tmpfs(state, 256)
            if converge(ws, spec, result, "--state", str(state)):
                check_settled(ws, spec, result, "--state", str(state))
            else:
                result.error("apply did not converge in 3 runs once there was room")
            if (check := integrity(state)) != "ok":
                result.error(f"PRAGMA integrity_check after recovery: {check}")
        count_outcome(ws, "disk", keys, result)
        if int(result.facts.get("jobs_reported_lost", 0)):
            result.error(
                "jobs recorded lost after the disk was full (their exit code could not be stored)"
            )
    finally:
        ws.close()
    result.seconds = time.monotonic() - started
    return result


def big_output_spec(ws: Workspace, mb: int) -> tuple[dict[str, object], list[str]]:
    """`big` prints `mb` MiB in 100-byte lines and notes its own start and end times (in
    `times`, beside the ledger); `after` needs it."""
    line = "x" * 99
    times = ws.ledger.path.with_name("times")
    jobs = {
        "big": {
            "run": f"date +%s.%N > {times}; yes {line} | head -c {mb}M && date +%s.%N >> {times} && "
            f"{ws.ledger.append_command('big/big')}"
        },
        "after": {"run": ws.ledger.append_command("big/after"), "needs": ["big"]},
    }
    return {"version": 1, "jobs": jobs}, ["big/big", "big/after"]


def recorded_seconds(ws: Workspace, name: str, job: str) -> float | None:
    """finished - started of `job` in the status file (whole seconds), if both are there."""
    doc = (
        yaml.safe_load(ws.status_path(name).read_text()) if ws.status_path(name).exists() else None
    )
    entry = (doc or {}).get("jobs", {}).get(job, {})
    if not entry.get("started") or not entry.get("finished"):
        return None
    started, finished = (_when(entry[k]) for k in ("started", "finished"))
    return (finished - started).total_seconds()


def _when(value: object) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def check_recorded_time(ws: Workspace, result: TrialResult) -> None:
    """The big job's recorded duration is its own (within the status file's whole seconds)."""
    times = ws.ledger.path.with_name("times")
    stamps = [float(t) for t in times.read_text().split()] if times.exists() else []
    recorded = recorded_seconds(ws, "big", "big")
    if len(stamps) != 2 or recorded is None:
        result.error(f"the big job's times are missing (own: {stamps}, recorded: {recorded})")
        return
    own = stamps[1] - stamps[0]
    result.facts.update(job_own_seconds=round(own, 1), job_recorded_seconds=round(recorded, 1))
    if recorded > own + TIME_SLACK:
        result.error(f"the big job took {own:.1f} s but is recorded as {recorded:.0f} s")


def big_output_trial(mb: int = 1024, limit_mb: float = RSS_LIMIT_MB) -> TrialResult:
    """apply of a job printing `mb` MiB: apply's peak RSS (and `ccspec logs`'s) under
    `limit_mb`, and the workflow succeeds."""
    result = TrialResult(
        name=f"fault: a job prints {mb} MiB (apply under {limit_mb:.0f} MB)", kind="fault"
    )
    started = time.monotonic()
    ws = Workspace("big")
    try:
        doc, keys = big_output_spec(ws, mb)
        ws.write_spec("big", doc)
        result.inputs = len(keys)
        result.faults = 1
        applied = run_measured(ws, "apply", "specs/big.yaml", guard_mb=RSS_GUARD_MB)
        done = applied.done
        result.runs += 1
        result.count_exit(done.code)
        result.facts.update(
            apply_peak_rss_mb=round(done.max_rss_mb, 1), apply_seconds=round(done.seconds, 1)
        )
        if applied.guarded:
            result.error(f"apply passed {RSS_GUARD_MB:.0f} MB resident and was killed (guard)")
        if done.max_rss_mb > limit_mb:
            result.error(f"apply peaked at {done.max_rss_mb:.0f} MB (limit {limit_mb:.0f} MB)")
        if bug := internal_error(done):
            result.error(f"apply: {bug}")
        logs = run_measured(
            ws, "logs", "big", "big", guard_mb=RSS_GUARD_MB, timeout=600, discard=True
        ).done
        result.runs += 1
        result.count_exit(logs.code)
        if bug := internal_error(logs):
            result.error(f"ccspec logs: {bug}")
        result.facts["logs_peak_rss_mb"] = round(logs.max_rss_mb, 1)
        if logs.max_rss_mb > limit_mb:
            result.error(
                f"`ccspec logs` peaked at {logs.max_rss_mb:.0f} MB (limit {limit_mb:.0f} MB)"
            )
        if applied.guarded:  # the harness killed apply: nothing to count
            result.note("jobs not counted: apply was killed by the memory guard")
        else:
            check_recorded_time(ws, result)
            count_outcome(ws, "big", keys, result)
    finally:
        ws.close()
    result.seconds = time.monotonic() - started
    return result
