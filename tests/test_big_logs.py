"""Jobs that print hundreds of megabytes, on real processes: `ccspec apply` and `ccspec logs`
read logs in bounded chunks (their peak memory stays flat), the protocol lines at the end of
the log are still found, the job's recorded times are its own (not when ccspec finished
reading its log, nor when a later command collected it), and `ccspec logs` masks secrets even
where a read splits one."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ccspec.logfile import CHUNK
from ccspec.state.store import StateStore
from ccspec.states import JobState
from tests.test_apply import wait_for

BIG = 300_000_000  # bytes of ordinary output, in lines of 1,000 bytes
APPLY_MB = 200  # peak RSS of `ccspec apply` around that job
LOGS_MB = 60  # peak RSS of `ccspec logs` printing its log
TICK = 0.05  # seconds a file's time may trail the clock (coarse kernel timestamps)

# Two clocks of the job's own: when it began and when it was done printing. Then 300 MB of
# lines, stretches of 3 MB without a newline, an output line too long to be one (skipped),
# and at the very end a progress line (CRLF) and an output line without a final newline.
BIG_JOB = r"""
date +%s.%N > began
yes "$(head -c 999 /dev/zero | tr '\0' x)" | head -c 300000000
for i in 1 2 3; do head -c 3000000 /dev/zero | tr '\0' y; echo; done
printf '# ccspec output huge=%s\n' "$(head -c 2000000 /dev/zero | tr '\0' z)"
printf '# ccspec progress=90 message="nearly done"\r\n'
printf '# ccspec output last=42'
date +%s.%N > ended
"""


def _spec(repo: Path) -> None:
    run = textwrap.indent(BIG_JOB.strip(), " " * 8)
    (repo / "flow.yaml").write_text(
        "version: 1\njobs:\n  big:\n    run: |\n" + run + "\n"
        '  after: {needs: [big], run: "echo {{ jobs.big.outputs.last }} > after.txt"}\n'
    )


# Run a command from a fresh, small Python process and report its peak RSS: a child's
# ru_maxrss also counts the memory of the process that started it (up to its exec), so the
# test process itself must not start it. Its stdout is read in chunks: counted, its end kept.
MEASURE = r"""
import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
total, tail = 0, b""
while chunk := proc.stdout.read(1 << 20):
    total, tail = total + len(chunk), (tail + chunk)[-64:]
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "peak_mb": usage.ru_maxrss / 1024,
                  "bytes": total, "tail": tail.decode("latin-1")}))
"""


def _measured(repo: Path, *args: str, timeout: float = 600) -> dict[str, Any]:
    """`ccspec ARGS` in `repo`: its exit code, peak RSS in MB (it and the children it reaped),
    the bytes it printed and their last 64."""
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, sys.executable, "-m", "ccspec", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def test_a_job_printing_300_mb(repo: Path) -> None:
    _spec(repo)
    applied = _measured(repo, "apply", "flow.yaml")
    assert applied["code"] == 0
    peak = applied["peak_mb"]
    assert peak < APPLY_MB, f"ccspec apply peaked at {peak:.0f} MB"

    # the protocol lines at the end of 300 MB were found; the over-long one was skipped
    assert (repo / "after.txt").read_text().strip() == "42"
    store = StateStore(repo / ".ccspec")
    [attempt] = store.attempts("flow", "big")
    assert attempt.outputs == {"last": 42}
    assert attempt.message == "nearly done"
    log = repo / (attempt.log_path or "")
    size = log.stat().st_size
    assert size > BIG

    # the recorded times are the job's own: it began and ended (by its own clock, read from
    # files it wrote) within a moment of what ccspec recorded, and the end recorded is when
    # its wrapper wrote the exit code, not when ccspec had read 300 MB of log (file times
    # may trail the clock by a kernel tick)
    began, ended = float((repo / "began").read_text()), float((repo / "ended").read_text())
    exit_written = (repo / (attempt.run_dir or "") / "exit_code").stat().st_mtime
    assert attempt.started is not None and attempt.finished is not None
    assert -TICK <= began - attempt.started < 0.5
    assert -TICK <= exit_written - ended < 0.5
    assert abs(attempt.finished - exit_written) < 0.01, (
        f"recorded {attempt.finished - exit_written:.3f}s after the job ended"
    )

    # `ccspec logs` streams the whole log through a pipe with flat memory
    shown = _measured(repo, "logs", "flow", "big")
    assert shown["code"] == 0
    assert shown["bytes"] == size and shown["tail"].endswith(
        'nearly done"\r\n# ccspec output last=42'
    )
    peak = shown["peak_mb"]
    assert peak < LOGS_MB, f"ccspec logs peaked at {peak:.0f} MB"


def test_logs_mask_a_secret_that_a_read_splits(repo: Path) -> None:
    """The secret is printed so that it straddles the end of `ccspec logs`' first read."""
    secret = "sk-live-0123456789abcdef"
    (repo / "flow.yaml").write_text(
        textwrap.dedent(f"""
        version: 1
        vars: {{token: {secret}}}
        secrets: [token]
        jobs:
          leak:
            env: {{TOKEN: "{{{{ vars.token }}}}"}}
            run: head -c {CHUNK - 10} /dev/zero | tr '\\0' a; printf '%s\\n' "$TOKEN"; echo "again $TOKEN"
    """)
    )
    applied = subprocess.run(
        [sys.executable, "-m", "ccspec", "apply", "flow.yaml"],
        cwd=repo,
        capture_output=True,
        timeout=120,
    )
    assert applied.returncode == 0, applied.stderr
    shown = subprocess.run(
        [sys.executable, "-m", "ccspec", "logs", "flow", "leak"],
        cwd=repo,
        capture_output=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert secret.encode() not in shown.stdout
    masked = b"*" * len(secret)
    assert shown.stdout.endswith(masked + b"\nagain " + masked + b"\n")
    assert len(shown.stdout) == CHUNK - 10 + 2 * len(secret) + len(b"\nagain \n")


@pytest.mark.parametrize("command", ["apply", "status"])
def test_a_job_that_ended_unwatched_keeps_its_own_end(repo: Path, command: str) -> None:
    """The runner was killed; the job ended with nobody watching. Whoever collects it later
    (the next apply re-attaching, or `status` settling it) records when it ended, by the
    wrapper's exit-code file, not when it was collected."""
    (repo / "flow.yaml").write_text('version: 1\njobs:\n  bg: {run: "touch started; sleep 0.3"}\n')
    runner = subprocess.Popen(
        [sys.executable, "-m", "ccspec", "apply", "flow.yaml"],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: (repo / "started").exists())
    runner.kill()
    runner.wait()
    exit_file = repo / ".ccspec" / "logs" / "flow" / "bg" / "1" / "exit_code"
    wait_for(exit_file.exists)
    result = subprocess.run(
        [sys.executable, "-m", "ccspec", command, "flow.yaml"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [attempt] = StateStore(repo / ".ccspec").attempts("flow", "bg")
    assert attempt.state is JobState.SUCCEEDED and attempt.finished is not None
    assert abs(attempt.finished - exit_file.stat().st_mtime) < 0.01
