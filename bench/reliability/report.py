"""Writes docs/RELIABILITY.md from the trials' results: one table row per trial (faults
injected, inputs tried, jobs lost, jobs duplicated), the machine it ran on, and what each
failing trial saw. Called by run.py; the page is only ever regenerated, never edited.
"""

from __future__ import annotations

import datetime
import os
import platform
import sqlite3
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bench.reliability.lib import REPO_ROOT, TrialResult

HOW_COUNTED = """\
## How each trial counts

Every job appends one unique line to a ledger file (`echo KEY >> LEDGER`; ssh jobs run as
the test user on this same machine and append to the same file). After the trial, a key
that is missing, or whose job is not `succeeded` in the status file, is a **lost** job; every
line of a key beyond its first is a **duplicated** job. The targets are 0 and 0, no internal
error (exit 3, "this is a bug", a traceback, or a command that hung past its trial's
timeout), `PRAGMA integrity_check` = ok, and every sample of the status YAML parseable.
The figure "jobs reported lost/failed/skipped" counts the jobs that an apply after a fault
reported so (ccspec recovered them only on a later run); it is shown, and fails only the
tmpfs trial (the issue asks for the right state there).

- **crash**: workflows of local, ssh (the test sshd on 127.0.0.1:2222) and Slurm (the
  single-node test cluster) jobs, each appending its key then sleeping 0.2-2 s; about a
  third need an earlier job. `ccspec apply` is started and SIGKILLed after a random delay
  (seeded), up to 5 times per workflow, then run again until it exits 0. The state database
  is checked after every kill; a thread parses `specs/NAME.status.yaml` every 5 ms
  throughout. "Faults injected" counts the kills that hit a running apply.
- **concurrency, apply --wait**: a `ccspec watch specs` runs throughout; each round changes a
  var that every job's command uses, then starts two `ccspec apply --wait` at once; every
  round's key must appear once. Any exit other than 0 is an error.
- **concurrency, fresh state**: each round removes `.ccspec`, then starts `status`, `plan`,
  `apply` and `validate` of the same spec at once; any internal error fails the trial (the
  jobs of an apply that crashed are counted as lost).
- **sshd / slurmctld**: jobs in chains of three on one host; once two have started, the
  daemon is stopped (sshd: the listener and apply's sessions are SIGKILLed; slurmctld:
  SIGTERM), restarted a few seconds later by `.ci/services-up.sh`, and apply is run again
  until it exits 0.
- **tmpfs**: the state folder (`--state`) on a 2 MB tmpfs that 12 jobs' logs overflow. The
  jobs append their key only after their output was written, so a job that failed because
  its log could not be written may run again. Then the tmpfs grows (space freed) and apply
  must converge with the database intact.
- **output**: one job prints N MiB in 100-byte lines, a second needs it. Peak RSS of apply is
  the larger of `ru_maxrss` (os.wait4) and `VmHWM` sampled every 50 ms; `ccspec logs` of that
  job is measured the same way.
- **hostile input**: the test files named in the row, run by pytest; their cases are the
  inputs.
"""


def machine_facts(seed: int, mode: str, seconds: float) -> dict[str, str]:
    """Date, seed, commit and the machine the trials ran on."""
    return {
        "date (UTC)": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "mode": mode,
        "seed": str(seed),
        "commit": _command(["git", "describe", "--always", "--dirty", "--abbrev=12"]),
        "branch": _command(["git", "rev-parse", "--abbrev-ref", "HEAD"]),
        "machine": f"{os.cpu_count()} cores, {_memory_gb()} GB RAM, {platform.machine()}, "
        f"Linux {platform.release()}",
        "cpu": _cpu_model(),
        "python / SQLite": f"{platform.python_version()} / {sqlite3.sqlite_version}",
        "Slurm / OpenSSH": f"{_command(['sinfo', '-V'])} / {_command(['ssh', '-V'], stderr=True)}",
        "total time": f"{seconds / 60:.1f} min",
    }


def _command(argv: list[str], stderr: bool = False) -> str:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, cwd=REPO_ROOT, timeout=30, check=False
        )
    except OSError:
        return "?"
    return ((done.stderr if stderr else done.stdout).strip().splitlines() or ["?"])[0]


def _memory_gb() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.0f}"
    return "?"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def key_figures(result: TrialResult) -> str:
    """The facts worth a glance in the table (the rest is in the JSON)."""
    shown = []
    for name, value in result.facts.items():
        if name in ("seed", "missing_files") or value in ("", None):
            continue
        shown.append(f"{name.replace('_', ' ')} {value}")
    return "; ".join(shown)


def table(results: Sequence[TrialResult]) -> list[str]:
    rows = [
        "| trial | result | commands run | faults injected | inputs tried | jobs lost | jobs duplicated "
        "| exit codes | figures | time |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for r in results:
        codes = ", ".join(
            f"{code}: {n}" for code, n in sorted(r.exit_codes.items(), key=lambda kv: int(kv[0]))
        )
        rows.append(
            f"| {r.name} | {'PASS' if r.ok else '**FAIL**'} | {r.runs} | {r.faults} | {r.inputs} | {r.lost} "
            f"| {r.duplicated} | {codes} | {_cell(key_figures(r))} | {r.seconds:.0f} s |"
        )
    total_lost = sum(r.lost for r in results)
    total_dup = sum(r.duplicated for r in results)
    rows.append(
        f"| **all** | {'PASS' if all(r.ok for r in results) else '**FAIL**'} | {sum(r.runs for r in results)} "
        f"| {sum(r.faults for r in results)} | {sum(r.inputs for r in results)} | {total_lost} | {total_dup} | | | "
        f"{sum(r.seconds for r in results):.0f} s |"
    )
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def findings(results: Sequence[TrialResult]) -> list[str]:
    """What each trial saw: its errors (why it failed), then its notes."""
    lines: list[str] = []
    for r in results:
        if not r.errors and not r.notes:
            continue
        lines += ["", f"### {r.name}", ""]
        lines += [f"- {_cell(e)}" for e in r.errors]
        lines += [f"- (note) {_cell(n)}" for n in r.notes]
    return ["## What the trials saw", *(lines or ["", "Nothing: every trial met its targets."])]


def render(results: Sequence[TrialResult], facts: dict[str, str]) -> str:
    """The whole page."""
    head = [
        "# Reliability",
        "",
        "Generated by `python bench/reliability/run.py` (do not edit: run it again). Targets: "
        "0 jobs lost, 0 jobs duplicated, no internal error, the state database intact, the "
        "status file parseable at every sample, apply under 200 MB whatever a job prints.",
        "",
        *[f"- {k}: {v}" for k, v in facts.items()],
        "",
        "## Trials",
        "",
    ]
    return "\n".join([*head, *table(results), "", *findings(results), "", HOW_COUNTED])


def write(path: Path, results: Sequence[TrialResult], facts: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results, facts))
