"""What `plan`, `apply` and `validate` print, through the real command line: the text plan's
lines, the JSON plan's host of a job a matrix creates at run time, apply's closing summary
line, and diagnostics that stay one line each whatever a name or path holds."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

from tests.test_apply import ccspec

FANOUT = """
    version: 1
    name: fan
    hosts:
      box: {type: local}
    jobs:
      src:
        run: echo '# ccspec output vals=[1, 2]'
      placed:
        needs: [src]
        matrix: {item: "{{ jobs.src.outputs.vals }}"}
        host: "{{ 'box' if matrix.item == 1 else 'local' }}"
        run: echo {{ matrix.item }}
      fixed:
        needs: [src]
        matrix: {item: "{{ jobs.src.outputs.vals }}"}
        host: box
        run: echo {{ matrix.item }}
"""


def write(repo: Path, text: str, name: str = "flow.yaml") -> None:
    (repo / name).write_text(textwrap.dedent(text))


def test_an_up_to_date_job_is_said_once(repo: Path) -> None:
    write(repo, "version: 1\nname: flow\njobs: {a: {run: 'true'}, b: {run: 'true'}}\n")
    assert ccspec(repo, "apply", "flow.yaml").returncode == 0
    write(repo, "version: 1\nname: flow\njobs: {a: {run: 'true'}, b: {run: 'true '}}\n")
    lines = ccspec(repo, "plan", "flow.yaml").stdout.splitlines()
    assert lines == [
        "flow: 1 up to date, 1 rerun",
        "  = a: up to date",
        "  ~ b: rerun (definition changed)",
    ]


def test_a_host_known_only_after_the_upstream_runs_is_null_in_the_json_plan(repo: Path) -> None:
    write(repo, FANOUT)
    done = ccspec(repo, "plan", "--json", "flow.yaml")
    assert done.returncode == 0, done.stderr
    jobs = {j["id"]: j for j in json.loads(done.stdout)["workflows"][0]["jobs"]}
    assert jobs["placed"]["dynamic"] and jobs["placed"]["host"] is None
    assert jobs["placed"]["known_after_apply"] == ["host"]
    # a host that is no template is known at plan time
    assert jobs["fixed"]["host"] == "box" and jobs["fixed"]["known_after_apply"] == []
    assert jobs["src"]["host"] == "local" and jobs["src"]["known_after_apply"] == []
    applied = ccspec(repo, "apply", "flow.yaml")
    assert applied.returncode == 0, applied.stderr
    assert "placed-1 started (attempt 1 on box)" in applied.stdout  # the template, rendered


def test_apply_ends_with_a_summary_line(repo: Path) -> None:
    write(
        repo,
        """
        version: 1
        name: flow
        jobs:
          a: {run: "true"}
          b: {run: "exit 3", needs: [a]}
          c: {run: "true", needs: [b]}
          d: {run: "true"}
        """,
    )
    first = ccspec(repo, "apply", "flow.yaml")
    assert first.returncode == 1
    last = first.stdout.splitlines()[-1]
    assert re.fullmatch(
        r"flow: 2 succeeded, 1 failed, 1 skipped in \d+\.\ds; "
        r"status flow\.status\.yaml, graph flow\.svg",
        last,
    ), last
    assert (repo / "flow.status.yaml").is_file() and (repo / "flow.svg").is_file()
    again = ccspec(repo, "apply", "flow.yaml")
    last = again.stdout.splitlines()[-1]
    assert last.startswith("flow: 2 up to date, 1 failed, 1 skipped in "), last
    write(repo, "version: 1\nname: flow\njobs: {a: {run: 'true'}, d: {run: 'true'}}\n")
    ccspec(repo, "apply", "flow.yaml")
    nothing = ccspec(repo, "apply", "flow.yaml")
    assert nothing.stdout.splitlines()[-1].startswith("flow: 2 up to date in "), nothing.stdout


def test_a_line_break_in_a_name_or_path_stays_escaped_in_text_diagnostics(repo: Path) -> None:
    write(
        repo,
        r"""
        version: 1
        name: flow
        jobs:
          a: {script: "bad\nname.sh"}
          b: {run: "echo {{ vars['x\ny'] }}"}
        """,
    )
    done = ccspec(repo, "validate", "flow.yaml")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("flow.yaml:") for line in lines), lines
    assert "script file 'bad\\nname.sh' does not exist" in lines[0]
    assert "(looked for " in lines[0] and "bad\\nname.sh)" in lines[0]
    assert "undefined variable vars.x\\ny" in lines[1]
    # the same lines where plan stops on them, and the JSON keeps the message as it is
    stopped = ccspec(repo, "plan", "flow.yaml").stderr.splitlines()
    assert len(stopped) == 3 and stopped[1:] == lines
    data = json.loads(ccspec(repo, "validate", "--format", "json", "flow.yaml").stdout)
    assert "vars.x\ny" in data["diagnostics"][1]["message"]
