"""bench/watch_scale.py in a reduced form (10 specs x 3 jobs, resync every 2 s): every spec
converges, nothing prints a traceback or lands in a status file as an error, and the
descriptors and threads watch holds once idle stay within a documented amount per spec.

Per spec today: a controller thread and its SQLite connection (the database, its WAL and
shared-memory files, and the handles the engine keeps); the figures at 200 specs are in
bench/README.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPECS = 10
FDS_PER_SPEC = 5  # 4.0 measured at 200 specs
THREADS_PER_SPEC = 1  # the workflow's controller
FDS_BASE = 40  # the interpreter, watchdog's inotify, the log, the state folder
THREADS_BASE = 10  # main, watchdog's observer and emitters, the picture warm-up


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
            *("--settle", "1", "--sample", "0.5", "--timeout", "60"),
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
