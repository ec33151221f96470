"""bench/watch_scale.py in a reduced form (10 specs x 3 jobs, resync every 2 s): every spec
converges, nothing prints a traceback or lands in a status file as an error, and the
descriptors and threads watch holds once idle stay within a documented amount per spec.

Per idle spec: its controller's thread, and no descriptor (a run's local target closes its
selector, pidfds and wake-up pipe when the run ends; a converged controller closes its
SQLite connection; the reconciler compares stamps on its own connection, open during a
resync only): the descriptors held idle are a constant, the same at 10 specs as at 200.
All thirty jobs share `-j 2`: jobs record when they start and end, and at most two ran at
once. The figures at 200 specs are in bench/README.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPECS = 10
FDS_PER_SPEC = 0
THREADS_PER_SPEC = 1  # the workflow's controller
FDS_BASE = 15  # standard streams, watchdog's inotify, the compiled Graphviz, the log
THREADS_BASE = 8  # main, watchdog's observer and emitters


def test_watch_over_many_specs_converges_without_errors_within_bounded_resources(
    tmp_path: Path,
) -> None:
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "watch_scale.py"),
            *("--specs", str(SPECS), "--jobs", "3", "--interval", "2"),
            *("--load-specs", "3", "--load-seconds", "0.2", "--probes", "1"),
            *("--settle", "2", "--sample", "0.5", "--timeout", "60", "--parallel", "2", "--record"),
            *("--ccspec", str(Path(sys.executable).with_name("ccspec")), "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    result = json.loads(out.read_text())
    assert done.returncode == 0, done.stdout + done.stderr
    assert result["not_converged"] == [] and result["not_converged_after_load"] == []
    assert result["output_errors"] == [] and result["status_errors"] == []
    assert result["crash_files"] == []
    idle = result["idle"]
    assert idle["fds"] <= FDS_BASE + FDS_PER_SPEC * SPECS, idle
    assert idle["Threads"] <= THREADS_BASE + THREADS_PER_SPEC * SPECS, idle
    assert len(result["latency_idle_s"]) == 1 and len(result["latency_load_s"]) == 1
    assert result["jobs_at_once"] == 2  # -j 2 across all ten specs
