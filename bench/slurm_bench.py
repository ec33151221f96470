"""Benchmark Slurm packing and job arrays (issue 17, items 1 and 2).

Not a test. Against the single-node Slurm of `.ci/services-up.sh` (partition `debug`):
--jobs (200) short jobs (`run: "true"`), each way from a fresh folder and state:

- loop:  the plain way, a bash loop of `sbatch --parsable --wrap true`, then one squeue a
         second until all are COMPLETED (bench/remote_bench.py's SLURM_LOOP)
- pack:  `ccspec apply` of one matrix job of --jobs members with `pack: --pack` (50)
- array: `ccspec apply` of the same job with `array: true` (with --array)
- plain: `ccspec apply` of the same job without either (with --plain)

In paired rounds: each round runs every way once, in a random order, back to back, so
drift in the shared machine's load hits all alike. Target: the loop's median wall time is at
least 5x the pack's. Wall time includes start-up (each command is a subprocess).

    python bench/slurm_bench.py [--rounds 3] [--jobs 200] [--pack 50] [--array] [--plain]

Prints a Markdown table and writes JSON to bench/results/slurm.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import random
import statistics
import sys
import tempfile
from pathlib import Path

from apply_bench import git_revision, timed_child
from remote_bench import SLURM_LOOP
from validate_bench import child_environment, default_ccspec, require_ccspec

HERE = Path(__file__).resolve().parent
TARGET_X = 5.0  # the loop's median / the pack's median >= 5
TIMEOUT = 900.0


def spec(jobs: int, partition: str, workdir: Path, key: str) -> str:
    values = ", ".join(str(i) for i in range(jobs))
    return "\n".join(
        [
            "version: 1",
            "hosts:",
            f"  hpc: {{type: slurm, partition: {partition}, workdir: {workdir}}}",
            "jobs:",
            "  sweep:",
            "    host: hpc",
            f"    matrix: {{i: [{values}]}}",
            *([f"    {key}"] if key else []),
            '    run: "true"',
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--pack", type=int, default=50)
    parser.add_argument("--array", action="store_true", help="also `array: true`")
    parser.add_argument("--plain", action="store_true", help="also ccspec without pack/array")
    parser.add_argument("--partition", default="debug")
    parser.add_argument("--ccspec", default=default_ccspec())
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "slurm.json")
    args = parser.parse_args()
    require_ccspec(parser, args)
    rng = random.Random(args.seed)
    ways = {"loop": "", "pack": f"pack: {args.pack}"}
    if args.array:
        ways["array"] = "array: true"
    if args.plain:
        ways["plain"] = None  # type: ignore[assignment]
    times: dict[str, list[float]] = {w: [] for w in ways}
    with tempfile.TemporaryDirectory(prefix="ccspec-slurm-bench-") as tmp_name:
        tmp = Path(tmp_name)
        env, env_meta = child_environment(False, tmp)
        (tmp / "loop.sh").write_text(SLURM_LOOP)
        for r in range(args.rounds):
            order = list(ways)
            rng.shuffle(order)
            for way in order:
                folder = tmp / f"{way}-{r}"
                folder.mkdir()
                (folder / ".git").mkdir()  # the repository root for the path checks
                if way == "loop":
                    argv = ["bash", str(tmp / "loop.sh"), str(args.jobs)]
                else:
                    key = ways[way] or ""
                    (folder / "sweep.yaml").write_text(
                        spec(args.jobs, args.partition, folder / "w", key)
                    )
                    argv = [args.ccspec, "apply", "sweep.yaml"]
                with (folder / "out.log").open("wb") as out:
                    wall, code, _ = timed_child(argv, folder, env, TIMEOUT, out)
                if code != 0:
                    tail = (folder / "out.log").read_text(errors="replace")[-800:]
                    print(f"{way} failed (exit {code}):\n{tail}", file=sys.stderr)
                    return 1
                times[way].append(wall)
                print(f"round {r + 1}/{args.rounds} {way}: {wall:.1f}s", file=sys.stderr)
    medians = {w: statistics.median(t) for w, t in times.items()}
    ratio = medians["loop"] / medians["pack"]
    print(f"\n{args.jobs} jobs `true`, {args.rounds} paired rounds (random order each round)\n")
    print("| way | median s | runs s | loop / way |")
    print("|---|---|---|---|")
    for way, t in times.items():
        runs = ", ".join(f"{x:.1f}" for x in t)
        print(f"| {way} | {medians[way]:.1f} | {runs} | {medians['loop'] / medians[way]:.2f}x |")
    verdict = "holds" if ratio >= TARGET_X else "MISSED"
    print(f"\nTarget: the loop >= {TARGET_X:g}x the pack's time: {ratio:.1f}x ({verdict})")
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "revision": git_revision(),
                "machine": platform.platform(),
                "jobs": args.jobs,
                "pack": args.pack,
                "rounds": args.rounds,
                "seconds": times,
                "medians": medians,
                "loop_over_pack": ratio,
                "target_x": TARGET_X,
                "env": env_meta,
            },
            indent=2,
        )
        + "\n"
    )
    return 0 if ratio >= TARGET_X else 2


if __name__ == "__main__":
    sys.exit(main())
