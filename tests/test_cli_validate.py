"""`ccspec validate` through the real command line: exit codes, formats, folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

GOOD = "version: 1\njobs:\n  a: {run: echo a}\n  b: {run: echo b, needs: [a]}\n"
BAD = "version: 1\njobs:\n  a: {run: echo a, neds: [b]}\n  b: {run: echo b, needs: [zz]}\n"


def ccspec(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccspec", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )


@pytest.fixture
def folder(repo: Path) -> Path:
    (repo / "specs").mkdir()
    (repo / "specs" / "good.yaml").write_text(GOOD)
    (repo / "specs" / "good.status.yaml").write_text("not: [a spec\n")  # ignored: written by ccspec
    (repo / "specs" / "notes.txt").write_text("ignored")
    return repo / "specs"


def test_valid_folder_exits_0(folder: Path) -> None:
    result = ccspec("validate", str(folder))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 spec valid" in result.stdout


def test_invalid_exits_1_with_every_problem_as_file_line_col(folder: Path) -> None:
    (folder / "bad.yaml").write_text(BAD)
    result = ccspec("validate", "specs", cwd=folder.parent)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines == [
        "specs/bad.yaml:3:20: unknown key 'neds' in job 'a' (did you mean 'needs'?) [unknown-key]",
        "specs/bad.yaml:4:28: job 'b' needs unknown job 'zz'; check the name under `jobs:` [unknown-need]",
    ]
    assert "2 problems in 1 of 2 specs" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_format(folder: Path) -> None:
    (folder / "bad.yaml").write_text(BAD)
    result = ccspec("validate", "--format", "json", str(folder))
    data = json.loads(result.stdout)
    assert result.returncode == 1 and data["valid"] is False
    assert len(data["files"]) == 2
    assert {(d["line"], d["col"], d["code"]) for d in data["diagnostics"]} == {
        (3, 20, "unknown-key"),
        (4, 28, "unknown-need"),
    }


def test_github_format(folder: Path) -> None:
    (folder / "bad.yaml").write_text(BAD)
    result = ccspec("validate", "--format", "github", "specs", cwd=folder.parent)
    assert result.stdout.splitlines()[0] == (
        "::error file=specs/bad.yaml,line=3,col=20,title=ccspec unknown-key::"
        "unknown key 'neds' in job 'a' (did you mean 'needs'?)"
    )


def test_usage_errors_exit_2(folder: Path) -> None:
    assert ccspec("validate", str(folder / "missing.yaml")).returncode == 2
    assert ccspec("validate").returncode == 2
    assert ccspec("validate", "--format", "xml", str(folder)).returncode == 2
    result = ccspec("validate", "--var", "nope=1", str(folder))
    assert result.returncode == 2 and "no spec declares this variable" in result.stderr
    empty = folder.parent / "empty"
    empty.mkdir()
    assert ccspec("validate", str(empty)).returncode == 2


def test_var_override_is_typed(repo: Path) -> None:
    spec = repo / "v.yaml"
    spec.write_text(
        'version: 1\nvars: {n: 1}\njobs:\n  a:\n    matrix: {i: "{{ range(vars.n) | list }}"}\n    run: echo {{ matrix.i }}\n'
    )
    assert ccspec("validate", str(spec), "--var", "n=3").returncode == 0
    result = ccspec("validate", str(spec), "--var", "n=0")
    assert result.returncode == 1 and "is an empty list" in result.stdout


def test_duplicate_workflow_names_across_files(folder: Path) -> None:
    (folder / "other.yaml").write_text("version: 1\nname: good\njobs: {x: {run: x}}\n")
    result = ccspec("validate", str(folder))
    assert result.returncode == 1 and "workflow name 'good' is also used by" in result.stdout


def test_internal_error_exits_3_and_keeps_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A bug is simulated by breaking a library function in-process; the crash handler is what is tested.
    from ccspec import cli
    from ccspec.spec import validate as validate_module

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(validate_module, "validate_paths", broken)
    monkeypatch.setenv("CCSPEC_CRASH_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["validate", str(tmp_path)])
    assert exit_info.value.code == 3
    err = capsys.readouterr().err
    assert "internal error (RuntimeError: boom)" in err and "Traceback" not in err
    [crash] = tmp_path.glob("ccspec-crash-*.txt")
    assert "Traceback" in crash.read_text() and "boom" in crash.read_text()
    assert crash.stat().st_mode & 0o777 == 0o600  # private: a message may quote a secret
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--debug", "validate", str(tmp_path)])
    assert exit_info.value.code == 3 and "Traceback" in capsys.readouterr().err


def test_the_repository_specs_validate() -> None:
    result = ccspec("validate", str(REPO / "specs"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_console_script_and_help() -> None:
    result = ccspec("--help")
    assert result.returncode == 0 and "validate" in result.stdout
    assert ccspec("--version").stdout.startswith("ccspec, version")


def test_init_starts_a_repository_that_validates_and_runs(repo: Path) -> None:
    result = ccspec("init", str(repo), "--name", "first")
    assert result.returncode == 0, result.stderr
    assert (repo / "schemas" / "workflow.schema.json").read_text() == (
        REPO / "schemas" / "workflow.schema.json"
    ).read_text()
    assert ccspec("validate", str(repo / "specs")).returncode == 0
    applied = subprocess.run(
        [sys.executable, "-m", "ccspec", "apply", "specs"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert (repo / ".ccspec" / "logs" / "first" / "shout" / "1.log").read_text() == "HELLO\n"
    again = ccspec("init", str(repo), "--name", "first")
    assert again.returncode == 2 and "exists already" in again.stderr
    assert ccspec("init", str(repo), "--name", "Bad Name").returncode == 2
