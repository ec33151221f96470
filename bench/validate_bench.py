"""Benchmark `ccspec validate` on the layered DAG (issue 3, item 10); not a test.

Generates the layered DAG (default 10 layers x 1,000 jobs, each needing 2 jobs of the layer
before) with gen_layered.py into a temporary folder, then times as subprocesses, start-up
included: `ccspec validate layered.yaml`, `ccspec --help`, and for orientation
`snakemake -n --cores 1 -q` on the same DAG's Snakefile and `make -n` on its Makefile.
Each command runs under os.wait4, which gives the child's peak RSS (ru_maxrss).

    python bench/validate_bench.py [--runs 5] [--ccspec PATH] [--snakemake PATH]

Prints a Markdown table and writes JSON to bench/results/validate.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = {"ccspec validate": 1.0, "ccspec --help": 0.3}  # seconds, median wall time


@dataclass
class Result:
    name: str
    argv: list[str]
    times: list[float] = field(default_factory=list)  # wall seconds per run
    rss_mb: float = 0.0  # peak RSS over all runs (child and the children it reaped)
    error: str = ""

    @property
    def min(self) -> float:
        return min(self.times) if self.times else float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")


def run_once(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int, float, str]:
    """Run argv once; return (wall seconds, exit code, peak RSS in MB, output tail)."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(max(0, out.seek(0, os.SEEK_END) - 2000))
        tail = out.read().decode(errors="replace")
    return wall, code, usage.ru_maxrss / 1024, tail  # ru_maxrss is in KiB on Linux


def measure(
    name: str, argv: list[str], cwd: Path, env: dict[str, str], runs: int, warmup: int
) -> Result:
    result = Result(name, argv)
    for i in range(warmup + runs):
        wall, code, rss, tail = run_once(argv, cwd, env)
        if code != 0:
            result.error = f"exit {code}: {tail.strip()[-500:]}"
            break
        if i >= warmup:
            result.times.append(wall)
            result.rss_mb = max(result.rss_mb, rss)
    status = f"FAILED ({result.error})" if result.error else f"median {result.median:.3f} s"
    print(f"  {name}: {status}", file=sys.stderr)
    return result


def default_ccspec() -> str | None:
    beside = Path(sys.executable).parent / "ccspec"
    return str(beside) if beside.exists() else shutil.which("ccspec")


def default_snakemake() -> str | None:
    local = HERE / ".venv-snakemake" / "bin" / "snakemake"
    return shutil.which("snakemake") or (str(local) if local.exists() else None)


def version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except OSError as exc:
        return f"unavailable ({exc})"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if done.returncode == 0 and text else "?"


def table(results: list[Result], baseline: Result) -> str:
    lines = [
        "| command | min s | median s | peak RSS MB | target | x ccspec validate |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for r in results:
        if r.error:
            lines.append(f"| `{r.name}` | failed | | | | |")
            continue
        target = TARGETS.get(r.name)
        verdict = (
            "" if target is None else f"<= {target} s " + ("ok" if r.median <= target else "MISSED")
        )
        ratio = r.median / baseline.median if baseline.times else float("nan")
        lines.append(
            f"| `{r.name}` | {r.min:.3f} | {r.median:.3f} | {r.rss_mb:.0f} | {verdict} "
            f"| {ratio:.2f} |"
        )
    return "\n".join(lines)


def add_inherit_env(parser: argparse.ArgumentParser) -> None:
    """The benchmarks' shared --inherit-env option (see `child_environment`)."""
    parser.add_argument(
        "--inherit-env",
        action="store_true",
        help="run children in this environment as is (default: cache byte code in the temp "
        "folder via PYTHONPYCACHEPREFIX, even if PYTHONDONTWRITEBYTECODE is set)",
    )


def require_ccspec(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not (args.ccspec and shutil.which(args.ccspec)):
        parser.error(f"ccspec executable not found ({args.ccspec}); pass --ccspec PATH")


def child_environment(inherit: bool, folder: Path) -> tuple[dict[str, str], dict[str, str | None]]:
    """The environment benchmarked commands run in, and what of it goes into the JSON: byte
    code cached in `folder` as after a normal install (outside the repo), unless `inherit`."""
    env = dict(os.environ)
    if not inherit:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    return env, {k: env.get(k) for k in ("PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--ccspec", default=default_ccspec(), help="ccspec executable")
    parser.add_argument(
        "--snakemake",
        default=default_snakemake(),
        help="snakemake executable (default: on PATH, else bench/.venv-snakemake)",
    )
    parser.add_argument("--no-snakemake", action="store_true", help="skip Snakemake")
    parser.add_argument("--make", default=shutil.which("make"), help="make executable")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "validate.json")
    add_inherit_env(parser)
    args = parser.parse_args()
    require_ccspec(parser, args)
    if args.snakemake and not args.no_snakemake and not shutil.which(args.snakemake):
        parser.error(f"snakemake executable not found: {args.snakemake}")

    results: list[Result] = []
    env: dict[str, object] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cpus",
        "python": sys.version.split()[0],
        "ccspec": [args.ccspec, version([args.ccspec, "--version"])],
    }
    with tempfile.TemporaryDirectory(prefix="ccspec-bench-") as tmp:
        folder = Path(tmp)
        gen = [sys.executable, str(HERE / "gen_layered.py"), str(folder)]
        subprocess.run([*gen, "--layers", str(args.layers), "--width", str(args.width)], check=True)
        spec = folder / "layered.yaml"
        env["spec"] = {
            "layers": args.layers,
            "width": args.width,
            "jobs": args.layers * args.width,
            "bytes": spec.stat().st_size,
        }
        print(f"layered DAG: {env['spec']} in {folder}", file=sys.stderr)
        child_env, env["child_env"] = child_environment(args.inherit_env, folder)

        def bench(name: str, argv: list[str]) -> Result:
            results.append(measure(name, argv, folder, child_env, args.runs, args.warmup))
            return results[-1]

        validate = bench("ccspec validate", [args.ccspec, "validate", spec.name])
        bench("ccspec --help", [args.ccspec, "--help"])
        if args.snakemake and not args.no_snakemake:
            env["snakemake"] = [args.snakemake, version([args.snakemake, "--version"])]
            bench("snakemake -n", [args.snakemake, "-n", "--cores", "1", "-q"])
        else:
            print("  snakemake: not found, skipped (see bench/setup_snakemake.sh)", file=sys.stderr)
        if args.make:
            env["make"] = [args.make, version([args.make, "--version"])]
            bench("make -n", [args.make, "-n"])

    print(table(results, validate))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "environment": env,
        "runs": args.runs,
        "warmup": args.warmup,
        "targets_s": TARGETS,
        "results": [
            {
                **asdict(r),
                "min": r.min if r.times else None,
                "median": r.median if r.times else None,
            }
            for r in results
        ],
    }
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwritten: {args.json}", file=sys.stderr)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
