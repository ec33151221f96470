"""Hostile input: shell metacharacters through vars, path escapes by every route, YAML bombs
and an oversized spec. Every case must end in a clear message or a contained run: never a
command the spec did not write, a file outside the repository run or read, or a traceback.

Runs real `ccspec validate` and `ccspec apply` processes, jobs on this machine and on the
real ssh and Slurm test services; path rules are also checked in-process through
`validate_file` where a subprocess adds nothing. Count the cases with
`pytest --collect-only -q tests/test_hostile.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import yaml

from ccspec.errors import Diagnostic
from ccspec.spec.source import MAX_BYTES
from ccspec.spec.validate import validate_file
from tests.services import services, ssh
from tests.test_remote import slurm_host, ssh_host

HOSTILE = "$(touch pwned); rm -rf x; `id` | tee"
# Values that a shell would act on; each must reach the job as exactly these characters.
VALUES = [
    HOSTILE,
    "'; touch pwned; echo '",
    '"; touch pwned; echo "',
    "line one\nline two $(touch pwned) ${HOME} `touch pwned`",
    "*",
    "-c",
    "",
    "a\\b \\$HOME ~ >pwned <x &",
    "%s %n {0} %(x)s",
]
ARGV_SCRIPT = (
    "import json, os, sys\n"
    "print('# ccspec output argv=' + json.dumps(sys.argv[1:]))\n"
    "print('# ccspec output env=' + json.dumps(os.environ.get('HOSTILE_ENV')))\n"
)
CORPUS = Path(__file__).parent / "corpus"


def run_ccspec(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccspec", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def outside_errors(diagnostics: list[Diagnostic]) -> list[str]:
    return [d.message for d in diagnostics if d.code == "path-outside-repo"]


@pytest.fixture
def nest(tmp_path: Path) -> Path:
    """A repository `repo/` (with `.git`) inside a folder that also holds files outside it.

    Specs go in `repo/specs/`, so `../../x` from a spec is `tmp_path/x`: outside the repository.
    Each outside script or notebook, if ever run, leaves a marker `ran-NAME` beside itself;
    links inside the repository point out of it."""
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    inner = tmp_path / "repo" / "specs"
    (inner / "data").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    for name in ("outside.py", "abs.py"):
        (tmp_path / name).write_text(
            "import pathlib, sys\n"
            f"pathlib.Path(__file__).with_name('ran-{name}').write_text(' '.join(sys.argv))\n"
        )
    (tmp_path / "secret.txt").write_text("not for the repository\n")
    cell: dict[str, object] = {
        "cell_type": "code",
        "metadata": {},
        "outputs": [],
        "execution_count": None,
        "source": f"open({str(tmp_path / 'ran-outside.ipynb')!r}, 'w').write('ran')",
    }
    notebook = {
        "cells": [cell],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / "outside.ipynb").write_text(json.dumps(notebook))
    (inner / "inside.py").write_text("print('inside')\n")
    (inner / "data" / "ok.csv").write_text("a,b\n")
    (inner / "link.py").symlink_to(tmp_path / "outside.py")
    (inner / "link.ipynb").symlink_to(tmp_path / "outside.ipynb")
    (inner / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    (inner / "data" / "stolen.csv").symlink_to(tmp_path / "secret.txt")
    return tmp_path


def specs(nest: Path) -> Path:
    return nest / "repo" / "specs"


def write_spec(nest: Path, text: str) -> Path:
    path = specs(nest) / "flow.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def status_of(folder: Path) -> dict[str, dict[str, object]]:
    doc = yaml.safe_load((folder / "flow.status.yaml").read_text())
    jobs: dict[str, dict[str, object]] = doc["jobs"]
    return jobs


def markers(nest: Path) -> list[str]:
    return sorted(p.name for p in nest.rglob("ran-*"))


def pwned(folder: Path) -> list[Path]:
    return sorted(folder.rglob("pwned"))


# -- shell metacharacters through vars ---------------------------------------------------------


def argv_spec(host: str = "", hosts: str = "") -> str:
    """A job that gets every hostile value as one argument (and one as an env value), and a
    `run:` job that passes them through `| q`; both print what they received as outputs."""
    names = [f"v{i}" for i in range(len(VALUES))]
    args = json.dumps([f"{{{{ vars.{n} }}}}" for n in names])
    quoted = " ".join(f"{{{{ vars.{n} | q }}}}" for n in names)
    return "\n".join(
        [
            "version: 1",
            "vars: " + json.dumps(dict(zip(names, VALUES, strict=True))),
            hosts,
            "jobs:",
            f"  by-args: {{script: argv.py, args: {args}, env: {{HOSTILE_ENV: '{{{{ vars.v0 }}}}'}}{host}}}",
            f"  by-run: {{run: {json.dumps('python3 argv.py ' + quoted)}{host}}}",
        ]
    )


def check_argv_run(folder: Path, result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = status_of(folder)
    assert jobs["by-args"]["outputs"] == {"argv": VALUES, "env": HOSTILE}
    assert jobs["by-run"]["outputs"] == {"argv": VALUES, "env": None}
    assert pwned(folder) == []


def test_metacharacters_in_args_and_q_never_reach_a_shell_here(repo: Path) -> None:
    (repo / "argv.py").write_text(ARGV_SCRIPT)
    (repo / "flow.yaml").write_text(argv_spec())
    check = run_ccspec(repo, "validate", "flow.yaml")
    assert check.returncode == 0 and "warning" not in check.stdout, check.stdout
    check_argv_run(repo, run_ccspec(repo, "apply", "flow.yaml"))


def test_metacharacters_given_with_var_on_the_command_line(repo: Path) -> None:
    (repo / "argv.py").write_text(ARGV_SCRIPT)
    (repo / "flow.yaml").write_text(
        'version: 1\nvars: {v: x}\njobs:\n  a: {script: argv.py, args: ["{{ vars.v }}"]}\n'
        '  b: {run: "python3 argv.py {{ vars.v | q }}"}\n'
    )
    result = run_ccspec(repo, "apply", "flow.yaml", "--var", f"v={HOSTILE}")
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = status_of(repo)
    assert jobs["a"]["outputs"] == {"argv": [HOSTILE], "env": None}
    assert jobs["b"]["outputs"] == {"argv": [HOSTILE], "env": None}
    assert pwned(repo) == []


def test_metacharacters_never_reach_a_shell_on_an_ssh_host(repo: Path) -> None:
    svc = services()
    remote = f"~/t/{uuid.uuid4().hex[:12]}"
    (repo / "argv.py").write_text(ARGV_SCRIPT)
    hosts = f"hosts: {{box: {ssh_host(svc, remote)}}}"
    (repo / "flow.yaml").write_text(argv_spec(", host: box", hosts))
    check_argv_run(repo, run_ccspec(repo, "apply", "flow.yaml"))
    found = ssh(f"find {remote} -name pwned")
    assert found.returncode == 0 and found.stdout == "", found.stdout + found.stderr


def test_metacharacters_never_reach_a_shell_on_slurm(repo: Path) -> None:
    svc = services()
    (repo / "argv.py").write_text(ARGV_SCRIPT)
    hosts = f"hosts: {{hpc: {slurm_host(svc, repo / 'slurm-work')}}}"
    (repo / "flow.yaml").write_text(argv_spec(", host: hpc", hosts))
    check_argv_run(repo, run_ccspec(repo, "apply", "flow.yaml", timeout=180))


def test_q_inside_double_quotes_is_injectable_and_validate_warns(repo: Path) -> None:
    """Why `q-inside-quotes` exists: this command runs the value's `$(...)`."""
    (repo / "flow.yaml").write_text(
        'version: 1\nvars: {v: "$(touch pwned)"}\njobs:\n  a: {run: \'echo "{{ vars.v | q }}"\'}\n'
    )
    check = run_ccspec(repo, "validate", "flow.yaml")
    assert check.returncode == 0
    assert "warning:" in check.stdout and "[q-inside-quotes]" in check.stdout
    assert run_ccspec(repo, "apply", "flow.yaml").returncode == 0
    assert pwned(repo) == [repo / "pwned"]


# -- path escapes, seen by validate ------------------------------------------------------------

ROUTES = [
    # (job fields, what the message says)
    ({"script": "../../outside.py"}, "script path '../../outside.py' leads outside the repository"),
    ({"script": "{NEST}/outside.py"}, "script path '{NEST}/outside.py' is absolute"),
    ({"script": "~/outside.py"}, "script path '~/outside.py' is absolute"),
    ({"script": "link.py"}, "script path 'link.py' leads outside the repository"),
    ({"script": "linkdir/outside.py"}, "script path 'linkdir/outside.py' leads outside"),
    ({"script": "{{ vars.up }}/outside.py"}, "script path '../../outside.py' leads outside"),
    ({"script": "data/../../../outside.py"}, "leads outside the repository"),
    (
        {"script": "{{ matrix.p }}", "matrix": {"p": ["../../outside.py"]}},
        "script path '../../outside.py' leads outside",
    ),
    ({"notebook": "../../outside.ipynb"}, "notebook path '../../outside.ipynb' leads outside"),
    ({"notebook": "{NEST}/outside.ipynb"}, "notebook path '{NEST}/outside.ipynb' is absolute"),
    ({"notebook": "link.ipynb"}, "notebook path 'link.ipynb' leads outside the repository"),
    (
        {"run": "true", "inputs": ["../../secret.txt"]},
        "input path '../../secret.txt' leads outside",
    ),
    (
        {"run": "true", "inputs": ["{NEST}/secret.txt"]},
        "input path '{NEST}/secret.txt' is absolute",
    ),
    ({"run": "true", "inputs": ["../../*.txt"]}, "input path '../../*.txt' leads outside"),
    (
        {"run": "true", "inputs": ["linkdir/secret.txt"]},
        "input path 'linkdir/secret.txt' leads outside",
    ),
    ({"run": "true", "inputs": ["linkdir/*.txt"]}, "input path 'linkdir/*.txt' leads outside"),
    (
        {"run": "true", "inputs": ["data/*.csv"]},
        "input 'data/*.csv' matches 'data/stolen.csv', a link to",
    ),
    ({"run": "true", "inputs": ["data"]}, "input 'data' matches 'data/stolen.csv', a link to"),
    (
        {"run": "true", "inputs": ["{{ vars.up }}/secret.txt"]},
        "input path '../../secret.txt' leads",
    ),
    ({"run": "true", "workdir": "/etc"}, "workdir path '/etc' is absolute"),
    ({"run": "true", "workdir": "~"}, "workdir path '~' is absolute"),
    (
        {"run": "true", "workdir": "../../.."},
        "workdir path '../../..' leads outside the repository",
    ),
    ({"run": "true", "workdir": "linkdir"}, "workdir path 'linkdir' leads outside the repository"),
    (
        {"run": "true", "workdir": "{{ vars.up }}"},
        "workdir path '../..' leads outside the repository",
    ),
]


def route_spec(fields: dict[str, object], nest: Path, *, allow: bool = False) -> str:
    text = json.dumps(fields).replace("{NEST}", str(nest))
    return (
        "version: 1\n"
        + ("allow_outside_repo: true\n" if allow else "")
        + 'vars: {up: "../.."}\n'
        + f"jobs:\n  a: {text}\n"
    )


@pytest.mark.parametrize(("fields", "message"), ROUTES, ids=[json.dumps(f) for f, _ in ROUTES])
def test_every_route_out_of_the_repository_is_refused(
    nest: Path, fields: dict[str, object], message: str
) -> None:
    path = specs(nest) / "flow.yaml"
    path.write_text(route_spec(fields, nest))
    report = validate_file(path)
    assert not report.valid
    found = outside_errors(report.diagnostics)
    assert len(found) == 1, report.diagnostics
    assert message.replace("{NEST}", str(nest)) in found[0]
    assert "allow_outside_repo: true" in found[0]
    assert "Traceback" not in found[0]


@pytest.mark.parametrize(
    "fields",
    [
        {"script": "link.py"},
        {"script": "../../outside.py"},
        {"run": "true", "inputs": ["data/*.csv", "../../secret.txt"]},
        {"run": "true", "workdir": "../.."},
    ],
    ids=["link", "dotdot", "inputs", "workdir"],
)
def test_allow_outside_repo_lifts_the_rule(nest: Path, fields: dict[str, object]) -> None:
    path = specs(nest) / "flow.yaml"
    path.write_text(route_spec(fields, nest, allow=True))
    report = validate_file(path)
    assert report.valid, report.diagnostics


def test_paths_inside_the_repository_are_fine(nest: Path) -> None:
    path = write_spec(
        nest,
        """
        version: 1
        defaults: {workdir: data}
        jobs:
          a: {script: inside.py, inputs: ["data/ok.csv", "inside*.py"], workdir: "."}
          b: {run: "true", inputs: [data/ok.csv], workdir: "data/../data"}
          c: {run: "true"}
    """,
    )
    report = validate_file(path)
    assert report.valid, report.diagnostics


def test_the_checks_happen_through_the_command_line_too(nest: Path) -> None:
    write_spec(
        nest,
        """
        version: 1
        jobs:
          a: {run: ls, workdir: /etc}
    """,
    )
    result = run_ccspec(specs(nest), "apply", "flow.yaml")
    assert result.returncode == 2, result.stdout + result.stderr  # invalid: nothing launched
    assert "flow.yaml:4:25: workdir path '/etc' is absolute" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (specs(nest) / ".ccspec" / "logs" / "flow" / "a").exists()


# -- path escapes through a matrix made at run time ---------------------------------------------

DYNAMIC = """
    version: 1
    {allow}
    jobs:
      up:
        run: echo '# ccspec output paths={paths}'
      work:
        matrix: "{{{{ {{'p': jobs.up.outputs.paths}} }}}}"
        {field}
        needs: [up]
      after:
        run: touch ran-after
        needs: [work]
"""


def dynamic_spec(nest: Path, paths: list[str], field: str, *, allow: bool = False) -> None:
    write_spec(
        nest,
        DYNAMIC.format(
            paths=json.dumps(paths),
            field=field,
            allow="allow_outside_repo: true" if allow else "",
        ),
    )


def check_failed_at_launch(nest: Path, *messages: str) -> None:
    # paths unknown until `up` ran
    assert run_ccspec(specs(nest), "validate", "flow.yaml").returncode == 0
    for _ in range(2):  # the second apply plans the fan-out from the recorded outputs
        result = run_ccspec(specs(nest), "apply", "flow.yaml")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert markers(nest) == []
        jobs = status_of(specs(nest))
        assert jobs["work"]["state"] == "failed"
        assert jobs["work"]["attempt"] == 0  # never launched
        reason = str(jobs["work"]["reason"])
        for message in messages:
            assert message in reason
        assert "allow_outside_repo: true" in reason
        assert jobs["after"]["state"] == "skipped"
        assert [k for k in jobs if k.startswith("work-")] == []


def test_dynamic_matrix_scripts_outside_the_repository_are_not_run(nest: Path) -> None:
    dynamic_spec(nest, ["../../outside.py", str(nest / "abs.py")], 'script: "{{ matrix.p }}"')
    check_failed_at_launch(
        nest,
        "script path '../../outside.py' leads outside the repository",
        f"script path '{nest / 'abs.py'}' is absolute",
    )


@pytest.mark.parametrize(
    ("value", "field", "message"),
    [
        (
            "link.py",
            'script: "{{ matrix.p }}"',
            "script path 'link.py' leads outside the repository",
        ),
        (
            "../../outside.ipynb",
            'notebook: "{{ matrix.p }}"',
            "notebook path '../../outside.ipynb' leads outside",
        ),
        (
            "../../out",
            'run: touch ran-workdir\n        workdir: "{{ matrix.p }}"',
            "workdir path '../../out' leads",
        ),
        (
            "../../secret.txt",
            'run: touch ran-inputs\n        inputs: ["{{ matrix.p }}"]',
            "input path '../../secret.txt'",
        ),
        (
            "data/*.csv",
            'run: touch ran-inputs\n        inputs: ["{{ matrix.p }}"]',
            "matches 'data/stolen.csv'",
        ),
    ],
    ids=["symlink", "notebook", "workdir", "inputs", "inputs-link"],
)
def test_dynamic_matrix_every_path_field_is_checked_at_launch(
    nest: Path, value: str, field: str, message: str
) -> None:
    dynamic_spec(nest, [value], field)
    check_failed_at_launch(nest, message)


def test_dynamic_matrix_scripts_outside_run_when_allowed(nest: Path) -> None:
    """The same spec with `allow_outside_repo: true`: the scripts run (the check is what stops them)."""
    dynamic_spec(
        nest, ["../../outside.py", str(nest / "abs.py")], 'script: "{{ matrix.p }}"', allow=True
    )
    result = run_ccspec(specs(nest), "apply", "flow.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert markers(nest) == ["ran-abs.py", "ran-after", "ran-outside.py"]


def test_dynamic_matrix_inside_the_repository_runs(nest: Path) -> None:
    dynamic_spec(nest, ["inside.py"], 'script: "{{ matrix.p }}"')
    result = run_ccspec(specs(nest), "apply", "flow.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert status_of(specs(nest))["work-inside.py"]["state"] == "succeeded"


# -- YAML bombs and an oversized spec, through `ccspec validate` ---------------------------------


def validate_bounded(path: Path, bound: float) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = run_ccspec(path.parent, "validate", path.name, timeout=bound)
    elapsed = time.monotonic() - started
    assert "Traceback" not in result.stdout + result.stderr
    assert "internal error" not in result.stderr
    return result, elapsed


def merge_only_bomb() -> str:
    """Each level merges the one below ten times: nothing new, but 10**29 merges to do."""
    lines = ["version: 1", "vars:", "  m0: &m0 {a: 1, b: 2}"]
    lines += [f"  m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 10)}]}}" for i in range(1, 30)]
    return "\n".join([*lines, "jobs:", "  a: {run: echo a}", ""])


def merge_and_keys_bomb() -> str:
    """Each level merges the one below and holds it under two keys: 3**29 values."""
    lines = ["version: 1", "vars:", "  m0: &m0 {a: 1}"]
    lines += [
        f"  m{i}: &m{i} {{<<: *m{i - 1}, x{i}: *m{i - 1}, y{i}: *m{i - 1}}}" for i in range(1, 30)
    ]
    return "\n".join([*lines, "jobs:", "  a: {run: echo a}", ""])


def merge_in_jobs_bomb() -> str:
    """The bomb under `jobs:`, as the defaults of every job."""
    lines = ["version: 1", "x-base:", "  b0: &b0 {run: echo, env: {A: a}}"]
    lines += [
        f"  b{i}: &b{i} {{<<: [{', '.join([f'*b{i - 1}'] * 8)}], env: {{A: a}}}}"
        for i in range(1, 25)
    ]
    return "\n".join([*lines, "jobs:", "  a: {<<: *b24}", ""])


BOMBS = {
    "alias-billion-laughs": (CORPUS / "alias_bomb.yaml").read_text(),
    "merge-only": merge_only_bomb(),
    "merge-and-keys": merge_and_keys_bomb(),
    "merge-in-jobs": merge_in_jobs_bomb(),
    "deep-flow": "version: 1\njobs:\n  a: {run: echo, x: " + "[" * 200_000 + "]" * 200_000 + "}\n",
    "deep-block": "version: 1\njobs:\n  a:\n"
    + "".join("  " * (i + 2) + "k:\n" for i in range(3000)),
}
BOMB_CODES = {"deep-flow": "[yaml-syntax]", "deep-block": "[yaml-syntax]"}


@pytest.mark.parametrize("name", list(BOMBS))
def test_yaml_bombs_are_refused_quickly(tmp_path: Path, name: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMBS[name])
    result, elapsed = validate_bounded(path, 60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("bomb.yaml:")
    expected = BOMB_CODES.get(name, "[yaml-alias-bomb]")
    assert expected in result.stdout, result.stdout
    assert elapsed < 20, f"{name}: {elapsed:.1f}s"


def test_a_spec_over_10_mib_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    job = "  j{i:07d}: {{run: echo {i}}}\n"
    with path.open("w") as fh:
        fh.write("version: 1\njobs:\n")
        i = 0
        while fh.tell() <= MAX_BYTES:
            fh.write(job.format(i=i))
            i += 1
    assert path.stat().st_size > MAX_BYTES
    result, elapsed = validate_bounded(path, 60)
    assert result.returncode == 1
    assert result.stdout.startswith(
        f"huge.yaml:1:1: file is {path.stat().st_size:,} bytes, over the"
    )
    assert "split it into several specs [too-large]" in result.stdout
    assert elapsed < 20


def test_a_real_spec_just_under_10_mib_validates(tmp_path: Path) -> None:
    """About 40,000 jobs in chains, described and with env: valid, in bounded time."""
    path = tmp_path / "big.yaml"
    parts = ["version: 1\nvars: {lr: 0.01}\njobs:\n"]
    size, i = len(parts[0]), 0
    while True:
        job = (
            f"  step-{i:06d}:\n"
            f"    description: step {i} of a long pipeline that trains, evaluates and reports on a shard\n"
            f"    run: python -c 'print({i})' --shard {i} --out results/{i}.json\n"
            + (f"    needs: [step-{i - 1:06d}]\n" if i % 50 else "")
            + f'    env: {{SHARD: "{i}"}}\n'
        )
        if size + len(job) > MAX_BYTES:
            break
        parts.append(job)
        size += len(job)
        i += 1
    path.write_text("".join(parts))
    assert path.stat().st_size > MAX_BYTES - 1024
    result, elapsed = validate_bounded(path, 180)
    assert result.returncode == 0, result.stdout[:2000] + result.stderr[:2000]
    assert "1 spec valid" in result.stdout + result.stderr
    assert elapsed < 120, f"{elapsed:.1f}s for {i} jobs"


def test_the_corpus_folder_in_one_go_is_bounded(tmp_path: Path) -> None:
    """Every malformed corpus file at once, with the bombs beside them: exit 1, no crash."""
    for name, text in BOMBS.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    for case in CORPUS.glob("*.yaml"):
        (tmp_path / case.name).write_bytes(case.read_bytes())
    result, elapsed = validate_bounded(tmp_path, 120)
    assert result.returncode == 1
    assert elapsed < 60
    assert os.path.getsize(tmp_path / "alias_bomb.yaml") < 1024


def test_matrix_values_with_slashes_make_job_ids_not_paths(nest: Path) -> None:
    """Job ids name log folders: a matrix value like `../../x` must not lead a log out."""
    before = sorted(p for p in nest.rglob("*") if "repo" not in p.relative_to(nest).parts)
    dynamic_spec(nest, ["../../../escape", "/tmp/x", "a/../../b"], 'run: "true"')
    result = run_ccspec(specs(nest), "apply", "flow.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    ids = [k for k in status_of(specs(nest)) if k.startswith("work-")]
    assert len(ids) == 3 and ids[:2] == ["work-escape", "work-tmp-x"]
    assert not any("/" in i or i in (".", "..") for i in ids), ids  # one folder name each
    after = sorted(p for p in nest.rglob("*") if "repo" not in p.relative_to(nest).parts)
    assert after == before
    logs = specs(nest) / ".ccspec" / "logs" / "flow"
    assert sorted(p.name for p in logs.iterdir()) == sorted(["up", "after", *ids])
