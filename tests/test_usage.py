"""Resource usage per attempt on real processes: a job that allocates ~50 MB and burns ~0.5 s
of CPU gets that recorded (state, `ccspec status`, the status file), through both wrappers
(`run:` under run-wrapper.sh, `script:` under job-wrapper.sh); a shell-only job gets its
shell's usage; a job whose peak is over its `resources.mem` gets a warning. The parsing of
the wrapper's usage line and the warning's thresholds are checked on their own."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from ccspec.spec.models import Resources
from ccspec.state.store import StateStore
from ccspec.usage import Usage, parse_usage, usage_warning

MB = 1024 * 1024

# allocates and touches 50 MB, then burns 0.5 s of CPU in this process
HUNGRY = """
import time
block = bytearray(50 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
start = time.process_time()
while time.process_time() - start < 0.5:
    pass
"""

SPEC = """
version: 1
name: u
jobs:
  hungry:
    run: python3 hungry.py
    resources:
      mem: 20M
  script:
    script: hungry.py
    interpreter: python3
  shell:
    run: echo only the shell
    resources:
      mem: 1G
"""


def ccspec(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccspec", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_local_jobs_record_wall_cpu_and_peak_memory(repo: Path) -> None:
    (repo / "hungry.py").write_text(HUNGRY)
    (repo / "u.yaml").write_text(textwrap.dedent(SPEC))
    done = ccspec(repo, "apply", "u.yaml", "-j", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    store = StateStore(repo / ".ccspec")
    try:
        last = store.last_attempts("u")
    finally:
        store.close()
    for job in ("hungry", "script"):
        used = last[job].usage
        assert used is not None and used.cpu is not None and used.max_rss is not None, job
        assert used.wall is not None and used.wall >= 0.45, (job, used)
        assert 0.45 <= used.cpu <= 10, (job, used)  # the 0.5 s burnt plus Python's start-up
        assert 50 * MB <= used.max_rss <= 400 * MB, (job, used)
    shell = last["shell"].usage
    assert shell is not None and shell.max_rss is not None and shell.cpu is not None
    assert 0 < shell.max_rss < 50 * MB and shell.cpu < 0.45
    assert "over the 20M asked" in (last["hungry"].usage_warning or "")
    assert "under 10% of the 1024M asked" in (last["shell"].usage_warning or "")
    assert last["script"].usage_warning is None  # it asked for nothing

    doc = yaml.safe_load((repo / "u.status.yaml").read_text())
    entry = doc["jobs"]["hungry"]
    assert entry["usage"]["max_rss_mb"] >= 50 and entry["usage"]["cpu"] >= 0.45
    assert "over the 20M asked" in entry["usage_warning"]

    shown = ccspec(repo, "status", "u.yaml")
    assert shown.returncode == 0, shown.stderr
    hungry = next(line for line in shown.stdout.splitlines() if line.split()[:1] == ["hungry"])
    assert " cpu " in hungry and " mem " in hungry and " wall " in hungry
    assert "warning: peak memory" in shown.stdout
    # `ccspec status` rewrites the status file from the state: the same usage
    again = yaml.safe_load((repo / "u.status.yaml").read_text())
    assert again["jobs"]["hungry"]["usage"] == entry["usage"]


def test_the_usage_line_in_ticks_and_in_seconds() -> None:
    assert parse_usage("t 12 3 2048 100.5 102.0\n") == Usage(1.5, 0.15, 2 * MB)
    assert parse_usage("s 0.25 0.5 4096 100,0 100,75") == Usage(0.75, 0.75, 4 * MB)
    assert parse_usage("t 1 0 - - 5.0") == Usage(None, 0.01, None)
    assert parse_usage("exit 0") is None and parse_usage("") is None


def test_the_warning_thresholds() -> None:
    asked = Resources(cpus=4, mem=1000)
    fits = Usage(wall=100.0, cpu=300.0, max_rss=500 * MB)
    assert usage_warning(fits, asked) is None
    assert "over the 1000M" in (usage_warning(Usage(100.0, 300.0, 1001 * MB), asked) or "")
    assert "under 10%" in (usage_warning(Usage(100.0, 300.0, 99 * MB), asked) or "")
    idle = usage_warning(Usage(wall=100.0, cpu=99.0, max_rss=500 * MB), asked)
    assert "0.99 of the 4 CPUs" in (idle or "")
    busy = usage_warning(Usage(wall=100.0, cpu=601.0, max_rss=500 * MB), asked)
    assert "over the 4 asked" in (busy or "")
    # a short job's CPU share says little: no CPU warning under 10 s
    assert usage_warning(Usage(wall=9.0, cpu=0.1, max_rss=500 * MB), asked) is None
    assert usage_warning(fits, Resources()) is None
    assert usage_warning(None, asked) is None
