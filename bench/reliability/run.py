"""Run the reliability trials and regenerate docs/RELIABILITY.md.

    python bench/reliability/run.py [--reduced] [--seed N] [--only crash,concurrency,faults,hostile]

Full run: 20 SIGKILLs of apply in 50-job local+ssh+Slurm workflows, 20 rounds of each
concurrency trial, sshd and slurmctld outages, a 2 MB tmpfs state folder, a job printing
1 GiB, and the hostile-input tests (about 5-10 minutes). `--reduced` (CI): 3 kills of a
12-job workflow, 3 rounds of apply --wait, 10 fresh-state races, 200 MiB (1-3 minutes). Needs root (tmpfs, restarting the test
services) and the test services of .ci/services-up.sh. Writes the page (--output) and the
raw results as JSON (--json); exits 1 when a trial missed a target.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

from bench.reliability import concurrency, crash, faults, hostile, report
from bench.reliability.lib import REPO_ROOT, TrialResult

KINDS = ("crash", "concurrency", "faults", "hostile")


@dataclass(frozen=True)
class Sizes:
    """How hard each trial pushes."""

    kills: int
    crash_jobs: int
    rounds: int  # of apply --wait + watch
    race_rounds: int  # of commands on a fresh state folder (a race needs many tries to show)
    outage_seconds: float
    output_mb: int


FULL = Sizes(kills=20, crash_jobs=50, rounds=20, race_rounds=20, outage_seconds=3.0, output_mb=1024)
REDUCED = Sizes(kills=3, crash_jobs=12, rounds=3, race_rounds=10, outage_seconds=2.0, output_mb=200)


def trials(kinds: set[str], sizes: Sizes, seed: int) -> list[tuple[str, Callable[[], TrialResult]]]:
    """The selected trials, in the order they run, each with the name it reports under."""
    chosen: list[tuple[str, Callable[[], TrialResult]]] = []
    if "crash" in kinds:
        chosen.append(("crash", lambda: crash.crash_trial(sizes.kills, sizes.crash_jobs, seed)))
    if "concurrency" in kinds:
        chosen.append(("apply --wait + watch", lambda: concurrency.wait_trial(sizes.rounds)))
        chosen.append(("fresh state race", lambda: concurrency.race_trial(sizes.race_rounds)))
    if "faults" in kinds:
        chosen.append(("sshd outage", lambda: faults.ssh_outage_trial(sizes.outage_seconds)))
        chosen.append(("slurmctld outage", lambda: faults.slurm_outage_trial(sizes.outage_seconds)))
        chosen.append(("tmpfs", lambda: faults.full_disk_trial()))
        chosen.append(("big output", lambda: faults.big_output_trial(sizes.output_mb)))
    if "hostile" in kinds:
        chosen.append(("hostile input", lambda: hostile.hostile_trial()))
    return chosen


def run_one(name: str, trial: Callable[[], TrialResult]) -> TrialResult:
    """Run a trial; a trial that cannot run (services down, no root) is a failed row."""
    print(f"== {name} ...", file=sys.stderr, flush=True)
    try:
        result = trial()
    except Exception as exc:  # the harness itself broke: report it, go on with the rest
        traceback.print_exc()
        result = TrialResult(name=name, kind="harness")
        result.error(f"the trial could not run: {type(exc).__name__}: {exc}")
    verdict = "PASS" if result.ok else "FAIL"
    print(
        f"   {verdict} in {result.seconds:.0f}s: lost {result.lost}, duplicated {result.duplicated}, "
        f"exit codes {result.exit_codes}",
        file=sys.stderr,
        flush=True,
    )
    for error in result.errors:
        print(f"   ! {error}", file=sys.stderr)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reduced", action="store_true", help="the small CI version (1-3 minutes)")
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of the kill moments (default: random)"
    )
    parser.add_argument(
        "--only", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}"
    )
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "docs" / "RELIABILITY.md")
    parser.add_argument(
        "--json", type=Path, default=REPO_ROOT / "bench" / "results" / "reliability.json"
    )
    args = parser.parse_args(argv)
    args.kinds = {k.strip() for k in args.only.split(",") if k.strip()}
    if unknown := args.kinds - set(KINDS):
        parser.error(
            f"--only: unknown trial kind(s) {', '.join(sorted(unknown))}; choose from {', '.join(KINDS)}"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if importlib.util.find_spec("ccspec") is None:
        print(
            f"ccspec is not importable by {sys.executable}: run this with the Python that ccspec is "
            "installed in (e.g. .venv/bin/python bench/reliability/run.py)",
            file=sys.stderr,
        )
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    mode = "reduced" if args.reduced else "full"
    print(f"reliability trials ({mode}), seed {seed}", file=sys.stderr, flush=True)
    started = time.monotonic()
    results = [
        run_one(name, trial)
        for name, trial in trials(args.kinds, REDUCED if args.reduced else FULL, seed)
    ]
    facts = report.machine_facts(seed, mode, time.monotonic() - started)
    report.write(args.output, results, facts)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"facts": facts, "trials": [r.to_json() for r in results]}, indent=2) + "\n"
    )
    print(f"wrote {args.output} and {args.json}; seed {seed}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
