"""The pre-commit hook this repository ships (`.pre-commit-hooks.yaml`), run by the real
`pre-commit` on a temporary git repository: it validates the specs folder on every commit,
so deleting or breaking a script or notebook a spec uses fails the commit, not only a
changed spec.

Offline: the hook is declared as a `repo: local` hook with the shipped hook's own fields
(id, entry, args, files, exclude, pass_filenames), so pre-commit selects files and runs it
exactly as for a user; only `language` is `system` (this environment's `ccspec`) instead of
`python`, which would pip-install ccspec into a new virtualenv from the network."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC = """\
version: 1
name: flow
jobs:
  step: {script: flow/step.sh}
  report: {notebook: flow/report.ipynb, needs: [step]}
"""
NOTEBOOK = {
    "cells": [],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def shipped_hook() -> dict[str, object]:
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert isinstance(hook, dict)
    return hook


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "specs" / "flow").mkdir(parents=True)
    (repo / "specs" / "flow.yaml").write_text(SPEC)
    (repo / "specs" / "flow" / "step.sh").write_text("echo step\n")
    (repo / "specs" / "flow" / "report.ipynb").write_text(json.dumps(NOTEBOOK))
    (repo / "README").write_text("a repository with specs\n")
    hook = {k: v for k, v in shipped_hook().items() if k != "language"}
    config = {"repos": [{"repo": "local", "hooks": [{**hook, "language": "system"}]}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "specs")
    return repo


def env(repo: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # ccspec
        "PRE_COMMIT_HOME": str(repo.parent / "pre-commit-home"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, env=env(repo), timeout=60)


def pre_commit(repo: Path) -> subprocess.CompletedProcess[str]:
    """`pre-commit run` on what is staged, as `git commit` would run it."""
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env(repo),
        timeout=120,
    )


def test_the_hook_validates_the_folder_on_every_commit() -> None:
    hook = shipped_hook()
    assert hook["pass_filenames"] is False and hook["args"] == ["specs/"]
    assert hook["always_run"] is True  # a deleted file is in no hook's list of files


def test_a_valid_change_passes(git_repo: Path) -> None:
    (git_repo / "specs" / "flow" / "step.sh").write_text("echo step two\n")
    git(git_repo, "add", "-A")
    passed = pre_commit(git_repo)
    assert passed.returncode == 0, passed.stdout
    assert re.search(r"^ccspec validate\.+Passed$", passed.stdout, re.M), passed.stdout


def test_deleting_a_script_a_spec_uses_fails_the_hook(git_repo: Path) -> None:
    git(git_repo, "rm", "-q", "specs/flow/step.sh")  # the commit only deletes
    failed = pre_commit(git_repo)
    assert failed.returncode == 1, failed.stdout
    assert "script file 'flow/step.sh' does not exist" in failed.stdout
    assert "[missing-script]" in failed.stdout


def test_breaking_a_notebook_a_spec_uses_fails_the_hook(git_repo: Path) -> None:
    (git_repo / "specs" / "flow" / "report.ipynb").write_text("{not json")
    git(git_repo, "add", "-A")
    failed = pre_commit(git_repo)
    assert failed.returncode == 1 and "[bad-notebook]" in failed.stdout, failed.stdout
