"""`validate` warns when `| q` output sits inside quotes in a `run:` command (`q-inside-quotes`).

The quoted forms are injectable (shown for real in tests/test_hostile.py); the bare form is
the right one and must not warn. Warnings keep the spec valid and `validate`'s exit code 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ccspec.errors import Diagnostic
from ccspec.spec.quoting import CODE, quoted_q_uses
from tests.conftest import SpecWriter


def spec_with_run(run: str) -> str:
    return "version: 1\nvars: {v: x, w: y, q: z}\njobs:\n  a:\n    run: " + json.dumps(run) + "\n"


def warnings(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.code == CODE]


QUOTED = [
    ('echo "{{ vars.v | q }}"', "double"),
    ("echo '{{ vars.v | q }}'", "single"),
    ('echo "x {{ vars.v|q }} y"', "double"),
    ("echo $'{{ vars.v | q }}'", "$'...'"),
    ('echo "{{ vars.v | shell_quote }}"', "double"),
    ('echo "{{ vars.v | q | upper }}"', "double"),
    ('echo "{{ (vars.v | q) }}"', "double"),
    ('echo ok\necho "{{ vars.v | q }}"', "double"),  # on the command's second line
    ('echo "$(date)" "{{ vars.v | q }}"', "double"),  # a closed $(...) before it
]

BARE = [
    "echo {{ vars.v | q }}",
    'echo "a" {{ vars.v | q }} "b"',  # between quoted words, not inside them
    'echo "$(cat {{ vars.v | q }})"',  # inside $(...) quoting starts afresh
    "echo `cat {{ vars.v | q }}`",
    'echo \\" {{ vars.v | q }}',  # an escaped quote opens nothing
    "# it's\necho {{ vars.v | q }}",  # a quote in a comment opens nothing
    'echo "{{ vars.v }}"',  # no q: a plain value in quotes is the user's business
    'echo "{{ vars.q }}"',  # a variable named q, not the filter
    'echo "{{ vars.v | length }}" {{ vars.w | q }}',
]


@pytest.mark.parametrize(("run", "quotes"), QUOTED, ids=[r for r, _ in QUOTED])
def test_q_inside_quotes_warns(check: SpecWriter, run: str, quotes: str) -> None:
    report = check(spec_with_run(run))
    assert report.valid, report.diagnostics  # a warning, not an error
    found = warnings(report.diagnostics)
    assert len(found) == 1, found
    assert found[0].severity == "warning"
    assert (found[0].line, found[0].col) == (5, 10)
    assert f"inside {quotes} quotes" in found[0].message
    assert "remove the quotes" in found[0].message
    assert ("line 2 of the command" in found[0].message) == ("\n" in run)


@pytest.mark.parametrize("run", BARE)
def test_bare_q_and_other_quotes_do_not_warn(check: SpecWriter, run: str) -> None:
    report = check(spec_with_run(run))
    assert warnings(report.diagnostics) == []


def test_one_warning_per_place_and_matrix_jobs_once(check: SpecWriter) -> None:
    report = check("""
        version: 1
        vars: {v: x}
        jobs:
          a:
            matrix: {n: [1, 2, 3]}
            run: echo "{{ vars.v | q }}" '{{ matrix.n | q }}' {{ vars.v | q }}
    """)
    assert report.valid
    assert sorted(d.message.split(" sits")[0] for d in warnings(report.diagnostics)) == [
        "{{ matrix.n | q }}",
        "{{ vars.v | q }}",
    ]


def test_args_and_other_fields_are_not_shell(check: SpecWriter, repo: Path) -> None:
    (repo / "s.py").write_text("print(1)\n")
    report = check("""
        version: 1
        vars: {v: x}
        jobs:
          a: {script: s.py, args: ['"{{ vars.v | q }}"'], env: {X: '"{{ vars.v | q }}"'}}
    """)
    assert report.diagnostics == []


def test_a_broken_template_is_an_error_not_a_crash() -> None:
    assert quoted_q_uses('echo "{{ v | q ') == []


def test_cli_prints_the_warning_and_exits_0(repo: Path) -> None:
    (repo / "flow.yaml").write_text(
        textwrap.dedent("""\
        version: 1
        vars: {v: x}
        jobs:
          a: {run: 'echo "{{ vars.v | q }}"'}
    """)
    )
    result = subprocess.run(
        [sys.executable, "-m", "ccspec", "validate", "flow.yaml"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(
        "flow.yaml:4:12: warning: {{ vars.v | q }} sits inside double quotes"
    )
    assert result.stdout.rstrip().endswith("[q-inside-quotes]")
    assert "1 spec valid, 1 warning" in result.stderr
    as_json = subprocess.run(
        [sys.executable, "-m", "ccspec", "validate", "--format", "json", "flow.yaml"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert as_json.returncode == 0
    doc = json.loads(as_json.stdout)
    assert doc["valid"] is True
    assert [(d["severity"], d["code"]) for d in doc["diagnostics"]] == [
        ("warning", "q-inside-quotes")
    ]
    # an error beside the warning still fails
    (repo / "flow.yaml").write_text(
        (repo / "flow.yaml").read_text() + "  b: {run: x, needs: [zz]}\n"
    )
    both = subprocess.run(
        [sys.executable, "-m", "ccspec", "validate", "flow.yaml"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert both.returncode == 1
    assert "1 problem in 1 of 1 spec; 1 warning" in both.stderr
