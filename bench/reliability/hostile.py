"""The hostile-input row: runs the test files that feed ccspec hostile specs, outputs and
paths (malformed-spec corpus, fuzzing, sandbox escapes, path escapes) with pytest and counts
what passed and failed. The tests live in tests/; this only reports them. Called by run.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

from bench.reliability.lib import REPO_ROOT, TrialResult, child_env

HOSTILE_TESTS = (
    "tests/test_hostile.py",
    "tests/test_sandbox.py",
    "tests/test_fuzz.py",
    "tests/test_corpus.py",
)
OUTCOME = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")


def pytest_counts(summary: str) -> dict[str, int]:
    """{"passed": 12, "failed": 1, ...} from pytest's last summary line."""
    counts: dict[str, int] = {}
    for number, word in OUTCOME.findall(summary):
        counts["errors" if word == "error" else word] = int(number)
    return counts


def hostile_trial(timeout: float = 1500.0) -> TrialResult:
    """pytest on the hostile-input test files that exist (the others are named as missing)."""
    result = TrialResult(
        name="hostile input: " + ", ".join(f.removeprefix("tests/") for f in HOSTILE_TESTS),
        kind="hostile",
    )
    present = [f for f in HOSTILE_TESTS if (REPO_ROOT / f).exists()]
    missing = [f for f in HOSTILE_TESTS if f not in present]
    result.facts["missing_files"] = ", ".join(missing) or "none"
    if missing:
        result.note(f"not in this tree (not run): {', '.join(missing)}")
    if not present:
        result.error("none of the hostile-input test files exist")
        return result
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            *present,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        check=False,
    )
    result.seconds = time.monotonic() - started
    result.runs = 1
    result.count_exit(done.returncode)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    counts = pytest_counts(summary)
    result.facts.update({k: v for k, v in counts.items()})
    result.inputs = sum(counts.get(k, 0) for k in ("passed", "failed", "errors"))
    if counts.get("failed") or counts.get("errors") or done.returncode not in (0,):
        failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        result.error(f"pytest exited {done.returncode}: {summary}")
        for line in failed[:10]:
            result.error(line)
    return result
