"""Shell completion of workflow and job names through the real console script, driven the
way bash's completion function drives it (click's protocol: COMP_WORDS, COMP_CWORD and
_CCSPEC_COMPLETE=bash_complete), from the specs under specs/ and the recorded state."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SPEC = """\
version: 1
name: flow
jobs:
  prepare: {run: "true"}
  train: {run: "true", needs: [prepare], matrix: {model: [mlp, cnn]}}
"""


def complete(repo: Path, line: str, env: dict[str, str] | None = None) -> list[str]:
    """The names bash would offer for the last word of `line` (which may be empty)."""
    words = line.split(" ")
    script = shutil.which("ccspec", path=str(Path(sys.executable).parent))
    assert script is not None
    done = subprocess.run(
        [script],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            **(env or {}),
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(words) - 1),
            "_CCSPEC_COMPLETE": "bash_complete",
        },
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    items = [line.split(",", 1) for line in done.stdout.splitlines() if line]
    return [value for kind, value in items if kind == "plain"]


def apply(repo: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ccspec", "apply", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def specs(repo: Path) -> Path:
    (repo / "specs").mkdir()
    (repo / "specs" / "flow.yaml").write_text(SPEC)
    (repo / "specs" / "other.yaml").write_text("version: 1\njobs: {x: {run: 'true'}}\n")
    return repo


def test_workflows_and_jobs_come_from_the_specs_before_anything_ran(specs: Path) -> None:
    assert complete(specs, "ccspec logs ") == ["flow", "other"]
    assert complete(specs, "ccspec cancel f") == ["flow"]
    assert complete(specs, "ccspec graph ") == ["flow", "other"]
    assert complete(specs, "ccspec logs flow ") == ["prepare", "train"]
    assert complete(specs, "ccspec cancel flow p") == ["prepare"]
    assert not (specs / ".ccspec").exists()  # completing made no state folder


def test_recorded_jobs_are_offered_too_matrix_members_included(specs: Path) -> None:
    apply(specs, "specs/flow.yaml")
    (specs / "specs" / "flow.yaml").rename(specs / "flow.yaml")  # now only the state knows it
    assert complete(specs, "ccspec logs ") == ["flow", "other"]
    assert complete(specs, "ccspec logs flow ") == [
        "prepare",
        "train",
        "train-cnn",
        "train-mlp",
    ]
    assert complete(specs, "ccspec logs --state elsewhere ") == ["other"]
    state = {"CCSPEC_STATE": str(specs / ".ccspec")}
    assert complete(specs, "ccspec cancel flow train-", env=state) == ["train-cnn", "train-mlp"]


def test_replace_and_target_offer_the_jobs_of_the_paths_given(specs: Path) -> None:
    assert complete(specs, "ccspec apply specs/flow.yaml --target ") == ["prepare", "train"]
    assert complete(specs, "ccspec plan specs/other.yaml --replace ") == ["x"]
    assert complete(specs, "ccspec plan --replace ") == ["prepare", "train", "x"]  # specs/


def test_a_missing_or_broken_state_folder_completes_without_a_traceback(specs: Path) -> None:
    assert complete(specs, "ccspec logs --state nowhere flow ") == ["prepare", "train"]
    broken = specs / "broken"
    broken.mkdir()
    (broken / "state.db").write_text("not a database")
    # the specs still offer their names
    assert complete(specs, "ccspec logs --state broken flow ") == ["prepare", "train"]
    assert complete(specs, "ccspec cancel --state broken ") == ["flow", "other"]
    (specs / "specs" / "bad.yaml").write_text("jobs: [unclosed")
    assert complete(specs, "ccspec logs ") == ["flow", "other"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_readme_s_activation_scripts_exist(tmp_path: Path, shell: str) -> None:
    script = shutil.which("ccspec", path=str(Path(sys.executable).parent))
    assert script is not None
    done = subprocess.run(
        [script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "_CCSPEC_COMPLETE": f"{shell}_source"},
    )
    assert done.returncode == 0 and "_CCSPEC_COMPLETE" in done.stdout
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"_CCSPEC_COMPLETE={shell}_source ccspec" in readme
