"""Descriptors above 1,024: `ccspec.fdwait.wait_readable`, and the runner's waits on pipes and
ssh channels when a process holds that many files (a `watch` over many specs does)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from ccspec.fdwait import wait_readable
from tests.services import services
from tests.test_apply import status, write
from tests.test_remote import ssh_host

# A child that raises its descriptor limit, holds 1,100 open files, then runs ccspec: every
# pipe and socket ccspec opens after that gets a number above select()'s limit of 1,024.
CROWDED = textwrap.dedent("""
    import os, resource, sys
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    r, w = os.pipe()
    assert r > 1024, r
    os.close(r), os.close(w)
    if sys.argv[1] == "--wait":
        from ccspec.fdwait import wait_readable
        r, w = os.pipe()
        print(wait_readable(r, 0.01), end=" ")
        os.write(w, b"x")
        print(wait_readable(r, 0.01), end=" ")
        os.close(w)
        os.read(r, 1)
        print(wait_readable(r, 0.01))  # end of file counts as readable: the next read returns b""
        sys.exit(0)
    sys.argv = ["ccspec", *sys.argv[1:]]
    from ccspec.cli import run
    run()
""")


def crowded(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CROWDED, *args], cwd=repo, capture_output=True, text=True, timeout=60
    )


def test_wait_readable_on_a_pipe_numbered_above_1024(tmp_path: Path) -> None:
    result = crowded(tmp_path, "--wait")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "True"]


def test_wait_readable_waits_for_data_and_times_out() -> None:
    r, w = os.pipe()
    try:
        assert wait_readable(r, 0) is False
        os.write(w, b"x")
        assert wait_readable(r, None) is True
    finally:
        os.close(r)
        os.close(w)


def test_apply_runs_local_and_ssh_jobs_with_descriptors_above_1024(repo: Path) -> None:
    """The local launcher's reply pipe and an ssh channel's pipe both get numbers above 1,024:
    select() refused them ("filedescriptor out of range in select()")."""
    svc = services()
    write(
        repo,
        f"""
        version: 1
        hosts:
          box: {ssh_host(svc, f"~/t/{uuid.uuid4().hex[:12]}")}
        jobs:
          here: {{run: "echo here > here.out"}}
          there: {{host: box, run: "echo there", needs: [here]}}
    """,
    )
    result = crowded(repo, "apply", "flow.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {k: v["state"] for k, v in status(repo)["jobs"].items()} == {
        "here": "succeeded",
        "there": "succeeded",
    }
    assert (repo / "here.out").read_text() == "here\n"
