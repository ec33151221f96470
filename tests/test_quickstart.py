"""The quickstart (a shell script, a Python script and a notebook, chained) as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO


def apply(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccspec", "apply", "specs/"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_quickstart_runs_once_and_reruns_only_what_changed(repo: Path) -> None:
    specs = repo / "specs"
    specs.mkdir()
    shutil.copy(REPO / "specs" / "quickstart.yaml", specs)
    shutil.copytree(REPO / "specs" / "quickstart", specs / "quickstart")

    first = apply(repo)
    assert first.returncode == 0, first.stdout + first.stderr
    status = yaml.safe_load((specs / "quickstart.status.yaml").read_text())
    assert status["phase"] == "succeeded" and status["counts"] == {"succeeded": 3}
    jobs = status["jobs"]
    assert jobs["generate"]["outputs"]["rows"] == 500
    assert 40 < jobs["summarise"]["outputs"]["mean"] < 60
    # computed in the notebook from the parameters
    assert 0.5 < jobs["report"]["outputs"]["within_one_stdev"] < 0.65
    executed = list((repo / ".ccspec" / "logs" / "quickstart" / "report").glob("*.ipynb"))
    assert executed, "the executed notebook is kept next to the job's log"
    assert (specs / "quickstart.svg").read_bytes().startswith(b"<?xml")

    second = apply(repo)
    assert second.returncode == 0 and "0 to run, 3 up to date" in second.stdout

    script = specs / "quickstart" / "summarise.py"
    script.write_text(script.read_text() + "\n# an edit\n")
    third = apply(repo)
    assert third.returncode == 0
    assert (
        "~ summarise: rerun (script changed)" in third.stdout and "~ report: rerun" in third.stdout
    )
    assert "generate" not in third.stdout.split("up to date", 1)[1]
