"""Run the project's benchmarks for two builds of ccspec side by side (before and after a change).

Not a test. Each round runs every chosen benchmark once for each build, the two builds in a
random order, so load on a shared machine falls on both alike; the table shows each metric's
median over the rounds, per build, and after/before.

    python bench/before_after.py --before /tmp/base/.venv/bin/ccspec \\
        --after .venv/bin/ccspec [--rounds 3] [--only apply,nochange,watch,remote]

Benchmarks (each the script of its own name in bench/, with its JSON read back):
- apply: 1,000 jobs from scratch, ccspec/make per paired round (apply_bench.py part 1)
- nochange: the 10,000-job no-change apply, seconds and peak RSS (apply_bench.py part 2)
- watch: save-to-launch of a new and an edited spec (watch_bench.py)
- remote: 200 jobs over ssh (loop/ccspec) and on Slurm (ccspec/loop) (remote_bench.py)

Writes bench/results/before_after.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
Metrics = dict[str, float]


def _run(script: str, ccspec: str, args: list[str], read: Callable[[dict], Metrics]) -> Metrics:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        argv = [sys.executable, str(HERE / script), "--ccspec", ccspec, "--json", str(out), *args]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0 or not out.exists():
            tail = (done.stdout + done.stderr)[-2000:]
            raise SystemExit(f"{script} failed for {ccspec} (exit {done.returncode}):\n{tail}")
        return read(json.loads(out.read_text()))


def apply_small(ccspec: str) -> Metrics:
    def read(d: dict) -> Metrics:
        ratios = d["small"]["ratios"]
        return {"1,000 jobs: ccspec/make (paired)": ratios["ccspec/make_paired"]}

    flags = ["--no-large", "--no-snakemake", "--no-patched", "--no-floor", "--paired", "5"]
    return _run("apply_bench.py", ccspec, [*flags, "--runs", "1", "--warmup", "1"], read)


def no_change(ccspec: str) -> Metrics:
    def read(d: dict) -> Metrics:
        row = next(r for r in d["large"]["results"] if r["name"].endswith("(no change)"))
        return {
            "10,000 jobs no change: s": row["median"],
            "10,000 jobs no change: MB": row["max_rss_mb"],
        }

    return _run("apply_bench.py", ccspec, ["--no-small", "--no-snakemake", "--runs", "3"], read)


def watch(ccspec: str) -> Metrics:
    def read(d: dict) -> Metrics:
        cases = d["cases"]
        return {f"watch save-to-launch ({k}): ms": 1000 * cases[k]["median_s"] for k in cases}

    return _run("watch_bench.py", ccspec, ["--runs", "10"], read)


def remote(ccspec: str) -> Metrics:
    def read(d: dict) -> Metrics:
        ssh_row = d["ssh"]["results"][0]
        return {
            "ssh 200 jobs: s": ssh_row["median"],
            "ssh: loop/ccspec": d["ssh"]["loop/ccspec"],
            "Slurm 200 jobs: ccspec/loop": d["slurm"]["ccspec/loop"],
        }

    return _run("remote_bench.py", ccspec, ["--runs", "3", "--slow-runs", "1"], read)


BENCHES: dict[str, Callable[[str], Metrics]] = {
    "apply": apply_small,
    "nochange": no_change,
    "watch": watch,
    "remote": remote,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="ccspec executable before the change")
    parser.add_argument("--after", required=True, help="ccspec executable after the change")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated benchmarks")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "before_after.json")
    args = parser.parse_args()
    chosen = [name for name in args.only.split(",") if name]
    seen: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    for r in range(args.rounds):
        for name in chosen:
            sides = ["before", "after"]
            random.shuffle(sides)
            for side in sides:
                metrics = BENCHES[name](getattr(args, side))
                print(f"round {r + 1} {name} {side}: {metrics}", file=sys.stderr, flush=True)
                for key, value in metrics.items():
                    seen[side].setdefault(key, []).append(value)
    rows = []
    print("| metric | before | after | after/before |\n|---|---:|---:|---:|")
    for key in seen["before"]:
        before, after = (statistics.median(seen[s][key]) for s in ("before", "after"))
        rows.append({"metric": key, "before": seen["before"][key], "after": seen["after"][key]})
        print(f"| {key} | {before:.3g} | {after:.3g} | {after / before:.2f} |")
    args.json.write_text(json.dumps({"rounds": args.rounds, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
