"""Crash trial: SIGKILL `ccspec apply` at random moments of a workflow of local, ssh and
Slurm jobs, run apply again after each kill, and check that it converges with every job's
side effect exactly once, every job succeeded, the state database intact after every kill,
and the status YAML parseable at every sample.

Called by run.py (20 kills of a 50-job workflow) and tests/test_reliability.py (reduced).
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

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
    sampling,
    services,
    slurm_host,
    ssh_host,
    start,
)

KILLS_PER_ROUND = 5  # kills of one workflow before it is let converge
SLEEPS = (0.2, 0.5, 1.0, 2.0)  # how long each job runs after its side effect


def host_of(index: int) -> str:
    """Four jobs in ten run here, three on the ssh host, three on Slurm."""
    return "here" if index % 10 < 4 else "box" if index % 10 < 7 else "hpc"


def crash_spec(
    ws: Workspace, name: str, n_jobs: int, rng: random.Random
) -> tuple[dict[str, object], list[str]]:
    """A workflow of `n_jobs` jobs on the three kinds of host, about a third of them needing
    an earlier job; each appends `NAME/JOB` to the ledger, then sleeps a little. Returns the
    spec and the ledger keys."""
    svc = services()
    jobs: dict[str, dict[str, object]] = {}
    keys = []
    for i in range(n_jobs):
        job = f"j{i:02d}"
        key = f"{name}/{job}"
        entry: dict[str, object] = {
            "run": f"{ws.ledger.append_command(key)}; sleep {rng.choice(SLEEPS)}"
        }
        host = host_of(i)
        if host != "here":
            entry["host"] = host
        if host == "hpc":
            entry["resources"] = dict(SLURM_RESOURCES)
        if i >= 3 and rng.random() < 0.35:
            entry["needs"] = [f"j{rng.randrange(i):02d}"]
        jobs[job] = entry
        keys.append(key)
    hosts = {
        "box": ssh_host(svc, ws.remote_workdir),
        "hpc": slurm_host(svc, ws.root / "slurm-work"),
    }
    return {"version": 1, "hosts": hosts, "jobs": jobs}, keys


def kill_at_random(ws: Workspace, spec: Path, delay: float, result: TrialResult) -> bool:
    """Start apply, SIGKILL it after `delay` seconds; True when the kill hit a running apply
    (False: it had finished first). The state database is checked right after."""
    proc = start(ws, "apply", str(spec.relative_to(ws.root)))
    time.sleep(delay)  # the random moment is the point of the trial
    os.kill(proc.pid, signal.SIGKILL)  # not reaped yet: the pid is still this child's
    done = finish(proc)
    result.runs += 1
    result.count_exit(done.code)
    if bug := internal_error(done):
        result.error(f"apply before the kill: {bug}")
    check = integrity(ws.state)
    result.facts["integrity_checks"] = int(result.facts.get("integrity_checks", 0)) + 1
    if check != "ok":
        result.error(f"PRAGMA integrity_check after a kill: {check}")
    return done.code == -signal.SIGKILL


def crash_round(
    ws: Workspace,
    name: str,
    n_jobs: int,
    kills: int,
    max_delay: float,
    rng: random.Random,
    result: TrialResult,
) -> int:
    """One workflow: up to `kills` random kills (fewer when an apply finishes before its kill),
    then apply until it converges; its outcome counted. Returns the kills that hit."""
    doc, keys = crash_spec(ws, name, n_jobs, rng)
    spec = ws.write_spec(name, doc)
    result.inputs += n_jobs
    hits = 0
    with sampling(ws.status_path(name)) as sampler:
        for _ in range(kills):
            if not kill_at_random(ws, spec, rng.uniform(0.05, max_delay), result):
                break  # it finished first: this workflow is done
            hits += 1
        if converge(ws, spec, result):
            check_settled(ws, spec, result)
        else:
            result.error(f"{name}: apply did not converge in 3 runs after the kills")
    count_outcome(ws, name, keys, result)
    result.facts["status_samples"] = int(result.facts.get("status_samples", 0)) + sampler.samples
    result.facts["status_unparseable"] = int(result.facts.get("status_unparseable", 0)) + len(
        sampler.bad
    )
    for bad in sampler.bad[:3]:
        result.error(f"{name}: status YAML unparseable: {bad}")
    if sampler.vanished:
        result.error(
            f"{name}: the status YAML was missing at {sampler.vanished} samples after it existed"
        )
    if (check := integrity(ws.state)) != "ok":
        result.error(f"PRAGMA integrity_check at the end: {check}")
    return hits


def crash_trial(
    kills: int = 20, n_jobs: int = 50, seed: int = 0, max_delay: float = 6.0
) -> TrialResult:
    """`kills` SIGKILLs of apply, KILLS_PER_ROUND per fresh workflow of `n_jobs` jobs, until
    that many have hit a running apply (at most 3x `kills` tries)."""
    rng = random.Random(seed)
    result = TrialResult(
        name=f"crash: SIGKILL apply ({n_jobs}-job local+ssh+Slurm workflow)", kind="crash"
    )
    result.facts["seed"] = seed
    started = time.monotonic()
    ws = Workspace("crash")
    try:
        for r in range(3 * kills):
            if result.faults >= kills:
                break
            wanted = min(KILLS_PER_ROUND, kills - result.faults)
            result.faults += crash_round(ws, f"crash{r}", n_jobs, wanted, max_delay, rng, result)
    finally:
        ws.close()
    result.seconds = time.monotonic() - started
    return result
