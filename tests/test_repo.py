"""The repository's own promises: CI runs the README's test command, code is ruff-clean,
ruff-formatted and mypy --strict clean, no function or module in ccspec/ is too long,
templates and schemas ship inside the package."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def readme_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    assert block, "README must start with a sh block of set-up commands"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_ci_runs_the_readme_test_command() -> None:
    install, test = readme_commands()[:2]
    assert "ccspec" in install and "pytest" in test
    assert test in (REPO / ".ci" / "run").read_text().splitlines()


def test_ruff_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "ccspec", "tests", "bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


def test_mypy_strict_clean() -> None:
    """`mypy --strict` with the pydantic plugin ([tool.mypy] in pyproject.toml) finds nothing in ccspec/."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "ccspec", "tests", "bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


def test_pre_commit_hook_runs_validate() -> None:
    import yaml

    [hook] = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "ccspec-validate" and hook["entry"] == "ccspec validate"


def test_module_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ccspec", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0


MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500


def _too_long(path: Path) -> list[str]:
    """Each function over MAX_FUNCTION_LINES (its def to its last line, decorators excluded)
    and the module itself if over MAX_MODULE_LINES."""
    relative = path.relative_to(REPO).as_posix()
    source = path.read_text()
    found = []
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(f"{relative}: module of {lines} lines")
    for node in ast.walk(ast.parse(source, relative)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{relative}:{node.lineno}: {node.name} of {length} lines")
    return found


def test_no_long_functions_or_modules() -> None:
    """Issue 14 item 6: no function over 80 lines and no module over 500 lines in ccspec/."""
    too_long = [f for path in sorted((REPO / "ccspec").rglob("*.py")) for f in _too_long(path)]
    assert not too_long, "\n".join(too_long)
