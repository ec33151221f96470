"""Benchmark `ccspec apply` on an ssh host and on a local Slurm cluster (issue 5, item 8).

Not a test. Two parts, against the test services of `.ci/services-up.sh` (sshd on
127.0.0.1:2222 with the ssh_config alias `ccspec-test`, and the single-node Slurm cluster
with partition `debug`):

1. ssh: --jobs (200) trivial independent jobs (`run: echo $CCSPEC_JOB > /dev/null`) on an
   ssh host, `ccspec apply` from a fresh folder, fresh state and a fresh remote workdir
   (~/bench-RANDOM), versus cloudmesh-cc's way: a loop of one `ssh -F CONFIG ALIAS CMD` per
   job, one after another (a new ssh process and connection each). Target: the loop takes at
   least 5x ccspec's wall time. One extra run of ccspec in-process with its shells' `run`
   wrapped counts its remote commands (submits, polls, their sizes).
   Then --paired rounds (issue 17): in each round, in random order, ccspec apply (fresh folder,
   state and workdir), a power user's loop of `ssh HOST CMD` one after another over one
   multiplexed connection (`-o ControlMaster=auto -o ControlPersist=60 -o ControlPath=...`,
   the master made by the loop's first ssh, closed after it), the same commands through
   `xargs -P 8`, and --baseline CCSPEC (another build) when given. Target: ccspec's median
   <= the sequential multiplexed loop's; per-round ratios are reported too.
2. Slurm: --jobs trivial jobs (`run: "true"`) with `ccspec apply` versus a bash loop of
   `sbatch --parsable --wrap true`, then one `squeue -h -j IDS -t all -o %i|%T` a second
   until all are COMPLETED. Target: ccspec <= 1.2x the loop. Shims named squeue, sacct,
   sbatch and scancel first on PATH (for both) log every call, so the scheduler queries and
   the polls are counted; ccspec also runs with --compare-jobs (50) jobs to show that its
   queries per poll do not grow with the number of jobs.

Every command runs as a subprocess (start-up included) and is reaped with os.wait4 (peak RSS, and
the CPU time of the process and the children it reaped: for ccspec, its remote commands' shells
on this machine too).

    python bench/remote_bench.py [--runs 3] [--slow-runs 1] [--jobs 200] [--ccspec PATH]

Prints Markdown tables and writes JSON to bench/results/remote.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from apply_bench import fmt, git_revision, interpreter_of, timed_child  # the same helpers
from validate_bench import (
    add_inherit_env,
    child_environment,
    default_ccspec,
    require_ccspec,
    version,
)

HERE = Path(__file__).resolve().parent
TARGET_SSH_X = 5.0  # the ssh loop's median / ccspec's median >= 5
TARGET_SLURM_X = 1.2  # ccspec's median / the sbatch+squeue loop's median <= 1.2
MAX_ARG_STRLEN = 32 * 4096  # Linux: the longest single argument of an exec (bash -c SCRIPT)
SCHEDULER_COMMANDS = ("squeue", "sacct", "sbatch", "scancel")
KEYDIR = Path(os.environ.get("CCSPEC_TEST_KEYDIR", "/root/.ccspec-test"))

# A shim per scheduler command: log name, argument count, first argument and time, then run
# the real binary. The log is $CCSPEC_BENCH_SHIM_LOG (set per run; /dev/null otherwise).
SHIM = """#!/bin/bash
printf '%s %s %s %s\\n' @NAME@ "$#" "${1:-}" "$EPOCHREALTIME" >> "${CCSPEC_BENCH_SHIM_LOG:-/dev/null}"
exec @REAL@ "$@"
"""

# cloudmesh-cc's way on an ssh host: one ssh process (and connection) per job, in turn.
SSH_LOOP = r"""set -u
config=$1 alias=$2 n=$3
for ((i = 0; i < n; i++)); do
  ssh -F "$config" "$alias" "CCSPEC_JOB=j$i; export CCSPEC_JOB; echo \$CCSPEC_JOB > /dev/null" || exit 1
done
"""

# A power user's way on an ssh host: one `ssh HOST CMD` per job over one multiplexed
# connection (made by the first ssh, closed at the end), one after another or $4 at a time.
SSH_MUX_LOOP = r"""set -u
config=$1 alias=$2 n=$3 parallel=$4 sock=$5
opts=(-F "$config" -o ControlMaster=auto -o ControlPersist=60 -o "ControlPath=$sock")
if [ "$parallel" -le 1 ]; then
  for ((i = 0; i < n; i++)); do
    ssh "${opts[@]}" "$alias" "CCSPEC_JOB=j$i; export CCSPEC_JOB; echo \$CCSPEC_JOB > /dev/null" || exit 1
  done
else  # the first job alone makes the master connection, the others share it
  ssh "${opts[@]}" "$alias" "CCSPEC_JOB=j0; export CCSPEC_JOB; echo \$CCSPEC_JOB > /dev/null" || exit 1
  seq 1 $((n - 1)) | xargs -P "$parallel" -I@ ssh "${opts[@]}" "$alias" \
    "CCSPEC_JOB=j@; export CCSPEC_JOB; echo \$CCSPEC_JOB > /dev/null" || exit 1
fi
ssh "${opts[@]}" -O exit "$alias" 2>/dev/null
exit 0
"""
TARGET_MUX_X = 1.0  # ccspec's median / the multiplexed loop's median <= 1

# The plain Slurm baseline: sbatch each job, then one squeue for all of them every second
# until every job is COMPLETED (sacct -c only for ids squeue no longer shows).
SLURM_LOOP = r"""set -u
n=$1
ids=()
for ((i = 0; i < n; i++)); do
  out=$(sbatch --parsable --wrap true) || { echo "sbatch failed: $out" >&2; exit 1; }
  ids+=("${out%%;*}")
done
list=$(IFS=,; echo "${ids[*]}")
polls=0
while :; do
  polls=$((polls + 1))
  unset state; declare -A state=()
  while IFS='|' read -r id st; do [ -n "$id" ] && state[$id]=$st; done \
    < <(squeue -h -j "$list" -t all -o '%i|%T' 2>/dev/null)
  if ((${#state[@]} < n)); then  # forgotten by squeue (after MinJobAge): the completion log
    while IFS='|' read -r id st; do [ -n "$id" ] && [ -z "${state[$id]:-}" ] && state[$id]=$st; done \
      < <(sacct -c -n -P -o JobID,State -j "$list" 2>/dev/null)
  fi
  completed=0 active=0
  for id in "${ids[@]}"; do
    case ${state[$id]:-UNKNOWN} in
      COMPLETED) completed=$((completed + 1)) ;;
      PENDING | CONFIGURING | RUNNING | COMPLETING | SUSPENDED | REQUEUED | UNKNOWN) active=$((active + 1)) ;;
    esac
  done
  ((completed == n)) && break
  ((active == 0)) && { echo "$((n - completed)) jobs finished but not COMPLETED" >&2; exit 1; }
  sleep 1
done
echo "$n jobs COMPLETED, $polls polls"
"""

# -- the counted child: ccspec apply in-process, its shells' commands counted --------------

COUNT = "--count-apply"  # python remote_bench.py --count-apply OUT.json apply SPEC ...


def classify(script: str) -> dict[str, object]:
    """What a remote command is: a batch of launches, a poll of n jobs, or another command."""
    launches = len(re.findall(r"(?m)(?:^|; )L \d+ ", script)) + len(
        re.findall(r"(?m)^S \d+ ", script)
    )
    polls = len(re.findall(r"(?m)^P \d+ ", script))
    if launches:
        return {"kind": "submit", "n": launches}
    if polls:
        return {"kind": "poll", "n": polls, "squeue": "squeue " in script}
    first = script.split()[0] if script.split() else ""
    return {"kind": first if first in ("sacct", "mkdir", "scancel") else "other", "n": 0}


def count_apply(argv: list[str]) -> None:
    """`ccspec ARGV[1:]` with every Shell.run recorded; the records go to ARGV[0] as JSON."""
    from ccspec.targets import shells

    calls: list[dict[str, object]] = []

    def wrap(cls: type) -> None:
        original = cls.run

        def run(self, script, *, stdin=None, timeout=shells.COMMAND_TIMEOUT):  # type: ignore[no-untyped-def]
            entry = {"shell": cls.__name__, **classify(script), "bytes": len(script.encode())}
            start = time.monotonic()
            entry["at"] = start
            try:
                result = original(self, script, stdin=stdin, timeout=timeout)
                entry["code"] = result.code
                return result
            except BaseException as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                entry["seconds"] = time.monotonic() - start
                calls.append(entry)

        cls.run = run

    wrap(shells.SshShell)
    wrap(shells.LocalShell)
    from ccspec.cli import main

    code: int | str | None = 0
    try:
        main(argv[1:])
    except SystemExit as exc:
        code = exc.code
    finally:
        import resource

        me, children = (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
        cpu = {
            "python_s": me.ru_utime + me.ru_stime,
            "commands_s": children.ru_utime + children.ru_stime,
        }
        Path(argv[0]).write_text(json.dumps({"calls": calls, "cpu": cpu}) + "\n")
    sys.exit(code)


def summarise_calls(counted: dict) -> dict[str, object]:
    calls: list[dict] = counted["calls"]
    submits = [c for c in calls if c["kind"] == "submit"]
    polls = [c for c in calls if c["kind"] == "poll"]
    per_launch = [c["bytes"] / c["n"] for c in submits if c["n"] >= 4]  # a batch, not a lone job
    bytes_per_launch = statistics.median(per_launch) if per_launch else None
    return {
        "commands": len(calls),
        "by_kind": dict(Counter(str(c["kind"]) for c in calls)),
        "launches_per_submit": [c["n"] for c in submits],
        "jobs_per_poll_max": max((c["n"] for c in polls), default=0),
        "largest_command_bytes": max((c["bytes"] for c in calls), default=0),
        "largest_submit_bytes": max((c["bytes"] for c in submits), default=0),
        "largest_poll_bytes": max((c["bytes"] for c in polls), default=0),
        "submit_bytes_per_launch": bytes_per_launch,
        "launches_under_max_arg_strlen": int(MAX_ARG_STRLEN // bytes_per_launch)
        if bytes_per_launch
        else None,
        "seconds_in_commands": sum(c["seconds"] for c in calls),
        "seconds_in_submits": sum(c["seconds"] for c in submits),
        "seconds_in_polls": sum(c["seconds"] for c in polls),
        "errors": sorted({str(c["error"]) for c in calls if "error" in c})[:5],
        "cpu_python_s": counted["cpu"]["python_s"],  # ccspec's own process, all threads
        "cpu_commands_s": counted["cpu"][
            "commands_s"
        ],  # the shells it ran on this machine (Slurm), or ssh: ~0
    }


# -- running and timing --------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    code: int
    rss_mb: float
    started_at: float = 0.0  # time.time() at the start, for the shim log's times
    cpu_s: float = 0.0  # user + system CPU of the process and the children it reaped
    succeeded: int = 0  # jobs ccspec reported succeeded (ccspec rows)
    failed: int = 0
    first_failure: str = ""
    shim: dict[str, object] = field(default_factory=dict)  # scheduler calls (Slurm rows)
    commands: dict[str, object] = field(default_factory=dict)  # remote commands (counted rows)
    output_tail: str = ""


@dataclass
class Row:
    name: str
    jobs: int
    argv: list[str]
    note: str = ""
    max_jobs: int | None = None  # Slurm rows: max_jobs of the host entry
    runs: list[Run] = field(default_factory=list)
    error: str = ""

    @property
    def times(self) -> list[float]:
        return [r.wall for r in self.runs if r.code == 0]

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times and not self.error else None

    @property
    def min(self) -> float | None:
        return min(self.times) if self.times and not self.error else None

    def shim_median(self, key: str) -> float | None:
        values = [r.shim[key] for r in self.runs if r.code == 0 and key in r.shim]
        return statistics.median(values) if values and not self.error else None

    def as_json(self) -> dict[str, object]:
        return {
            **asdict(self),
            "min": self.min,
            "median": self.median,
            "ms_per_job": self.median / self.jobs * 1000 if self.median is not None else None,
        }


def run_once(argv: list[str], cwd: Path, env: dict[str, str], timeout: float, log: Path) -> Run:
    """Run argv once in its own session, output into log; killed (-9) after timeout."""
    with open(log, "wb") as out:
        started_at = time.time()
        wall, code, usage = timed_child(argv, cwd, env, timeout, out)
    text = log.read_text(errors="replace")
    run = Run(
        wall,
        code,
        usage.ru_maxrss / 1024,
        started_at,
        usage.ru_utime + usage.ru_stime,
        output_tail=text[-1500:] if code else "",
    )
    run.succeeded = len(re.findall(r"^\S+ \S+/\S+ succeeded", text, re.M))  # TIME WF/JOB succeeded
    failures = re.findall(r"^\S+ \S+ failed after [^:]*: (.*?)(?: \(log: .*)?$", text, re.M)
    run.failed = len(re.findall(r"^\S+ \S+ failed", text, re.M))
    run.first_failure = failures[0] if failures else ""
    if code == -signal.SIGKILL:
        run.output_tail += f"\n(killed after the {timeout:.0f} s timeout)"
    return run


def say_run(row: Row, i: int, total: int, run: Run, extra: str = "") -> None:
    what = "ok" if run.code == 0 else f"exit {run.code}"
    print(f"    {row.name} run {i}/{total}: {run.wall:.2f} s, {what}{extra}", file=sys.stderr)


# -- ssh -----------------------------------------------------------------------------------


def ssh_options(config: Path, alias: str) -> dict[str, str]:
    """hostname, port, user and identityfile of the alias, as `ssh -G` resolves them."""
    done = subprocess.run(
        ["ssh", "-F", str(config), "-G", alias], capture_output=True, text=True, check=True
    )
    options: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        options.setdefault(key.lower(), value)
    return options


def ssh_spec(jobs: int, opts: dict[str, str], workdir: str) -> str:
    host = (
        f"{{type: ssh, host: {opts['hostname']}, port: {opts['port']}, user: {opts['user']}, "
        f"key: {opts['identityfile']}, workdir: {workdir}}}"
    )
    lines = [
        "version: 1",
        "name: bench",
        "hosts:",
        f"  box: {host}",
        "defaults: {host: box}",
        "jobs:",
    ]
    lines += [f"  j{i}:\n    run: echo $CCSPEC_JOB > /dev/null" for i in range(jobs)]
    return "\n".join(lines) + "\n"


def ssh_part(
    args: argparse.Namespace, tmp: Path, env: dict[str, str], meta: dict
) -> dict[str, object]:
    config, alias, n = args.ssh_config, args.ssh_alias, args.jobs
    ssh = ["ssh", "-F", str(config), alias]
    subprocess.run([*ssh, "true"], check=True, timeout=30)
    opts = ssh_options(config, alias)
    meta["ssh"] = {
        "alias": alias,
        "config": str(config),
        **{k: opts.get(k) for k in ("hostname", "port", "user", "identityfile")},
    }
    ccspec = Row(
        f"ccspec apply ({n} jobs)",
        n,
        [args.ccspec, "apply", "remote.yaml"],
        "fresh folder, state and remote workdir each run",
    )
    counted = Row(
        f"ccspec apply ({n} jobs), remote commands counted",
        n,
        [
            interpreter_of(args.ccspec),
            str(Path(__file__).resolve()),
            COUNT,
            "commands.json",
            "apply",
            "remote.yaml",
        ],
        "in-process, SshShell.run wrapped to count commands; not timed for the target",
    )
    loop = Row(
        f"ssh loop: one ssh {alias} CMD per job ({n} jobs)",
        n,
        ["bash", str(tmp / "ssh-loop.sh"), str(config), alias, str(n)],
        "cloudmesh-cc's way",
    )
    (tmp / "ssh-loop.sh").write_text(SSH_LOOP)

    def ccspec_run(row: Row, label: str) -> Run:
        folder = tmp / f"ssh-{label}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        workdir = f"bench-{secrets.token_hex(4)}"
        (folder / "remote.yaml").write_text(ssh_spec(n, opts, f"~/{workdir}"))
        try:
            run = run_once(row.argv, folder, env, args.timeout, folder / "output.txt")
        finally:
            subprocess.run([*ssh, f"rm -rf ~/{workdir}"], timeout=120, check=False)
        if run.code == 0 and run.succeeded != n:
            run.code, run.output_tail = 1, f"{run.succeeded} of {n} jobs reported succeeded"
        if (folder / "commands.json").exists():
            run.commands = summarise_calls(json.loads((folder / "commands.json").read_text()))
        return run

    print(
        f"ssh: {n} jobs on {alias} ({opts['user']}@{opts['hostname']}:{opts['port']})",
        file=sys.stderr,
    )
    for i in range(args.warmup):
        run = ccspec_run(ccspec, f"warmup{i}")
        print(f"    {ccspec.name} warm-up: {run.wall:.2f} s, exit {run.code}", file=sys.stderr)
    for row, runs in ((ccspec, args.runs), (counted, 1)):
        for i in range(runs):
            run = ccspec_run(row, f"{'c' if row is counted else 'r'}{i}")
            row.runs.append(run)
            say_run(row, i + 1, runs, run)
            if run.code != 0:
                row.error = run.first_failure or run.output_tail.strip()[-500:]
                break
    for i in range(args.slow_runs):
        run = run_once(loop.argv, tmp, env, args.timeout, tmp / f"ssh-loop-{i}.txt")
        loop.runs.append(run)
        say_run(loop, i + 1, args.slow_runs, run)
        if run.code != 0:
            loop.error = run.output_tail.strip()[-500:]
            break

    pairs = paired(args, tmp, env, ccspec_run) if args.paired else {}
    x = loop.median / ccspec.median if loop.median and ccspec.median else None
    commands = counted.runs[0].commands if counted.runs else {}
    result = {
        "jobs": n,
        "results": [r.as_json() for r in (ccspec, counted, loop)],
        "loop/ccspec": x,
        "target": {"loop/ccspec_at_least": TARGET_SSH_X},
        "met": "n/a" if x is None else ("ok" if x >= TARGET_SSH_X else "MISSED"),
        "remote_commands": commands,
        "paired": pairs,
    }
    print(f"\n### ssh: {n} jobs\n")
    print(table([ccspec, counted, loop], ccspec, "ccspec"))
    print(f"\nloop/ccspec = {fmt(x, 2, 'n/a')} (target >= {TARGET_SSH_X}: {result['met']})")
    if commands:
        by_kind = ", ".join(f"{k} {v}" for k, v in commands["by_kind"].items())
        print(
            f"ccspec's remote commands (counted run): {commands['commands']} ({by_kind}); "
            f"jobs per submit {commands['launches_per_submit']}; largest command "
            f"{commands['largest_command_bytes']:,} bytes; {fmt(commands['seconds_in_commands'], 2)} s "
            f"inside commands; CPU {fmt(commands['cpu_python_s'], 2)} s in ccspec's process"
        )
    return result


def paired(
    args: argparse.Namespace, tmp: Path, env: dict[str, str], ccspec_run: Callable[[Row, str], Run]
) -> dict[str, object]:
    """--paired rounds, each running ccspec, the multiplexed loop, the same with xargs -P 8
    (and --baseline) in a random order; medians and the per-round ratios to the loop."""
    config, alias, n = args.ssh_config, args.ssh_alias, args.jobs
    script = tmp / "ssh-mux-loop.sh"
    script.write_text(SSH_MUX_LOOP)
    sock = str(tmp / "mux-%C")
    rows = [Row(f"ccspec apply ({n} jobs)", n, [args.ccspec, "apply", "remote.yaml"])]
    if args.baseline:
        rows.append(
            Row(f"baseline ccspec apply ({n} jobs)", n, [args.baseline, "apply", "remote.yaml"])
        )
    loop = Row(
        f"multiplexed loop: ssh {alias} CMD, one after another ({n} jobs)",
        n,
        ["bash", str(script), str(config), alias, str(n), "1", sock],
        "one ControlMaster connection, made by the first ssh",
    )
    xargs = Row(f"multiplexed, xargs -P 8 ({n} jobs)", n, [*loop.argv[:-2], "8", sock])
    rows += [loop, xargs]
    ratios: dict[str, list[float]] = {r.name: [] for r in rows}
    print(f"ssh, paired: {args.paired} rounds of {len(rows)} commands", file=sys.stderr)
    for i in range(args.paired):
        walls: dict[str, float] = {}
        for row in random.sample(rows, len(rows)):
            if row.argv[0] == "bash":
                run = run_once(row.argv, tmp, env, args.timeout, tmp / "mux.txt")
            else:
                run = ccspec_run(row, f"p{i}-{rows.index(row)}")
            row.runs.append(run)
            say_run(row, i + 1, args.paired, run)
            if run.code == 0:
                walls[row.name] = run.wall
        if loop.name in walls:
            for name, wall in walls.items():
                ratios[name].append(wall / walls[loop.name])
    print(f"\n### ssh, paired rounds: {n} jobs, {args.paired} rounds\n")
    print(table(rows, loop, "loop"))
    print(
        "\nper-round ratio to the multiplexed loop (median): "
        + ", ".join(
            f"{r.name.split(' (')[0]} {fmt(statistics.median(ratios[r.name]), 2) if ratios[r.name] else 'n/a'}"
            for r in rows
        )
    )
    x = rows[0].median / loop.median if rows[0].median and loop.median else None
    met = "n/a" if x is None else ("ok" if x <= TARGET_MUX_X else "MISSED")
    print(f"ccspec/loop (medians) = {fmt(x, 2, 'n/a')} (target <= {TARGET_MUX_X}: {met})")
    return {
        "rounds": args.paired,
        "results": [r.as_json() for r in rows],
        "ratio_to_loop_per_round": ratios,
        "ccspec/loop": x,
        "met": met,
    }


# -- Slurm ---------------------------------------------------------------------------------


def make_shims(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    real = {}
    for name in SCHEDULER_COMMANDS:
        path = shutil.which(name)
        if path is None:
            raise SystemExit(f"{name} not found on PATH: is Slurm installed?")
        real[name] = path
        shim = folder / name
        shim.write_text(SHIM.replace("@NAME@", name).replace("@REAL@", path))
        shim.chmod(0o755)
    return real


def read_shim_log(log: Path, started_at: float) -> dict[str, object]:
    """Calls by command; times in seconds since the run started."""
    calls: Counter[str] = Counter()
    first_args: Counter[str] = Counter()
    times: dict[str, list[float]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            parts = line.split(" ")
            if len(parts) >= 4:
                calls[parts[0]] += 1
                if parts[0] == "sacct":
                    first_args[parts[2]] += 1
                with contextlib.suppress(ValueError):
                    times.setdefault(parts[0], []).append(
                        float(parts[3].replace(",", ".")) - started_at
                    )
    polls = calls["squeue"]  # one squeue a poll, for ccspec and for the loop
    queries = calls["squeue"] + calls["sacct"]
    return {
        **{name: calls[name] for name in SCHEDULER_COMMANDS},
        "sacct_by_first_arg": dict(first_args),
        "polls": polls,
        "queries": queries,
        "queries_per_poll": queries / polls if polls else None,
        "sacct_per_poll": calls["sacct"] / polls if polls else None,
        "first_sbatch_s": min(times.get("sbatch", []), default=None),
        "last_sbatch_s": max(times.get("sbatch", []), default=None),
        "last_query_s": max(times.get("squeue", []) + times.get("sacct", []), default=None),
    }


def slurm_spec(jobs: int, partition: str, workdir: Path, max_jobs: int | None) -> str:
    cap = f", max_jobs: {max_jobs}" if max_jobs else ""
    lines = [
        "version: 1",
        "name: bench",
        "hosts:",
        f"  hpc: {{type: slurm, partition: {partition}, workdir: {workdir}{cap}}}",
        "defaults: {host: hpc}",
        "jobs:",
    ]
    lines += [f'  j{i}:\n    run: "true"' for i in range(jobs)]
    return "\n".join(lines) + "\n"


def wait_idle(squeue: str, timeout: float = 180) -> None:
    """Until no job is pending, running or completing (leftovers would skew the next run)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out = subprocess.run(
            [squeue, "-h", "-t", "PD,CF,R,CG", "-o", "%i"], capture_output=True, text=True
        )
        if out.returncode == 0 and not out.stdout.strip():
            return
        time.sleep(0.5)
    raise SystemExit("Slurm's queue did not drain")


def slurm_part(
    args: argparse.Namespace, tmp: Path, env: dict[str, str], meta: dict
) -> dict[str, object]:
    n, small = args.jobs, args.compare_jobs
    real = make_shims(tmp / "shims")
    env = {**env, "PATH": f"{tmp / 'shims'}:{env.get('PATH', '')}"}
    node = subprocess.run(
        [shutil.which("sinfo") or "sinfo", "-h", "-p", args.partition, "-o", "%N %c %m"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    meta["slurm"] = {
        "version": version([real["sbatch"], "--version"]),
        "partition": args.partition,
        "node_cpus_memory": node,
        "shims": str(tmp / "shims"),
        "real": real,
    }
    wait_idle(real["squeue"])
    print("slurm: warm-up job (sbatch --wait)", file=sys.stderr)
    subprocess.run(
        [
            real["sbatch"],
            "--wait",
            "--parsable",
            "-p",
            args.partition,
            "-o",
            "/dev/null",
            "--wrap",
            "true",
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    (tmp / "slurm-loop.sh").write_text(SLURM_LOOP)

    def row(name: str, jobs: int, cap: int | None, counted: bool, note: str) -> Row:
        argv = [args.ccspec, "apply", "remote.yaml"]
        if counted:
            argv = [
                interpreter_of(args.ccspec),
                str(Path(__file__).resolve()),
                COUNT,
                "commands.json",
                *argv[1:],
            ]
        return Row(name, jobs, argv, note, cap)

    def shimmed_run(r: Row, folder: Path) -> Run:
        """Run r once in folder, once Slurm is idle, with the scheduler commands it called
        counted by the shims."""
        wait_idle(real["squeue"])
        log = folder / "shim.log"
        run = run_once(
            r.argv,
            folder,
            {**env, "CCSPEC_BENCH_SHIM_LOG": str(log)},
            args.timeout,
            folder / "output.txt",
        )
        run.shim = read_shim_log(log, run.started_at)
        return run

    def ccspec_run(r: Row, label: str) -> Run:
        folder = tmp / f"slurm-{label}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        (folder / "remote.yaml").write_text(
            slurm_spec(r.jobs, args.partition, folder / "workdir", r.max_jobs)
        )
        run = shimmed_run(r, folder)
        if run.code == 0 and run.succeeded != r.jobs:
            run.code, run.output_tail = 1, f"{run.succeeded} of {r.jobs} jobs reported succeeded"
        if (folder / "commands.json").exists():
            run.commands = summarise_calls(json.loads((folder / "commands.json").read_text()))
        return run

    def measure(r: Row, i: int, runs: int, make_run) -> None:  # type: ignore[no-untyped-def]
        """Run r's i-th timed run, unless an earlier one failed."""
        if r.error:
            return
        run = make_run(r, i)
        r.runs.append(run)
        s = run.shim
        extra = (
            f"; squeue {s.get('squeue')}, sacct {s.get('sacct')}, sbatch {s.get('sbatch')}, "
            f"queries/poll {fmt(s.get('queries_per_poll'), 2)}"
            if s
            else ""
        )
        if run.failed:
            extra += f"; {run.failed} jobs failed: {run.first_failure}"
        say_run(r, i + 1, runs, run, extra)
        if run.code != 0:
            r.error = (
                f"{run.failed} of {r.jobs} jobs failed: {run.first_failure}"
                if run.failed
                else run.output_tail.strip()[-500:]
            )

    def loop_run(r: Row, i: int) -> Run:
        folder = tmp / f"slurm-loop-{i}"
        folder.mkdir(exist_ok=True)
        return shimmed_run(r, folder)

    print(f"slurm: {n} and {small} jobs, partition {args.partition}", file=sys.stderr)
    # first (also warms ccspec's byte code for the Slurm modules): the small run, counted
    small_row = row(
        f"ccspec apply ({small} jobs), remote commands counted",
        small,
        None,
        True,
        "in-process, LocalShell.run wrapped to count commands",
    )
    measure(small_row, 0, 1, lambda r, i: ccspec_run(r, f"small{i}"))
    loop = Row(
        f"sbatch loop + squeue every 1 s ({n} jobs)",
        n,
        ["bash", str(tmp / "slurm-loop.sh"), str(n)],
        "plain script",
    )
    shipped = row(f"ccspec apply ({n} jobs)", n, None, False, "as shipped")
    capped = None
    for i in range(args.slow_runs):  # interleaved, so drift in the machine's load hits both alike
        measure(loop, i, args.slow_runs, loop_run)
        measure(shipped, i, args.slow_runs, lambda r, i: ccspec_run(r, f"full{i}"))
        if shipped.error and args.slurm_max_jobs:
            if capped is None:
                print(
                    f"  {shipped.name} failed; from now on with max_jobs: {args.slurm_max_jobs} on the host",
                    file=sys.stderr,
                )
                capped = row(
                    f"ccspec apply ({n} jobs), host max_jobs: {args.slurm_max_jobs}",
                    n,
                    args.slurm_max_jobs,
                    False,
                    "workaround: at most max_jobs launches a batch",
                )
            measure(capped, i, args.slow_runs, lambda r, i: ccspec_run(r, f"capped{i}"))
    rows = [shipped, *([capped] if capped else [])]
    rows += [small_row, loop]
    timed = shipped if not shipped.error else capped
    x = timed.median / loop.median if timed and timed.median and loop.median else None
    x_shipped = shipped.median / loop.median if shipped.median and loop.median else None
    met = "n/a" if x is None else ("ok" if x <= TARGET_SLURM_X else "MISSED")

    def per_poll(r: Row | None) -> dict[str, object] | None:
        if r is None or not r.runs or r.error:
            return None
        keys = (
            "squeue",
            "sacct",
            "sbatch",
            "scancel",
            "polls",
            "queries",
            "queries_per_poll",
            "sacct_per_poll",
            "first_sbatch_s",
            "last_sbatch_s",
            "last_query_s",
        )
        return {
            "row": r.name,
            "jobs": r.jobs,
            "wall_s": r.median,
            **{k: r.shim_median(k) for k in keys},
            "polls_per_s": (r.shim_median("polls") or 0) / r.median if r.median else None,
        }

    comparison = {
        "ccspec_small": per_poll(small_row),
        "ccspec_large": per_poll(timed),
        "loop": per_poll(loop),
    }
    small_commands = small_row.runs[0].commands if small_row.runs else {}
    result = {
        "jobs": n,
        "compare_jobs": small,
        "results": [r.as_json() for r in rows],
        "ccspec/loop": x,
        "ccspec/loop_row": timed.name if timed else None,
        "ccspec_as_shipped/loop": x_shipped,
        "as_shipped_error": shipped.error or None,
        "target": {"ccspec/loop_at_most": TARGET_SLURM_X},
        "met": met,
        "met_as_shipped": "FAILED" if shipped.error else met,
        "queries_per_poll": comparison,
        "remote_commands_small": small_commands,
    }
    print(f"\n### Slurm: {n} jobs\n")
    print(table(rows, loop, "loop", slurm=True))
    print()
    if shipped.error:
        print(f"ccspec as shipped FAILED: {shipped.error}")
    print(
        f"ccspec/loop = {fmt(x, 2, 'n/a')} ({timed.name if timed else 'no ccspec run finished'}; "
        f"target <= {TARGET_SLURM_X}: {met})"
    )
    print(f"\n### Slurm: scheduler queries per poll, {small} vs {n} jobs\n")
    print(
        "| run | jobs | wall s | polls | squeue | sacct | sbatch | queries/poll | sacct/poll | polls/s "
        "| first sbatch s | last sbatch s | last query s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in comparison.values():
        if c:
            print(
                f"| {c['row']} | {c['jobs']} | {fmt(c['wall_s'], 2)} | {c['polls']:g} | {c['squeue']:g} "
                f"| {c['sacct']:g} | {c['sbatch']:g} | {fmt(c['queries_per_poll'], 2)} "
                f"| {fmt(c['sacct_per_poll'], 2)} | {fmt(c['polls_per_s'], 2)} | {fmt(c['first_sbatch_s'], 2)} "
                f"| {fmt(c['last_sbatch_s'], 2)} | {fmt(c['last_query_s'], 2)} |"
            )
    if small_commands:
        print(
            f"\nccspec's commands ({small} jobs, counted): {small_commands['commands']} "
            f"({', '.join(f'{k} {v}' for k, v in small_commands['by_kind'].items())}); jobs per sbatch batch "
            f"{small_commands['launches_per_submit']}; {fmt(small_commands['submit_bytes_per_launch'], 0)} bytes "
            f"of script per job in a batch, so a batch over ~{small_commands['launches_under_max_arg_strlen']} "
            f"jobs exceeds the {MAX_ARG_STRLEN:,}-byte limit of one exec argument (`bash -c SCRIPT`); CPU "
            f"{fmt(small_commands['cpu_python_s'], 2)} s in ccspec's process, "
            f"{fmt(small_commands['cpu_commands_s'], 2)} s in its shell commands (submits, polls, sacct)"
        )
    return result


# -- output --------------------------------------------------------------------------------


def table(rows: list[Row], baseline: Row, base_label: str, slurm: bool = False) -> str:
    head = "| command | jobs | runs | min s | median s | ms/job | CPU s | peak RSS MB |"
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|"
    if slurm:
        head += " squeue | sacct | sbatch | polls | queries/poll |"
        rule += "---:|---:|---:|---:|---:|"
    lines = [head + f" x {base_label} |", rule + "---:|"]
    for r in rows:
        cells = [f"`{r.name}`", str(r.jobs)]
        if r.error or r.median is None:
            walls = ", ".join(f"{x.wall:.2f}" for x in r.runs)
            cells += [
                str(len(r.runs)),
                "",
                f"FAILED ({walls} s)" if r.runs else "not run",
                "",
                "",
                "",
            ]
        else:
            ok = [x for x in r.runs if x.code == 0]
            cpu = statistics.median(x.cpu_s for x in ok)
            cells += [
                str(len(r.times)),
                fmt(r.min),
                fmt(r.median),
                fmt(r.median / r.jobs * 1000, 1),
                fmt(cpu, 1),
                f"{max(x.rss_mb for x in ok):.0f}",
            ]
        if slurm:
            vals = [
                r.runs[-1].shim.get(k) if r.runs else None
                for k in ("squeue", "sacct", "sbatch", "polls")
            ]
            if r.median is not None:
                vals = [r.shim_median(k) for k in ("squeue", "sacct", "sbatch", "polls")]
            qpp = (
                r.shim_median("queries_per_poll")
                if r.median is not None
                else (r.runs[-1].shim.get("queries_per_poll") if r.runs else None)
            )
            cells += ["" if v is None else f"{v:g}" for v in vals] + [fmt(qpp, 2)]  # type: ignore[arg-type]
        x = r.median / baseline.median if r.median and baseline.median else None
        cells.append(fmt(x, 2))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs per workflow (both parts)")
    parser.add_argument(
        "--compare-jobs",
        type=int,
        default=50,
        help="Slurm: ccspec also runs this many jobs, to compare queries per poll",
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="timed runs of ccspec over ssh (a few s each)"
    )
    parser.add_argument(
        "--slow-runs",
        type=int,
        default=1,
        help="timed runs of the ssh loop, the Slurm loop and ccspec on Slurm (40-60 s each)",
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed ccspec runs over ssh first")
    parser.add_argument(
        "--paired",
        type=int,
        default=5,
        help="ssh: rounds of ccspec vs the multiplexed loop and xargs -P 8 (0: none)",
    )
    parser.add_argument("--baseline", help="ssh, paired rounds: another ccspec executable too")
    parser.add_argument("--ccspec", default=default_ccspec(), help="ccspec executable")
    parser.add_argument(
        "--ssh-config",
        type=Path,
        default=Path(os.environ.get("CCSPEC_TEST_SSH_CONFIG", KEYDIR / "ssh_config")),
        help="ssh_config for the loop and `ssh -G`",
    )
    parser.add_argument(
        "--ssh-alias",
        default=os.environ.get("CCSPEC_TEST_SSH_HOST", "ccspec-test"),
        help="host alias in --ssh-config (ccspec's host entry is taken from `ssh -G ALIAS`)",
    )
    parser.add_argument(
        "--partition", default=os.environ.get("CCSPEC_TEST_SLURM_PARTITION", "debug")
    )
    parser.add_argument(
        "--slurm-max-jobs",
        type=int,
        default=64,
        help="when ccspec as shipped fails on Slurm, run it again with this max_jobs on the host "
        "(0: do not)",
    )
    parser.add_argument("--no-ssh", action="store_true", help="skip part 1")
    parser.add_argument("--no-slurm", action="store_true", help="skip part 2")
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds before a command is killed"
    )
    parser.add_argument("--json", type=Path, default=HERE / "results" / "remote.json")
    parser.add_argument(
        "--keep", type=Path, help="work in this folder and keep it (outputs, shim logs)"
    )
    add_inherit_env(parser)
    args = parser.parse_args()
    require_ccspec(parser, args)
    args.ccspec = shutil.which(args.ccspec)
    if args.baseline:
        args.baseline = shutil.which(args.baseline) or parser.error(f"no {args.baseline}")

    meta: dict[str, object] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cpus",
        "load_average_at_start": os.getloadavg(),
        "python": sys.version.split()[0],
        "ccspec": [args.ccspec, version([args.ccspec, "--version"]), git_revision()],
        "openssh": version(["ssh", "-V"]),
        "jobs": args.jobs,
        "compare_jobs": args.compare_jobs,
        "runs": args.runs,
        "slow_runs": args.slow_runs,
        "warmup": args.warmup,
    }
    payload: dict[str, object] = {"environment": meta}
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if args.keep:
            tmp = args.keep.resolve()
            tmp.mkdir(parents=True, exist_ok=True)
        else:
            tmp = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="ccspec-remote-bench-"))
            )
        env, meta["child_env"] = child_environment(args.inherit_env, tmp)
        if not args.no_ssh:
            payload["ssh"] = ssh_part(args, tmp, env, meta)
        if not args.no_slurm:
            payload["slurm"] = slurm_part(args, tmp, env, meta)

    meta["seconds"] = round(time.monotonic() - started, 1)
    meta["load_average_at_end"] = os.getloadavg()
    meta["ccspec_revision_at_end"] = git_revision()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwritten: {args.json} ({meta['seconds']} s)", file=sys.stderr)
    # a command that failed (ccspec as shipped included, even when the max_jobs row then succeeded)
    failed = any(
        r.get("error")
        for part in ("ssh", "slurm")
        for r in payload.get(part, {}).get("results", [])
    )
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1:2] == [COUNT]:
        count_apply(sys.argv[2:])
    sys.exit(main())
