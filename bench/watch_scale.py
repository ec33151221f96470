"""Benchmark `ccspec watch` at GitOps scale (issue 18, item 7).

Not a test (tests/test_watch_scale.py runs a reduced form). Writes N specs of M short jobs
into a temporary repository, starts `ccspec watch specs/` on it and measures:

- converge: seconds from the start until every spec's status file says all its jobs
  succeeded (`phase: succeeded`, M succeeded);
- errors: tracebacks or errors in watch's output, `errors:` in status files, reconcile
  traceback files;
- idle CPU: the CPU time (utime + stime, /proc/PID/stat) of the watch process and of every
  descendant, over the first resync interval once converged and over the next one, as % of
  one core;
- save-to-launch: an edited job of one spec writes the wall clock of its own start; the time
  from the save to it, when idle and while `--load-specs` other specs rerun all their jobs
  (each job sleeping `--load-seconds`), and with `--steady-after S` again S seconds
  later, once the loaded specs have been running their jobs a while;
- peak RSS (VmHWM), open descriptors (/proc/PID/fd), threads (/proc/PID/status), sampled
  every `--sample` seconds; the values once idle (after the two resync intervals), and per
  spec;
- peak processes under watch (its descendants: jobs, their wrappers and launchers);
- with `--record`: the most jobs at once, from the start and end each job appends to a
  file, which tells whether `-j` holds across specs.

Results to `--json` (bench/results/watch_scale.json) and a table on stdout.

    python bench/watch_scale.py [--specs 200] [--jobs 50] [--job-seconds 0] [--interval 30] [--record]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")
ERROR_WORDS = re.compile(r"Traceback|Error|reconcile failed|internal error")


def default_ccspec() -> str:
    candidate = Path(sys.executable).with_name("ccspec")
    return str(candidate) if candidate.exists() else "ccspec"


def spec_text(
    name: str, jobs: int, *, seconds: float, round_: int, probe: str = "", record: str = ""
) -> str:
    """A spec of `jobs` independent jobs; `round_` in every command reruns them all when it
    changes; `probe` (a command) replaces the first job's command; with `record` (a file)
    each job appends when it starts and ends (bash's clock, no extra process)."""
    command = f"sleep {seconds:g}" if seconds > 0 else "true"
    if record:
        command = (
            f'echo "$EPOCHREALTIME +" >> {record}; {command}; echo "$EPOCHREALTIME -" >> {record}'
        )
    lines = ["version: 1", f"name: {name}", "jobs:"]
    for i in range(jobs):
        run = probe if (probe and i == 0) else f"{command}  # round {round_}"
        lines += [f"  j{i}:", f"    run: {json.dumps(run)}"]
    return "\n".join(lines) + "\n"


# -- /proc ---------------------------------------------------------------------------------


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(own utime+stime, cutime+cstime of reaped children) of a process, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def tree_cpu(pid: int) -> dict[int, int]:
    """CPU ticks per process of the tree under `pid` (the root with its reaped children)."""
    own, reaped = cpu_ticks(pid)
    ticks = {pid: own + reaped}
    for child in descendants(pid):
        with contextlib.suppress(OSError, IndexError):
            ticks[child] = sum(cpu_ticks(child))
    return ticks


def idle_cpu(pid: int, seconds: float) -> float:
    """% of one core the process tree under `pid` used over the next `seconds`."""
    before, t0 = tree_cpu(pid), time.monotonic()
    time.sleep(seconds)
    after, t1 = tree_cpu(pid), time.monotonic()
    ticks = sum(after.values()) - sum(v for k, v in before.items() if k in after)
    return round(100.0 * ticks / TICK / (t1 - t0), 2)


def status_fields(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


@dataclass
class Sampler:
    """Samples the watch process every `every` seconds in a thread: peaks and the last."""

    pid: int
    every: float
    peak: dict[str, int] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.sample()

    def sample(self) -> None:
        try:
            now = status_fields(self.pid)
            now["processes"] = len(descendants(self.pid))
        except OSError:
            return
        self.last = now
        for key, value in now.items():
            self.peak[key] = max(self.peak.get(key, 0), value)


# -- the repository ------------------------------------------------------------------------


def converged(specs: Path, names: list[str], jobs: int) -> list[str]:
    """The specs whose status file does not (yet) say all `jobs` jobs succeeded."""
    pending = []
    for name in names:
        try:
            text = (specs / f"{name}.status.yaml").read_text()
        except OSError:
            pending.append(name)
            continue
        if not (
            re.search(r"^phase: succeeded$", text, re.M)
            and re.search(rf"^  succeeded: {jobs}$", text, re.M)
        ):
            pending.append(name)
    return pending


def wait_converged(specs: Path, names: list[str], jobs: int, timeout: float) -> list[str]:
    end = time.monotonic() + timeout
    pending = names
    while pending and time.monotonic() < end:
        pending = converged(specs, pending, jobs)
        if pending:
            time.sleep(0.5)
    return pending


def status_errors(specs: Path) -> list[str]:
    """`errors:` entries and error phases found in the status files."""
    found = []
    for path in sorted(specs.glob("*.status.yaml")):
        text = path.read_text()
        if re.search(r"^phase: (error|invalid)$", text, re.M) or re.search(
            r"^errors:\n  - ", text, re.M
        ):
            found.append(f"{path.name}: {text[:300]!r}")
    return found


def most_at_once(record: Path) -> int | None:
    """The most jobs that ran at the same moment, from the starts and ends they recorded."""
    try:
        lines = record.read_text().splitlines()
    except OSError:
        return None
    edges = sorted((float(t), 1 if e == "+" else -1) for t, e in (x.split() for x in lines))
    running = most = 0
    for _, change in edges:  # at a tie an end comes first: a slot handed on is not two jobs
        running += change
        most = max(most, running)
    return most


def wait_stamp(path: Path, timeout: float) -> float:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            text = path.read_text().strip()
        except OSError:
            text = ""
        if text:
            return float(text)
        time.sleep(0.005)
    raise TimeoutError(f"{path} never appeared")


def probe(specs: Path, out: Path, args: argparse.Namespace, tag: str) -> float:
    """Save spec s0000 with a changed first job; seconds until that job's command runs."""
    target = out / f"probe-{tag}"
    command = f"date +%s.%N > {target}  # {tag}"
    text = spec_text(
        "s0000", args.jobs, seconds=args.job_seconds, round_=0, probe=command, record=args.rec
    )
    began = time.time()
    (specs / "s0000.yaml").write_text(text)
    return wait_stamp(target, timeout=args.timeout) - began


# -- the benchmark -------------------------------------------------------------------------


def measure(args: argparse.Namespace, repo: Path) -> dict[str, object]:
    specs, out = repo / "specs", repo / "out"
    specs.mkdir()
    out.mkdir()
    (repo / ".git").mkdir()
    names = [f"s{i:04d}" for i in range(args.specs)]
    args.rec = str(out / "jobs.record") if args.record else ""
    for name in names:
        (specs / f"{name}.yaml").write_text(
            spec_text(name, args.jobs, seconds=args.job_seconds, round_=0, record=args.rec)
        )
    env = {
        **os.environ,
        "PYTHONPYCACHEPREFIX": str(repo / ".pycache"),
        "CCSPEC_CRASH_DIR": str(repo / "crash"),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    (repo / "crash").mkdir()
    command = [args.ccspec, "watch", "specs/", "--interval", f"{args.interval:g}s"]
    if args.parallel:
        command += ["-j", str(args.parallel)]
    started = time.monotonic()
    log = open(repo / "watch.log", "w+")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(command, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT)
    sampler = Sampler(proc.pid, args.sample)
    threading.Thread(target=sampler.run, daemon=True).start()
    result: dict[str, object] = {}
    try:
        pending = wait_converged(specs, names, args.jobs, args.timeout)
        result["converge_s"] = round(time.monotonic() - started, 2) if not pending else None
        result["not_converged"] = pending
        time.sleep(args.settle)  # the last status writes and engines ending
        # the first resync after converging plans every spec (what it compares next time);
        # the steady idle cost is the next interval's
        result["idle_cpu_first_pct"] = idle_cpu(proc.pid, args.interval)
        result["idle_cpu_pct"] = idle_cpu(proc.pid, args.interval)
        sampler.sample()  # what an idle watch holds, after two resyncs
        idle = dict(sampler.last)
        result["idle"] = idle
        result["idle_rss_mb"] = round(idle.get("VmRSS", 0) / 1024, 1)
        result["fds_per_spec"] = round(idle.get("fds", 0) / args.specs, 2)
        result["threads_per_spec"] = round(idle.get("Threads", 0) / args.specs, 2)
        result["latency_idle_s"] = [
            round(probe(specs, out, args, f"idle-{i}"), 3) for i in range(args.probes)
        ]
        loaded = names[1 : 1 + args.load_specs]
        for name in loaded:
            (specs / f"{name}.yaml").write_text(
                spec_text(name, args.jobs, seconds=args.load_seconds, round_=1, record=args.rec)
            )
        time.sleep(min(2.0, args.load_seconds))  # their jobs are started
        result["latency_load_s"] = [
            round(probe(specs, out, args, f"load-{i}"), 3) for i in range(args.probes)
        ]
        if args.steady_after > 0:  # again once every loaded spec has been running a while
            time.sleep(args.steady_after)
            result["latency_steady_s"] = [
                round(probe(specs, out, args, f"steady-{i}"), 3) for i in range(args.probes)
            ]
        pending = wait_converged(specs, names, args.jobs, args.timeout)
        result["not_converged_after_load"] = pending
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        sampler.stop.set()
        log.seek(0)
        output = log.read()
        log.close()
    result["peak"] = sampler.peak
    result["jobs_at_once"] = most_at_once(out / "jobs.record") if args.record else None
    result["peak_rss_mb"] = round(sampler.peak.get("VmHWM", 0) / 1024, 1)
    result["exit_code"] = proc.returncode
    result["output_errors"] = [line for line in output.splitlines() if ERROR_WORDS.search(line)][
        :20
    ]
    result["status_errors"] = status_errors(specs)[:20]
    result["crash_files"] = sorted(p.name for p in (repo / "crash").iterdir())[:20]
    return result


def table(result: dict[str, object], args: argparse.Namespace) -> str:
    def ms(values: object) -> str:
        v = values if isinstance(values, list) else []
        if not v:
            return "-"
        return f"median {statistics.median(v) * 1000:.0f} ms, max {max(v) * 1000:.0f} ms"

    def count(key: str) -> int:
        value = result.get(key)
        return len(value) if isinstance(value, list) else 0

    idle = result.get("idle")
    idle = idle if isinstance(idle, dict) else {}
    peak = result.get("peak")
    peak = peak if isinstance(peak, dict) else {}
    rows = [
        ("size", f"{args.specs} specs x {args.jobs} jobs, resync {args.interval:g}s"),
        ("converged in", f"{result.get('converge_s')} s"),
        ("not converged", str(count("not_converged"))),
        ("idle CPU, first resync interval", f"{result.get('idle_cpu_first_pct')} % of a core"),
        ("idle CPU, next resync interval", f"{result.get('idle_cpu_pct')} % of a core"),
        ("save-to-launch, idle", ms(result.get("latency_idle_s"))),
        (f"save-to-launch, {args.load_specs} specs busy", ms(result.get("latency_load_s"))),
        (
            f"save-to-launch, {args.load_specs} specs busy for {args.steady_after:g}s",
            ms(result.get("latency_steady_s")),
        ),
        ("RSS idle / peak", f"{result.get('idle_rss_mb')} MB / {result.get('peak_rss_mb')} MB"),
        ("fds idle (per spec)", f"{idle.get('fds')} ({result.get('fds_per_spec')})"),
        ("threads idle (per spec)", f"{idle.get('Threads')} ({result.get('threads_per_spec')})"),
        ("peak processes under watch", str(peak.get("processes"))),
        ("most jobs at once (recorded)", str(result.get("jobs_at_once"))),
        (
            "errors (output / status / crash files)",
            f"{count('output_errors')} / {count('status_errors')} / {count('crash_files')}",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--specs", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=50, help="jobs per spec")
    parser.add_argument("--job-seconds", type=float, default=0.0, help="each job sleeps this")
    parser.add_argument("--interval", type=float, default=30.0, help="watch's resync period")
    parser.add_argument("--parallel", type=int, default=0, help="watch -j (default: its own)")
    parser.add_argument("--load-specs", type=int, default=50)
    parser.add_argument("--load-seconds", type=float, default=1.0)
    parser.add_argument("--probes", type=int, default=3, help="latency samples per case")
    parser.add_argument(
        "--steady-after",
        type=float,
        default=0.0,
        help="probe again this many seconds after the load began (0: not)",
    )
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after converging")
    parser.add_argument("--sample", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument(
        "--record", action="store_true", help="jobs record their start and end: most at once"
    )
    parser.add_argument("--ccspec", default=default_ccspec())
    parser.add_argument("--json", default=str(HERE / "results" / "watch_scale.json"))
    args = parser.parse_args(argv)
    args.load_specs = min(args.load_specs, args.specs - 1)

    with tempfile.TemporaryDirectory(prefix="ccspec-watch-scale-") as tmp:
        result = measure(args, Path(tmp))
    data = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "load": os.getloadavg()[0],
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "args": {k: v for k, v in vars(args).items() if k not in ("ccspec", "json")},
        **result,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    print(table(result, args))
    ok = not result["not_converged"] and not result["output_errors"]
    return 0 if ok and not result["status_errors"] and not result["crash_files"] else 1


if __name__ == "__main__":
    sys.exit(main())
