"""Summarise a CSV column of numbers; report the statistics as ccspec outputs."""

import csv
import statistics
import sys


def main(path: str) -> None:
    with open(path, newline="") as fh:
        values = [float(row["value"]) for row in csv.DictReader(fh)]
    for done in (25, 50, 75):
        print(f'# ccspec progress={done} message="read {len(values)} values"', flush=True)
    print(f"# ccspec output count={len(values)}")
    print(f"# ccspec output mean={statistics.fmean(values):.4f}")
    print(f"# ccspec output stdev={statistics.pstdev(values):.4f}")
    print("# ccspec progress=100", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
