"""Hostile input: shell metacharacters through vars, path escapes by every route, YAML bombs
and an oversized spec. Every case must end in a clear message or a contained run, never in
a command the spec did not ask for, a file read or run outside the repository, or a traceback.

Runs real `ccspec validate` and `ccspec apply` processes (and validates in-process where a
subprocess adds nothing). The number of cases is counted by `pytest --collect-only`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from ccspec.errors import Diagnostic

HOSTILE = "$(touch pwned); rm -rf x; `id` | tee"
OUTSIDE_MESSAGE = "leads outside the repository"
ABSOLUTE_MESSAGE = "is absolute"


def run_ccspec(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccspec", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def errors(diagnostics: list[Diagnostic]) -> list[tuple[str, str]]:
    return [(d.code, d.message) for d in diagnostics if d.severity == "error"]


@pytest.fixture
def nest(tmp_path: Path) -> Path:
    """A repository `repo/` (with `.git`) inside a folder that also holds files outside it.

    Specs go in `repo/specs/`, so `../../x` from a spec is `tmp_path/x`: outside the repository.
    Each outside script, if ever run, leaves a marker file named after itself beside it."""
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "repo" / "specs").mkdir()
    for name in ("outside.py", "abs.py"):
        (tmp_path / name).write_text(
            "import pathlib, sys\n"
            f"pathlib.Path(__file__).with_name('ran-{name}').write_text(' '.join(sys.argv))\n"
        )
    (tmp_path / "secret.txt").write_text("not for the repository\n")
    (tmp_path / "outside.ipynb").write_text(
        json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )
    return tmp_path


def specs(nest: Path) -> Path:
    return nest / "repo" / "specs"


def write_spec(nest: Path, text: str) -> Path:
    path = specs(nest) / "flow.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def status_of(nest: Path) -> dict[str, dict[str, object]]:
    doc = yaml.safe_load((specs(nest) / "flow.status.yaml").read_text())
    return doc["jobs"]


def markers(nest: Path) -> list[str]:
    return sorted(p.name for p in nest.rglob("ran-*"))


# -- path escapes through a matrix made at run time ------------------------------------------

DYNAMIC = """
    version: 1
    {allow}
    jobs:
      up:
        run: echo '# ccspec output paths={paths}'
      work:
        matrix: "{{{{ {{'p': jobs.up.outputs.paths}} }}}}"
        script: "{{{{ matrix.p }}}}"
        needs: [up]
      after:
        run: touch ran-after
        needs: [work]
"""


def dynamic_spec(nest: Path, *, allow: bool = False) -> None:
    paths = json.dumps(["../../outside.py", str(nest / "abs.py")])
    write_spec(nest, DYNAMIC.format(paths=paths, allow="allow_outside_repo: true" if allow else ""))


def test_dynamic_matrix_scripts_outside_the_repository_are_not_run(nest: Path) -> None:
    dynamic_spec(nest)
    assert (
        run_ccspec(specs(nest), "validate", "flow.yaml").returncode == 0
    )  # paths unknown until `up` ran
    for _ in range(2):  # the second apply plans the fan-out from the recorded outputs
        result = run_ccspec(specs(nest), "apply", "flow.yaml")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert markers(nest) == []
        jobs = status_of(nest)
        assert jobs["work"]["state"] == "failed"
        reason = str(jobs["work"]["reason"])
        assert "script path '../../outside.py' leads outside the repository" in reason
        assert f"script path '{nest / 'abs.py'}' is absolute" in reason
        assert "allow_outside_repo: true" in reason
        assert jobs["after"]["state"] == "skipped"
        assert jobs["work"]["attempt"] == 0  # never launched


def test_dynamic_matrix_scripts_outside_run_when_allowed(nest: Path) -> None:
    """The same spec with `allow_outside_repo: true`: the scripts run (the check is what stops them)."""
    dynamic_spec(nest, allow=True)
    result = run_ccspec(specs(nest), "apply", "flow.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert markers(nest) == ["ran-abs.py", "ran-after", "ran-outside.py"]
