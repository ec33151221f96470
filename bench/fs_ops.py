"""What the file-system operations of one job cost on a disk, and the time they add up to for
1,000 jobs: ccspec's per attempt against make's per target (bench/README.md, "fs_ops.py").

Not a test. A local job of ccspec makes, on the disk of its state folder, its job's folder
(first attempt), its run folder (the launch claim), its log, its pid file and its exit-code
file; make writes only the job's own output, which both do. Each step is timed for 1,000
jobs in a row, in a fresh folder under FOLDER (default: a temporary folder beside this
script, i.e. the disk the benchmarks run on); the table gives the median over the rounds.

    python bench/fs_ops.py [--folder DIR] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
COUNT = 1_000


def _files(run_dir: Path, names: tuple[str, ...]) -> None:
    for name in names:  # what a wrapper's `echo N > file` does
        fd = os.open(run_dir / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, b"12345\n")
        os.close(fd)


def _wrapper_files(job_dir: Path) -> None:
    _files(job_dir, ("1.log",))
    _files(job_dir / "1", ("pid", "exit_code"))


def _round(folder: Path) -> dict[str, float]:
    """Milliseconds per job of each step, for COUNT jobs laid out as ccspec lays them out
    (logs/WF/JOB/N/ and logs/WF/JOB/N.log), and of make's one output file per job."""
    base = Path(tempfile.mkdtemp(prefix="fsops-", dir=folder))
    steps: dict[str, Callable[[int], None]] = {
        "job folder (mkdir)": lambda i: os.mkdir(base / f"j{i}", 0o700),
        "run folder, the claim (mkdir)": lambda i: os.mkdir(base / f"j{i}" / "1", 0o700),
        "log, pid, exit code (3 files)": lambda i: _wrapper_files(base / f"j{i}"),
        "the job's output (1 file, as make)": lambda i: _files(base, (f"out{i}",)),
    }
    took: dict[str, float] = {}
    for name, step in steps.items():
        start = time.perf_counter()
        for i in range(COUNT):
            step(i)
        took[name] = (time.perf_counter() - start) * 1000 / COUNT
    shutil.rmtree(base)
    return took


def measure(folder: Path, rounds: int) -> dict[str, float]:
    """Median milliseconds per job of each step over the rounds."""
    runs = [_round(folder) for _ in range(rounds)]
    return {name: statistics.median(r[name] for r in runs) for name in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=HERE)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ms = measure(args.folder, args.rounds)
    print(f"| step, per job | ms (median of {args.rounds} rounds of {COUNT:,} jobs) |")
    print("|---|---:|")
    for name, value in ms.items():
        print(f"| {name} | {value:.3f} |")
    extra = sum(v for k, v in ms.items() if not k.startswith("the job's"))
    print(f"\nccspec's files per job: {extra:.3f} ms, i.e. {extra:.2f} s per 1,000 jobs")


if __name__ == "__main__":
    main()
