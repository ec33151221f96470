"""Benchmark `ccspec watch`: from saving a spec to its first job starting (issue 6, item 1).

Not a test. Starts `ccspec watch specs/` in a temporary repository, waits until it is idle,
then, `--runs` times, saves a spec and measures the time until the first job's command runs
(the job writes `time.time()` of its own start into a file). Two cases:

- new: a spec file that did not exist is written (a new workflow);
- edit: an existing spec is saved with a changed job (its definition changes, it reruns).

The clock is the wall clock of this machine on both sides (same host). Target: <= 300 ms.

    python bench/watch_bench.py [--runs 20] [--ccspec PATH] [--json bench/results/watch.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET_S = 0.300


def default_ccspec() -> str:
    candidate = Path(sys.executable).with_name("ccspec")
    return str(candidate) if candidate.exists() else "ccspec"


SPEC = """version: 1
jobs:
  first:
    run: python3 -c 'import time; open("{out}", "w").write(repr(time.time()))'  # {tag}
"""


def wait_file(path: Path, timeout: float = 30.0) -> float:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            text = path.read_text()
        except OSError:
            text = ""
        if text:
            return float(text)
        time.sleep(0.005)
    raise TimeoutError(f"{path} never appeared")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--ccspec", default=default_ccspec())
    parser.add_argument("--json", default=str(HERE / "results" / "watch.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ccspec-watch-bench-") as tmp:
        repo = Path(tmp)
        (repo / ".git").mkdir()
        specs = repo / "specs"
        specs.mkdir()
        out = repo / "out"
        out.mkdir()
        env = {**os.environ, "PYTHONPYCACHEPREFIX": str(repo / ".pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        proc = subprocess.Popen(
            [args.ccspec, "watch", "specs/", "--interval", "1h"],
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
        reader.start()
        try:
            time.sleep(2.0)  # started and idle
            results: dict[str, list[float]] = {"new": [], "edit": []}
            for i in range(args.runs):
                target = out / f"new-{i}"
                began = time.time()
                (specs / f"w{i}.yaml").write_text(SPEC.format(out=target, tag="v1"))
                results["new"].append(wait_file(target) - began)
                time.sleep(0.3)
            for i in range(args.runs):
                target = out / f"edit-{i}"
                began = time.time()
                (specs / "w0.yaml").write_text(SPEC.format(out=target, tag=f"edit {i}"))
                results["edit"].append(wait_file(target) - began)
                time.sleep(0.3)
        except TimeoutError:
            print("".join(lines[-40:]), file=sys.stderr)
            raise
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            reader.join(timeout=5)

    summary = {}
    print(f"{'case':<6} {'median':>8} {'p90':>8} {'max':>8}   target <= {TARGET_S * 1000:.0f} ms")
    for case, values in results.items():
        values.sort()
        median = statistics.median(values)
        p90 = values[int(0.9 * (len(values) - 1))]
        summary[case] = {
            "runs": len(values),
            "median_s": median,
            "p90_s": p90,
            "max_s": values[-1],
            "met": median <= TARGET_S,
            "values_s": values,
        }
        print(
            f"{case:<6} {median * 1000:7.0f}ms {p90 * 1000:7.0f}ms {values[-1] * 1000:7.0f}ms   "
            f"{'met' if median <= TARGET_S else 'MISSED'}"
        )
    data = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "target_s": TARGET_S,
        "cases": summary,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
