"""The console script's exit (ccspec.cli.run): it skips tearing the interpreter down, so it
must still deliver all output, keep exit codes, run atexit handlers and wait for threads
that are not daemons, as a normal exit does. Real subprocesses throughout."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def _run(
    tmp: Path, body: str, argv: list[str], stdout: int | None = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    # `body` first: its atexit handlers run last, after those of the modules ccspec imports
    script = (
        textwrap.dedent("""
        import atexit, sys, threading, time
        from pathlib import Path
        atexit.register(lambda: Path("atexit-ran").write_text("yes"))
    """)
        + textwrap.dedent(body)
        + "\nimport ccspec.cli\nsys.argv = ['ccspec', *sys.argv[1:]]\nccspec.cli.run()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as usual
    return subprocess.run(
        [sys.executable, "-c", script, *argv],
        cwd=tmp,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        env=env,
    )


def test_block_buffered_output_all_arrives_and_atexit_runs(tmp_path: Path) -> None:
    jobs = "".join(f"  j{i}: {{run: 'true'}}\n" for i in range(3000))
    (tmp_path / "big.yaml").write_text(f"version: 1\njobs:\n{jobs}")
    with (tmp_path / "plan.txt").open("w") as out:  # a file: Python buffers stdout in blocks
        # output written at exit, unflushed, after the last of ccspec's own
        body = "atexit.register(lambda: sys.stdout.write('written at exit'))"
        done = _run(
            tmp_path,
            body,
            ["plan", "big.yaml", "--state", "st", "--detailed-exitcode"],
            stdout=out.fileno(),
        )
    assert done.returncode == 2, done.stderr  # something to do, and --detailed-exitcode says so
    text = (tmp_path / "plan.txt").read_text()
    assert sum(line.strip().startswith("+ ") for line in text.splitlines()) == 3000
    assert text.endswith("written at exit")
    assert (tmp_path / "atexit-ran").read_text() == "yes"


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        ("version: 1\njobs: {a: {run: 'true'}}\n", 0),
        ("version: 1\njobs: {a: {run: 'true', needs: [zz]}}\n", 1),
    ],
)
def test_exit_codes_are_kept(tmp_path: Path, spec: str, code: int) -> None:
    (tmp_path / "flow.yaml").write_text(spec)
    assert _run(tmp_path, "", ["validate", "flow.yaml"]).returncode == code
    assert _run(tmp_path, "", ["no-such-command"]).returncode == 2


def test_a_thread_that_is_not_a_daemon_is_waited_for(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text("version: 1\njobs: {a: {run: 'true'}}\n")
    body = """
        def late():
            time.sleep(0.5)
            Path("thread-ran").write_text("yes")
        threading.Thread(target=late).start()
        atexit.register(lambda: open("atexit-saw", "a").write("thread done;" if Path("thread-ran").exists() else "early;"))
    """
    assert _run(tmp_path, body, ["validate", "flow.yaml"]).returncode == 0
    assert (tmp_path / "thread-ran").read_text() == "yes"
    assert (
        tmp_path / "atexit-saw"
    ).read_text() == "thread done;"  # once, after the thread, as usual
