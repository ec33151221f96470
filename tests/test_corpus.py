"""A corpus of malformed specs, each with the diagnostics a good validator gives for it.

Every `tests/corpus/*.yaml` starts with comment lines of the form

    # expect: LINE:COL CODE: substring of the message

(COL may be `*`). The file must produce exactly as many diagnostics as it has expectations,
each expectation must match its own diagnostic (line, column, code, message substring), and
nothing may crash: bad input is reported, never raised. Side files that cases refer to (a
script, a broken notebook) live in `tests/corpus/files/`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ccspec.errors import Diagnostic
from ccspec.spec.validate import validate_paths

CORPUS = Path(__file__).parent / "corpus"
REPO = Path(__file__).parent.parent
CASES = sorted(CORPUS.glob("*.yaml"))
# Two cases checked through the command line too: a YAML-level one and a workflow-level one.
CLI_SAMPLES = ("duplicate_key_in_job.yaml", "several_problems.yaml")

_EXPECT = re.compile(
    r"^# expect: (?P<line>\d+):(?P<col>\d+|\*) (?P<code>[a-z0-9-]+): (?P<text>.+)$"
)


@dataclass(frozen=True)
class Expectation:
    line: int
    col: int | None  # None: any column
    code: str
    text: str

    def matches(self, line: int, col: int, code: str, message: str) -> bool:
        return (
            line == self.line
            and (self.col is None or col == self.col)
            and code == self.code
            and self.text in message
        )

    def __str__(self) -> str:
        return f"{self.line}:{'*' if self.col is None else self.col} {self.code}: {self.text}"


def expectations(path: Path) -> list[Expectation]:
    """The `# expect:` lines at the top of a corpus file (it may not be UTF-8 after them)."""
    found: list[Expectation] = []
    for raw in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        if not raw.startswith("#"):
            break
        match = _EXPECT.match(raw.rstrip())
        if match is None:
            if raw.startswith("# expect"):
                raise AssertionError(f"{path.name}: malformed expectation line {raw!r}")
            continue
        col = match["col"]
        found.append(
            Expectation(
                line=int(match["line"]),
                col=None if col == "*" else int(col),
                code=match["code"],
                text=match["text"].rstrip(),
            )
        )
    return found


Found = tuple[int, int, str, str]  # line, col, code, message


def _as_found(d: Diagnostic) -> Found:
    return (d.line, d.col, d.code, d.message)


def _match(expected: list[Expectation], found: list[Found]) -> dict[int, int]:
    """A one-to-one matching expectation index -> diagnostic index (maximum bipartite)."""
    owner: dict[int, int] = {}  # diagnostic index -> expectation index

    def assign(e: int, seen: set[int]) -> bool:
        for f, diag in enumerate(found):
            if f in seen or not expected[e].matches(*diag):
                continue
            seen.add(f)
            if f not in owner or assign(owner[f], seen):
                owner[f] = e
                return True
        return False

    for e in range(len(expected)):
        assign(e, set())
    return {e: f for f, e in owner.items()}


def _check(name: str, expected: list[Expectation], found: list[Found]) -> None:
    shown = (
        "\n".join(f"  {line}:{col} {code}: {message}" for line, col, code, message in found)
        or "  (none)"
    )
    wanted = "\n".join(f"  {e}" for e in expected)
    context = f"{name}\nexpected:\n{wanted}\ngot:\n{shown}"
    for *_, message in found:
        assert "Traceback" not in message, f"traceback in a diagnostic of {context}"
    assert len(found) == len(expected), f"wrong number of diagnostics for {context}"
    matched = _match(expected, found)
    missing = [str(e) for i, e in enumerate(expected) if i not in matched]
    assert not missing, f"no diagnostic matches {missing} in {context}"


def _ccspec(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("ccspec")
    command = [exe] if exe else [sys.executable, "-m", "ccspec"]
    return subprocess.run(
        [*command, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40, f"only {len(CASES)} corpus files"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_every_case_declares_expectations(path: Path) -> None:
    assert expectations(path), f"{path.name} has no `# expect: LINE:COL CODE: text` lines"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_corpus_case(path: Path) -> None:
    reports = validate_paths([path])
    assert len(reports) == 1
    report = reports[0]
    assert not report.valid, f"{path.name} was accepted as valid"
    assert report.workflow is None
    _check(path.name, expectations(path), [_as_found(d) for d in report.diagnostics])


@pytest.mark.parametrize("name", CLI_SAMPLES)
def test_cli_reports_sample_and_exits_1(name: str) -> None:
    path = CORPUS / name
    result = _ccspec("validate", str(path), "--format", "json")
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    out: dict[str, Any] = json.loads(result.stdout)
    assert out["valid"] is False
    diagnostics: list[dict[str, Any]] = out["diagnostics"]
    assert all(Path(d["file"]).name == name for d in diagnostics)
    _check(
        name,
        expectations(path),
        [(d["line"], d["col"], d["code"], d["message"]) for d in diagnostics],
    )

    text = _ccspec("validate", str(path))
    assert text.returncode == 1
    assert "Traceback" not in text.stdout + text.stderr
    for line in text.stdout.splitlines():
        assert re.match(r"^.+:\d+:\d+: .+ \[[a-z0-9-]+\]$", line), (
            f"not file:line:col: message: {line!r}"
        )


def test_cli_whole_corpus_folder() -> None:
    """The folder at once: exit 1 (not 3: no crash), every expected diagnostic, nothing more."""
    result = _ccspec("validate", str(CORPUS), "--format", "json")
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stderr}"
    out: dict[str, Any] = json.loads(result.stdout)
    assert len(out["files"]) == len(CASES)
    by_file: dict[str, list[Found]] = {}
    for d in out["diagnostics"]:
        by_file.setdefault(Path(d["file"]).name, []).append(
            (d["line"], d["col"], d["code"], d["message"])
        )
    for path in CASES:
        _check(path.name, expectations(path), by_file.get(path.name, []))
