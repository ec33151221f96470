"""Benchmark `ccspec apply` on the layered DAG against make and Snakemake (issue 4, item 12).

Not a test. Two parts, on the DAG of gen_layered.py (every job after the first layer needs 2
jobs of the layer before; each job is a trivial shell command writing out/NAME):

1. small (default 10 layers x 100 = 1,000 jobs), each run from scratch (fresh out/, fresh state):
   `ccspec apply layered.yaml -j 2`, `make -j2`, and `snakemake --cores 2` tuned and with
   default settings. Target: ccspec <= 2.0x make's wall time.
2. large (default 10 layers x 1,000 = 10,000 jobs): one full run of each tool, then its
   no-change run: `ccspec apply` (target <= 1.5 s and <= 200 MB peak RSS), `make -q`, `make`
   and `snakemake` (tuned and default settings).

Every command runs as a subprocess in the generated folder (start-up included) and is reaped
with os.wait4, whose ru_maxrss gives its peak RSS (and that of the children it reaped).

    python bench/apply_bench.py [--runs 3] [--ccspec PATH] [--snakemake PATH] [--no-large]

Prints Markdown tables and writes JSON to bench/results/apply.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from validate_bench import (  # the same tools, found the same way
    add_inherit_env,
    child_environment,
    default_ccspec,
    default_snakemake,
    require_ccspec,
    version,
)

HERE = Path(__file__).resolve().parent
SPEC = "layered.yaml"
STATE = ".ccspec-state"  # --state folder, inside the generated folder
TARGET_X_MAKE = 2.0  # small DAG: ccspec apply median <= 2.0x make -j2 median
TARGET_NOCHANGE_S = 1.5  # large DAG: no-change ccspec apply, median wall seconds
TARGET_NOCHANGE_MB = 200.0  # large DAG: no-change ccspec apply, peak RSS
# Snakemake without its waits and throttles: no 5 s latency wait, greedy scheduler instead of
# the ILP one, no cap of 100 job starts a second, no lock of the working directory.
SNAKEMAKE_TUNED = [
    "-q",
    "--latency-wait",
    "0",
    "--scheduler",
    "greedy",
    "--max-jobs-per-timespan",
    "1000000/1s",
    "--nolock",
]
# For the rows so labelled, ccspec's apply runs in-process with its status/SVG throttle
# (ccspec.report.writer.STATUS_EVERY) set to infinity, so NAME.status.yaml and NAME.svg are written
# once, at the end: it shows what the periodic status writes cost, and prepares the large
# DAG's state when a plain full apply is too slow. No ccspec file is changed.
PATCHED = "status/SVG only at the end, patched"
NEW_SHAPE = "a new graph shape: no kept layout"
PREPARE = "--prepare-apply"  # argv[1] of the patched child: python apply_bench.py --prepare-apply


def prepare_apply(argv: list[str]) -> None:
    """The patched child: `ccspec ARGV` with the status throttle set to infinity."""
    import ccspec.report.writer

    if not hasattr(ccspec.report.writer, "STATUS_EVERY"):
        sys.exit("ccspec.report.writer.STATUS_EVERY is gone: update apply_bench.prepare_apply")
    ccspec.report.writer.STATUS_EVERY = float("inf")
    from ccspec.cli import main

    main(argv)


# Floor rows: the same DAG run by a few lines of Python (subprocess.Popen + os.wait, at most
# -j at a time), each job launched as make does (sh -c), with bash (ccspec's `run:` shell), and
# the two ways ccspec has launched a `run:` job, each in its own session, with a run folder
# (pid and exit code files), a log file and ccspec's environment variables: `bash -c WRAPPER
# CMD` (one process a job; copy of templates/run-wrapper.sh, since commit 68bd285), and before
# that `/bin/sh job-wrapper.sh RUN_DIR bash -c CMD` (two processes a job).
FLOOR = "--floor"  # python apply_bench.py --floor LAYERS WIDTH JOBS MODE
FLOOR_MODES = {
    "sh": "sh -c",
    "bash": "bash -c",
    "wrapped": "bash -c wrapper, run dir, log",
    "sh-wrapper": "sh wrapper + bash -c, run dir, log",
}
RUN_WRAPPER = """trap 'echo $? > "$CCSPEC_RUN_DIR/exit_code"' EXIT
echo $$ > "$CCSPEC_RUN_DIR/pid"
__ccspec_command=$1
shift
eval "$__ccspec_command"
"""
JOB_WRAPPER = """run_dir=$1
shift
echo $$ > "$run_dir/pid"
trap : TERM INT HUP
"$@" < /dev/null
code=$?
echo "$code" > "$run_dir/exit_code"
exit "$code"
"""


def floor_run(argv: list[str]) -> None:
    """The floor child, in the DAG's folder: run every job once its 2 parents are done."""
    from gen_layered import parents

    layers, width, limit, mode = int(argv[0]), int(argv[1]), int(argv[2]), argv[3]
    work = Path(".floor")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    wrapper = work / "job-wrapper.sh"
    wrapper.write_text(JOB_WRAPPER)
    waiting: dict[str, int] = {}
    children: dict[str, list[str]] = {}
    ready: list[str] = []
    for layer in range(layers):
        for j in range(width):
            name = f"l{layer}-j{j}"
            ps = parents(layer, j, width)
            waiting[name] = len(ps)
            for p in ps:
                children.setdefault(p, []).append(name)
            if not ps:
                ready.append(name)
    ready.reverse()  # pop() takes layer 0 in order
    running: dict[int, tuple[str, subprocess.Popen[bytes]]] = {}
    left = len(waiting)
    while left:
        while ready and len(running) < limit:
            name = ready.pop()
            cmd = f"echo {name} > out/{name}"
            if mode in ("wrapped", "sh-wrapper"):
                run_dir = (work / "runs" / name).resolve()
                run_dir.mkdir(parents=True)
                if mode == "wrapped":
                    argv = ["bash", "-c", RUN_WRAPPER, "bash", cmd]
                else:
                    argv = ["/bin/sh", str(wrapper), str(run_dir), "bash", "-c", cmd]
                env = {**os.environ, "CCSPEC_JOB": name, "CCSPEC_RUN_DIR": str(run_dir)}
                with open(work / f"{name}.log", "ab") as log:
                    proc = subprocess.Popen(
                        argv,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
            else:
                shell = "/bin/sh" if mode == "sh" else "bash"
                proc = subprocess.Popen([shell, "-c", cmd], stdin=subprocess.DEVNULL)
            running[proc.pid] = (name, proc)
        pid, status = os.wait()
        name, proc = running.pop(pid)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            sys.exit(f"{name}: exit {proc.returncode}")
        left -= 1
        for child in children.get(name, []):
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    shutil.rmtree(work)


def interpreter_of(executable: str) -> str:
    """The Python a console script runs with (its #! line), else this one."""
    path = shutil.which(executable) or executable
    try:
        with open(path, "rb") as f:
            first = f.readline(500).decode(errors="replace")
    except OSError:
        return sys.executable
    if first.startswith("#!") and "python" in first:
        return first[2:].strip().split()[0]
    return sys.executable


@dataclass
class Result:
    name: str
    argv: list[str]
    jobs: int
    times: list[float] = field(default_factory=list)  # wall seconds per timed run
    rss_mb: list[float] = field(default_factory=list)  # peak RSS per timed run
    error: str = ""
    timed_out: bool = False
    timeout_s: float = 0.0

    @property
    def min(self) -> float:
        return min(self.times) if self.times else float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    @property
    def max_rss(self) -> float:
        return max(self.rss_mb) if self.rss_mb else float("nan")

    def as_json(self) -> dict[str, object]:
        ok = bool(self.times)
        return {
            **asdict(self),
            "min": self.min if ok else None,
            "median": self.median if ok else None,
            "ms_per_job": self.median / self.jobs * 1000 if ok else None,
            "max_rss_mb": self.max_rss if ok else None,
        }


def run_once(
    argv: list[str], cwd: Path, env: dict[str, str], timeout: float
) -> tuple[float, int, float, str]:
    """Run argv once; return (wall seconds, exit code, peak RSS in MB, output tail).

    The child gets its own session; on timeout its process group is killed (exit code -9).
    """
    with tempfile.TemporaryFile() as out:
        wall, code, usage = timed_child(argv, cwd, env, timeout, out)
        out.seek(max(0, out.seek(0, os.SEEK_END) - 2000))
        tail = out.read().decode(errors="replace")
    if code == -signal.SIGKILL:
        tail += f"\n(killed after the {timeout:.0f} s timeout)"
    return wall, code, usage.ru_maxrss / 1024, tail  # ru_maxrss is in KiB on Linux


def timed_child(
    argv: list[str], cwd: Path, env: dict[str, str], timeout: float, out: Any
) -> tuple[float, int, Any]:
    """Run argv in its own session with stdout and stderr into `out`; return (wall seconds,
    exit code, resource usage from wait4). On timeout its process group is killed (-9)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    timer = threading.Timer(timeout, _kill_group, (proc.pid,))
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, code, usage


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def snapshot(folder: Path) -> dict[str, int]:
    """Name -> mtime_ns of every file in folder/out: a no-change run must leave it as it is."""
    return {e.name: e.stat().st_mtime_ns for e in os.scandir(folder / "out")}


class Bench:
    def __init__(self, env: dict[str, str], runs: int, warmup: int, timeout: float) -> None:
        self.env = env
        self.runs = runs
        self.warmup = warmup
        self.timeout = timeout
        self.results: list[Result] = []

    def measure(
        self,
        name: str,
        argv: list[str],
        folder: Path,
        jobs: int,
        *,
        setup: Callable[[], None] | None = None,
        check: Callable[[], str] | None = None,
        runs: int | None = None,
        warmup: int | None = None,
        timeout: float | None = None,
    ) -> Result:
        """Time argv in folder: warmup + runs runs, each after setup() (untimed); check()
        returns an error message or "" after each run."""
        result = Result(name, argv, jobs)
        runs = self.runs if runs is None else runs
        warmup = self.warmup if warmup is None else warmup
        for i in range(warmup + runs):
            if setup is not None:
                setup()
            limit = self.timeout if timeout is None else timeout
            wall, code, rss, tail = run_once(argv, folder, self.env, limit)
            problem = f"exit {code}: {tail.strip()[-800:]}" if code != 0 else ""
            if code == -signal.SIGKILL:
                done = sum(1 for _ in os.scandir(folder / "out"))
                problem = f"killed after {limit:.0f} s, {done} of {jobs} outputs written"
                result.timed_out, result.timeout_s = True, limit
            if not problem and check is not None:
                problem = check()
            if problem:
                result.error = problem
                break
            if i >= warmup:
                result.times.append(wall)
                result.rss_mb.append(rss)
            kind = "warm-up" if i < warmup else f"run {i - warmup + 1}/{runs}"
            print(f"    {name} {kind}: {wall:.3f} s, {rss:.0f} MB", file=sys.stderr)
        status = f"FAILED ({result.error})" if result.error else f"median {result.median:.3f} s"
        print(f"  {name}: {status}", file=sys.stderr)
        self.results.append(result)
        return result

    def paired(
        self,
        a: tuple[str, list[str], Callable[[], None]],
        b: tuple[str, list[str], Callable[[], None]],
        folder: Path,
        jobs: int,
        rounds: int,
        check: Callable[[], str],
    ) -> dict[str, object]:
        """Side by side: `rounds` rounds, each running a and b once in a random order (each
        after its setup). A shared VM's speed drifts by 10-20% within minutes; rows measured
        one after the other put that drift into their ratio, a round's two runs share it."""
        times: dict[str, list[float]] = {a[0]: [], b[0]: []}
        for r in range(rounds):
            for name, argv, setup in random.sample([a, b], 2):
                setup()
                wall, code, _rss, tail = run_once(argv, folder, self.env, self.timeout)
                problem = f"exit {code}: {tail.strip()[-800:]}" if code != 0 else check()
                if problem:
                    return {"error": f"{name}: {problem}"}
                times[name].append(wall)
                print(f"    paired round {r + 1}/{rounds}: {name} {wall:.3f} s", file=sys.stderr)
        logs = [math.log(x / y) for x, y in zip(times[a[0]], times[b[0]], strict=True)]
        mean = statistics.fmean(logs)
        half = 2 * statistics.stdev(logs) / math.sqrt(len(logs)) if len(logs) > 1 else 0.0
        return {
            "rounds": rounds,
            "times": times,
            "medians": {k: statistics.median(v) for k, v in times.items()},
            "ratio_median_of_rounds": statistics.median(math.exp(x) for x in logs),
            "ratio_geometric_mean": math.exp(mean),
            "ratio_95": [math.exp(mean - half), math.exp(mean + half)],
        }


def generate(folder: Path, layers: int, width: int) -> dict[str, int]:
    gen = [sys.executable, str(HERE / "gen_layered.py"), str(folder)]
    subprocess.run([*gen, "--layers", str(layers), "--width", str(width)], check=True)
    spec = folder / SPEC
    return {
        "layers": layers,
        "width": width,
        "jobs": layers * width,
        "spec_bytes": spec.stat().st_size,
    }


def set_aside(path: Path) -> None:
    """Move a previous run's files out of the way (a rename) instead of deleting them.

    This VM's ext4 has no journal, and such a file system skips inodes freed in the last
    minutes when it allocates one (fs/ext4/ialloc.c, recently_deleted), scanning past them
    on every file created: a run right after deleting thousands of files pays for that
    scan in each create, which measures the deletion, not the tool (a 1,000-job ccspec run
    took 3.7 s that way and 2.1 s in a new folder; make 0.77 s and 0.61 s). Set-aside
    files are deleted when the benchmark ends, for every tool alike."""
    if path.exists() or path.is_symlink():
        trash = path.parent / ".set-aside"
        trash.mkdir(exist_ok=True)
        SET_ASIDE.add(trash)
        path.rename(trash / f"{path.name}.{time.monotonic_ns()}")


SET_ASIDE: set[Path] = set()  # folders of set-aside files, deleted at the end


def fresh_out(folder: Path) -> None:
    set_aside(folder / "out")
    (folder / "out").mkdir()


def fresh_ccspec(folder: Path) -> None:
    """No outputs, no recorded state, no status file or SVG beside the spec."""
    fresh_out(folder)
    set_aside(folder / STATE)
    for written in ("layered.status.yaml", "layered.svg"):
        set_aside(folder / written)


def fresh_snakemake(folder: Path) -> None:
    fresh_out(folder)
    set_aside(folder / ".snakemake")


def all_outputs(folder: Path, jobs: int) -> Callable[[], str]:
    def check() -> str:
        found = sum(1 for _ in os.scandir(folder / "out"))
        return "" if found == jobs else f"{found} files in out/, expected {jobs}"

    return check


def unchanged(folder: Path, jobs: int) -> Callable[[], str]:
    """A check that out/ holds all outputs and that no run touched them since the first call."""
    before: dict[str, int] = {}

    def check() -> str:
        now = snapshot(folder)
        if not before:
            before.update(now)
        if len(now) != jobs:
            return f"{len(now)} files in out/, expected {jobs}"
        touched = sum(1 for k, v in now.items() if before.get(k) != v)
        return f"{touched} outputs rewritten by a no-change run" if touched else ""

    return check


def git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(HERE), "status", "--porcelain", "--", "../ccspec"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + (" (ccspec/ modified)" if dirty else "")


def fmt(x: float | None, digits: int = 3, missing: str = "") -> str:
    return missing if x is None or x != x else f"{x:.{digits}f}"


def say(x: float | None) -> str:
    return fmt(x, 2, "n/a")


def table(results: list[Result], baseline: Result | None, base_label: str) -> str:
    lines = [
        f"| command | jobs | runs | min s | median s | ms/job | peak RSS MB | x {base_label} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.error:
            what = "killed" if r.timed_out else "failed"
            wall = f"> {r.timeout_s:.0f}" if r.timed_out else ""
            lines.append(f"| `{r.name}` | {r.jobs} | {what} | | {wall} | | | |")
            continue
        ratio = r.median / baseline.median if baseline and baseline.times else None
        lines.append(
            f"| `{r.name}` | {r.jobs} | {len(r.times)} | {fmt(r.min)} | {fmt(r.median)} "
            f"| {fmt(r.median / r.jobs * 1000, 2)} | {r.max_rss:.0f} | {fmt(ratio, 2)} |"
        )
    return "\n".join(lines)


def ratio(a: Result | None, b: Result | None) -> float | None:
    if a is None or b is None or not a.times or not b.times:
        return None
    return a.median / b.median


def verdict(value: float | None, limit: float) -> str:
    if value is None:
        return "n/a"
    return "ok" if value <= limit else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per command")
    parser.add_argument(
        "--paired",
        type=int,
        default=15,
        help="part 1: rounds of ccspec and make side by side, in random order (0 skips)",
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (small DAG)")
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--small-width", type=int, default=100, help="jobs a layer, part 1")
    parser.add_argument("--large-width", type=int, default=1000, help="jobs a layer, part 2")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="jobs at once for every tool")
    parser.add_argument("--ccspec", default=default_ccspec(), help="ccspec executable")
    parser.add_argument(
        "--snakemake",
        default=default_snakemake(),
        help="snakemake executable (default: on PATH, else bench/.venv-snakemake)",
    )
    parser.add_argument("--no-snakemake", action="store_true", help="skip Snakemake")
    parser.add_argument(
        "--default-runs",
        type=int,
        default=1,
        help="timed runs of Snakemake with default settings (slow; 0 skips them)",
    )
    parser.add_argument("--make", default=shutil.which("make"), help="make executable")
    parser.add_argument("--no-small", action="store_true", help="skip part 1")
    parser.add_argument("--no-large", action="store_true", help="skip part 2")
    parser.add_argument(
        "--no-patched",
        action="store_true",
        help=f"skip part 1's extra ccspec row ({PATCHED})",
    )
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="skip part 1's floor rows (the DAG run by a Python loop of Popen + os.wait)",
    )
    parser.add_argument(
        "--full-timeout",
        type=float,
        default=180,
        help="part 2: seconds allowed to the plain full `ccspec apply`; if it takes longer "
        f"it is killed and the full run is redone from scratch {PATCHED} (0: no limit)",
    )
    parser.add_argument(
        "--large-full",
        choices=("cli", "patched"),
        default="cli",
        help=f"part 2: how ccspec's full run is done: plain, or directly {PATCHED}",
    )
    parser.add_argument(
        "--large-dir",
        type=Path,
        help="keep part 2's folders here; a later run with the same folder reuses each "
        "tool's finished full run instead of repeating it (default: a temporary folder)",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds before a command is killed"
    )
    parser.add_argument("--json", type=Path, default=HERE / "results" / "apply.json")
    add_inherit_env(parser)
    args = parser.parse_args()
    require_ccspec(parser, args)
    if not (args.make and shutil.which(args.make)):
        parser.error(f"make executable not found ({args.make}); pass --make PATH")
    snakemake: str | None = None if args.no_snakemake else args.snakemake
    if snakemake and not shutil.which(snakemake):
        parser.error(f"snakemake executable not found: {snakemake}")
    if not snakemake and not args.no_snakemake:
        print("  snakemake: not found, skipped (see bench/setup_snakemake.sh)", file=sys.stderr)

    meta: dict[str, object] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cpus",
        "load_average_at_start": os.getloadavg(),
        "python": sys.version.split()[0],
        "ccspec": [args.ccspec, version([args.ccspec, "--version"]), git_revision()],
        "make": [args.make, version([args.make, "--version"])],
        "jobs_at_once": args.jobs,
        "runs": args.runs,
        "warmup": args.warmup,
        "snakemake_tuned_options": SNAKEMAKE_TUNED,
    }
    if snakemake:
        meta["snakemake"] = [snakemake, version([snakemake, "--version"])]
    j = str(args.jobs)
    ccspec_apply = [args.ccspec, "apply", SPEC, "--state", STATE, "-j", j]
    patched_apply = [interpreter_of(args.ccspec), str(Path(__file__).resolve()), PREPARE]
    patched_apply += ccspec_apply[1:]
    full_timeout: float | None = args.full_timeout or None
    make_run = [args.make, f"-j{j}"]
    sm_default = [snakemake or "snakemake", "--cores", j]
    sm_tuned = [*sm_default, *SNAKEMAKE_TUNED]
    payload: dict[str, object] = {"environment": meta}
    failed = False

    with (
        tempfile.TemporaryDirectory(prefix="ccspec-apply-bench-") as tmp,
        contextlib.ExitStack() as done_with,
    ):
        done_with.callback(lambda: [shutil.rmtree(t, ignore_errors=True) for t in SET_ASIDE])
        child_env, meta["child_env"] = child_environment(args.inherit_env, Path(tmp))
        bench = Bench(child_env, args.runs, args.warmup, args.timeout)

        if not args.no_small:  # part 1: from scratch, each tool in turn
            folder = Path(tmp) / "small"
            spec = generate(folder, args.layers, args.small_width)
            n = spec["jobs"]
            print(f"part 1, from scratch: {spec} in {folder}", file=sys.stderr)
            done = all_outputs(folder, n)
            small: list[Result] = []
            cc = bench.measure(
                f"ccspec apply -j {j}",
                ccspec_apply,
                folder,
                n,
                setup=lambda: fresh_ccspec(folder),
                check=done,
            )
            small.append(cc)
            # The picture of a graph is laid out once per shape and kept in the user's cache
            # (the warm-up run above laid it out): this row pays for the layout every time.
            layouts = (
                Path(child_env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                / "ccspec"
                / "layouts"
            )

            def fresh_shape() -> None:
                fresh_ccspec(folder)
                shutil.rmtree(layouts, ignore_errors=True)

            small.append(
                bench.measure(
                    f"ccspec apply -j {j} ({NEW_SHAPE})",
                    ccspec_apply,
                    folder,
                    n,
                    setup=fresh_shape,
                    check=done,
                )
            )
            cc_p = None
            if not args.no_patched:
                cc_p = bench.measure(
                    f"ccspec apply -j {j} ({PATCHED})",
                    patched_apply,
                    folder,
                    n,
                    setup=lambda: fresh_ccspec(folder),
                    check=done,
                )
                small.append(cc_p)
            mk = bench.measure(
                f"make -j{j}", make_run, folder, n, setup=lambda: fresh_out(folder), check=done
            )
            small.append(mk)
            floors: dict[str, Result] = {}
            if not args.no_floor:
                me = str(Path(__file__).resolve())
                for mode, label in FLOOR_MODES.items():
                    argv = [sys.executable, me, FLOOR, str(args.layers), str(args.small_width)]
                    floors[mode] = bench.measure(
                        f"floor: Python Popen + os.wait, {label}",
                        [*argv, j, mode],
                        folder,
                        n,
                        setup=lambda: fresh_out(folder),
                        check=done,
                    )
                    small.append(floors[mode])
            sm_t = sm_d = None
            if snakemake:
                sm_t = bench.measure(
                    f"snakemake --cores {j} (tuned)",
                    sm_tuned,
                    folder,
                    n,
                    setup=lambda: fresh_snakemake(folder),
                    check=done,
                )
                small.append(sm_t)
                if args.default_runs > 0:
                    sm_d = bench.measure(
                        f"snakemake --cores {j} (defaults)",
                        sm_default,
                        folder,
                        n,
                        setup=lambda: fresh_snakemake(folder),
                        check=done,
                        runs=args.default_runs,
                        warmup=0,
                    )
                    small.append(sm_d)
            pairs: dict[str, object] = {}
            if args.paired > 0 and cc.times and mk.times:
                pairs = bench.paired(
                    (f"ccspec apply -j {j}", ccspec_apply, lambda: fresh_ccspec(folder)),
                    (f"make -j{j}", make_run, lambda: fresh_out(folder)),
                    folder,
                    n,
                    args.paired,
                    done,
                )
                failed |= "error" in pairs
            ratios = {
                "ccspec/make": ratio(cc, mk),
                "ccspec/make_paired": pairs.get("ratio_median_of_rounds"),
                "ccspec/snakemake_tuned": ratio(cc, sm_t),
                "ccspec/snakemake_defaults": ratio(cc, sm_d),
                "ccspec_patched/make": ratio(cc_p, mk),
                **{f"floor_{m}/make": ratio(r, mk) for m, r in floors.items()},
            }
            per_job = (cc.median - mk.median) / n * 1000 if cc.times and mk.times else None
            payload["small"] = {
                "spec": spec,
                "results": [r.as_json() for r in small],
                "ratios": ratios,
                "ccspec_minus_make_ms_per_job": per_job,
                "paired": pairs,
                "target": {"ccspec/make": TARGET_X_MAKE},
                "met": verdict(ratios["ccspec/make"], TARGET_X_MAKE),
                "met_paired": verdict(ratios["ccspec/make_paired"], TARGET_X_MAKE),
            }
            print(f"\n### {n:,} jobs from scratch, {j} at a time\n")
            print(table(small, mk, "make"))
            print()
            print(
                f"ccspec/make = {say(ratios['ccspec/make'])} "
                f"(target <= {TARGET_X_MAKE}: {verdict(ratios['ccspec/make'], TARGET_X_MAKE)}); "
                f"ccspec/snakemake tuned = {say(ratios['ccspec/snakemake_tuned'])}; "
                f"ccspec/snakemake defaults = {say(ratios['ccspec/snakemake_defaults'])}; "
                f"ccspec - make = {say(per_job)} ms a job; "
                f"patched ccspec/make = {say(ratios['ccspec_patched/make'])}; "
                f"floor with ccspec's launch path / make = {say(ratios.get('floor_wrapped/make'))}"
            )
            if "ratio_median_of_rounds" in pairs:
                medians = pairs["medians"]
                low, high = pairs["ratio_95"]  # type: ignore[misc]
                # type: ignore[arg-type]
                print(
                    f"side by side, {pairs['rounds']} rounds of ccspec and make in random order: medians "
                    + ", ".join(f"{k} {v:.3f} s" for k, v in medians.items())  # type: ignore[union-attr]
                    + f"; ccspec/make per round: median {say(ratios['ccspec/make_paired'])} "
                    f"(target <= {TARGET_X_MAKE}: {verdict(ratios['ccspec/make_paired'], TARGET_X_MAKE)}), "
                    f"geometric mean {say(pairs['ratio_geometric_mean'])} (95%: {low:.2f}-{high:.2f})"
                )
            elif "error" in pairs:
                print(f"side by side: FAILED ({pairs['error']})")
            failed |= any(r.error for r in small)

        if not args.no_large:  # part 2: one full run of each tool, then no-change runs
            root = args.large_dir or Path(tmp) / "large"
            root.mkdir(parents=True, exist_ok=True)
            print(f"part 2, no change: under {root}", file=sys.stderr)
            large: list[Result] = []
            spec = {}

            def full_run(tool: str, attempts: list[tuple[str, list[str], float | None]]) -> Path:
                """Generate tool's folder and time one full run, each attempt from scratch
                until one finishes; skipped when a kept folder already has one. Returns the
                folder, with the marker file only if a full run finished."""
                nonlocal spec
                folder = root / tool
                marker = folder / ".bench-full-done"
                spec = generate_once(folder, args.layers, args.large_width)
                n = spec["jobs"]
                if marker.exists() and all_outputs(folder, n)() == "":
                    print(f"  {tool}: reusing the full run in {folder}", file=sys.stderr)
                    return folder
                setup = fresh_ccspec if tool == "ccspec" else fresh_snakemake
                for name, argv, limit in attempts:
                    full = bench.measure(
                        name,
                        argv,
                        folder,
                        n,
                        setup=lambda: setup(folder),
                        check=all_outputs(folder, n),
                        runs=1,
                        warmup=0,
                        timeout=limit,
                    )
                    large.append(full)
                    if not full.error:
                        marker.write_text(json.dumps(full.as_json()) + "\n")
                        break
                    if not full.timed_out:
                        break
                return folder

            def no_change(folder: Path, commands: list[tuple[str, list[str]]]) -> None:
                if not (folder / ".bench-full-done").exists():
                    return
                n = spec["jobs"]
                check = unchanged(folder, n)
                check()  # the outputs as the full run left them
                for name, argv in commands:
                    large.append(bench.measure(name, argv, folder, n, check=check, warmup=1))

            full_attempts: list[tuple[str, list[str], float | None]] = [
                (f"ccspec apply -j {j} (full run)", ccspec_apply, full_timeout)
            ]
            if full_timeout is not None or args.large_full == "patched":
                patched = (f"ccspec apply -j {j} (full run, {PATCHED})", patched_apply, None)
                full_attempts = (
                    [patched] if args.large_full == "patched" else [*full_attempts, patched]
                )
            folder = full_run("ccspec", full_attempts)
            no_change(folder, [(f"ccspec apply -j {j} (no change)", ccspec_apply)])
            folder = full_run("make", [(f"make -j{j} (full run)", make_run, None)])
            no_change(
                folder,
                [("make -q (no change)", [args.make, "-q"]), (f"make -j{j} (no change)", make_run)],
            )
            if snakemake:
                full_name = f"snakemake --cores {j} (tuned, full run)"
                folder = full_run("snakemake", [(full_name, sm_tuned, None)])
                commands = [(f"snakemake --cores {j} (tuned, no change)", sm_tuned)]
                if args.default_runs > 0:
                    commands.append((f"snakemake --cores {j} (defaults, no change)", sm_default))
                no_change(folder, commands)
            by_name = {r.name: r for r in large}
            cc_nc = by_name.get(f"ccspec apply -j {j} (no change)")
            sm_nc = by_name.get(f"snakemake --cores {j} (tuned, no change)")
            sm_dnc = by_name.get(f"snakemake --cores {j} (defaults, no change)")
            mk_nc = by_name.get("make -q (no change)")
            met = {
                "wall": verdict(cc_nc.median if cc_nc else None, TARGET_NOCHANGE_S),
                "rss": verdict(cc_nc.max_rss if cc_nc else None, TARGET_NOCHANGE_MB),
            }
            nc_ratios = {
                "ccspec/snakemake_tuned": ratio(cc_nc, sm_nc),
                "ccspec/snakemake_defaults": ratio(cc_nc, sm_dnc),
                "ccspec/make_q": ratio(cc_nc, mk_nc),
            }
            payload["large"] = {
                "spec": spec,
                "folder": str(root) if args.large_dir else None,
                "results": [r.as_json() for r in large],
                "no_change_ratios": nc_ratios,
                "target": {"no_change_s": TARGET_NOCHANGE_S, "no_change_mb": TARGET_NOCHANGE_MB},
                "met": met,
            }
            n = spec.get("jobs", 0)
            full_runs = [r for r in large if "full run" in r.name]
            mk_full = by_name.get(f"make -j{j} (full run)")
            print(f"\n### {n:,} jobs: one full run each\n")
            print(table(full_runs, mk_full, "make"))
            print(f"\n### {n:,} jobs: no change\n")
            print(table([r for r in large if r not in full_runs], cc_nc, "ccspec"))
            print()
            if cc_nc and cc_nc.times:
                print(
                    f"ccspec no change: median {cc_nc.median:.3f} s (target <= "
                    f"{TARGET_NOCHANGE_S} s: {met['wall']}), peak RSS {cc_nc.max_rss:.0f} MB "
                    f"(target <= {TARGET_NOCHANGE_MB:.0f} MB: {met['rss']}); "
                    f"x snakemake tuned = {say(nc_ratios['ccspec/snakemake_tuned'])}, "
                    f"x snakemake defaults = {say(nc_ratios['ccspec/snakemake_defaults'])}, "
                    f"x make -q = {say(nc_ratios['ccspec/make_q'])}"
                )
            # a full run killed at its time limit and then done patched is not a failure
            failed |= any(r.error and not r.timed_out for r in large)

    meta["load_average_at_end"] = os.getloadavg()
    meta["ccspec_revision_at_end"] = git_revision()  # others may commit during a long run
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwritten: {args.json}", file=sys.stderr)
    return 1 if failed else 0


def generate_once(folder: Path, layers: int, width: int) -> dict[str, int]:
    """Generate the DAG into folder unless the same files are already there (a kept folder)."""
    spec_file = folder / SPEC
    wanted = {"layers": layers, "width": width}
    info = folder / ".bench-spec.json"
    if spec_file.exists() and info.exists() and json.loads(info.read_text())["wanted"] == wanted:
        return dict(json.loads(info.read_text())["spec"])
    shutil.rmtree(folder, ignore_errors=True)
    spec = generate(folder, layers, width)
    info.write_text(json.dumps({"wanted": wanted, "spec": spec}) + "\n")
    return spec


if __name__ == "__main__":
    if sys.argv[1:2] == [PREPARE]:
        prepare_apply(sys.argv[2:])
    if sys.argv[1:2] == [FLOOR]:
        floor_run(sys.argv[2:])
        sys.exit(0)
    sys.exit(main())
