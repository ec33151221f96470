"""What recording resource usage costs per local job: the 1,000-job layered DAG
(gen_layered.py --layers 10 --width 100) applied from scratch with `ccspec apply layered.yaml
-j 2` after `mkdir out`, by two source trees of ccspec side by side (before and after), in
paired rounds that alternate which goes first. Each run is a fresh folder and state.

Not a test. Prints per round the apply's wall time and the CPU time of the ccspec process and
everything it waited for (the launcher and the jobs), then the medians and the difference
per job.

    python bench/usage_bench.py --before /tmp/base --after . [--rounds 10] [--json out.json]

`--before` and `--after` are source trees (their `ccspec/` is imported via PYTHONPATH, with
this interpreter and its installed dependencies).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
JOBS = 1000


def one_apply(tree: Path, spec: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one apply from scratch with the ccspec in `tree`."""
    with tempfile.TemporaryDirectory(prefix="usage-bench-") as tmp:
        folder = Path(tmp)
        shutil.copy(spec, folder / "layered.yaml")
        (folder / "out").mkdir()
        env = {**os.environ, "PYTHONPATH": str(tree)}
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "ccspec", "apply", "layered.yaml", "-j", "2"],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if status != 0:
            raise SystemExit(f"apply with {tree} failed (wait status {status})")
        return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, str(HERE / "gen_layered.py"), "--layers", "10", "--width", "100", tmp],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        spec = Path(tmp) / "layered.yaml"
        kept = Path(tempfile.mkdtemp()) / "layered.yaml"
        shutil.copy(spec, kept)
    runs: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    for r in range(args.rounds):
        order = ["before", "after"] if r % 2 else ["after", "before"]
        for name in order:
            runs[name].append(one_apply(getattr(args, name).resolve(), kept))
        b, a = runs["before"][-1], runs["after"][-1]
        print(
            f"round {r + 1}: before {b[0]:.2f}s cpu {b[1]:.2f}s | after {a[0]:.2f}s cpu {a[1]:.2f}s"
        )
    result = {}
    for name, rows in runs.items():
        result[name] = {
            "wall_median": statistics.median(w for w, _ in rows),
            "cpu_median": statistics.median(c for _, c in rows),
        }
    diffs = [a[0] - b[0] for a, b in zip(runs["after"], runs["before"], strict=True)]
    result["paired_wall_diff_median_ms_per_job"] = statistics.median(diffs) / JOBS * 1000
    result["rounds"] = args.rounds
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
