"""Fingerprints (ccspec.fingerprint) decide what runs again: specs are written into a scratch
repository and loaded as `ccspec` loads them, then edited one thing at a time. Each edit must
change exactly the fingerprints it should -- the edited job's, in the part that names the
change, and its descendants' through `upstream` -- and leave every other job alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from ccspec.fingerprint import Fingerprint, fingerprints, gather_facts
from ccspec.planner import make_plan
from ccspec.spec.resolved import ResolvedWorkflow
from ccspec.spec.validate import validate_file
from ccspec.state.store import RecordedJob
from ccspec.states import JobState

SPEC = """
    version: 1
    vars: {n: 1, unused: 1}
    hosts: {far: {type: ssh, host: example.org, workdir: /srv/flow}}
    jobs:
      a: {run: "echo {{ vars.n }}", env: {X: "1", Y: "2"}}
      s: {script: s.py, args: ["--n", "{{ vars.n }}"], needs: [a], inputs: ["data/*.csv"]}
      c: {run: "echo c", needs: [s]}
      nb: {notebook: n.ipynb, parameters: {p: 1}, kernel: python3}
      d: {run: "echo d"}
"""

NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'
# the same notebook with one code cell
EDITED_NOTEBOOK = NOTEBOOK.replace(
    '"cells": []',
    '"cells": [{"cell_type": "code", "execution_count": null, "id": "c1", '
    '"metadata": {}, "outputs": [], "source": ["print(1)"]}]',
)
PARTS = {"definition", "file", "inputs", "upstream"}

# Fingerprints of every job, as a child process prints them: value and parts, by job id.
PRINT = """
import json, sys
from pathlib import Path
from ccspec.fingerprint import fingerprints, gather_facts
from ccspec.spec.validate import validate_file
wf = validate_file(Path(sys.argv[1])).workflow
fps = fingerprints(wf, gather_facts(wf))
print(json.dumps({k: [fp.value, dict(fp.parts)] for k, fp in fps.items()}))
"""


@pytest.fixture
def flow(repo: Path) -> Path:
    """The scratch repository with the files SPEC refers to."""
    (repo / "s.py").write_text("print('s')\n")
    (repo / "n.ipynb").write_text(NOTEBOOK)
    (repo / "data").mkdir()
    (repo / "data" / "a.csv").write_text("1,2\n")
    (repo / "data" / "notes.txt").write_text("not an input\n")
    return repo


def load(repo: Path, text: str = SPEC, **overrides: object) -> ResolvedWorkflow:
    path = repo / "flow.yaml"
    path.write_text(textwrap.dedent(text))
    report = validate_file(path, overrides=overrides or None)
    assert report.valid and report.workflow is not None, report.diagnostics
    return report.workflow


def fps(repo: Path, text: str = SPEC, **overrides: object) -> dict[str, Fingerprint]:
    workflow = load(repo, text, **overrides)
    return fingerprints(workflow, gather_facts(workflow))


def changed(
    before: Mapping[str, Fingerprint], after: Mapping[str, Fingerprint]
) -> dict[str, set[str]]:
    """Job id -> the parts that differ, for the jobs in both whose fingerprint changed."""
    out = {}
    for job_id in before.keys() & after.keys():
        old, new = before[job_id], after[job_id]
        assert set(old.parts) == set(new.parts) == PARTS
        parts = {p for p in PARTS if old.parts[p] != new.parts[p]}
        assert (old.value != new.value) == bool(parts), job_id  # the value follows its parts
        if parts:
            out[job_id] = parts
    return out


def test_a_fingerprint_is_a_sha256_of_its_parts_and_jobs_differ(flow: Path) -> None:
    got = fps(flow)
    assert set(got) == {"a", "s", "c", "nb", "d"}
    for fp in got.values():
        assert fp.value.startswith("sha256:") and len(fp.value) == len("sha256:") + 64
        assert set(fp.parts) == PARTS
    assert len({fp.value for fp in got.values()}) == len(got)


def test_the_same_spec_gives_the_same_fingerprints_in_another_process(flow: Path) -> None:
    here = {k: [fp.value, dict(fp.parts)] for k, fp in fps(flow).items()}
    for seed in ("1", "2"):  # str hashes and set order differ between these processes
        child = subprocess.run(
            [sys.executable, "-c", PRINT, str(flow / "flow.yaml")],
            capture_output=True,
            text=True,
            check=True,
            cwd="/",
            env={**os.environ, "PYTHONHASHSEED": seed, "CCSPEC_UNRELATED": seed},
        )
        assert json.loads(child.stdout) == here


def test_a_moved_or_recloned_repository_keeps_its_fingerprints(flow: Path, tmp_path: Path) -> None:
    before = fps(flow)
    clone = shutil.copytree(flow, tmp_path / "elsewhere" / "clone")
    for path in clone.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))  # a fresh checkout: every mtime differs
    assert fps(clone) == before


EDITS: dict[str, tuple[str, str, dict[str, set[str]]]] = {
    # name: (text in SPEC, replaced by, jobs whose fingerprint changes -> parts that differ)
    "command text": ('"echo {{ vars.n }}"', '"printf {{ vars.n }}"', {"a": {"definition"}}),
    "env value": ('X: "1"', 'X: "3"', {"a": {"definition"}}),
    "env added": ('Y: "2"}', 'Y: "2", Z: "3"}', {"a": {"definition"}}),
    "shell": ('env: {X: "1"', 'shell: sh, env: {X: "1"', {"a": {"definition"}}),
    "workdir": ('env: {X: "1"', 'workdir: data, env: {X: "1"', {"a": {"definition"}}),
    "script args": ('"--n"', '"--m"', {"s": {"definition"}}),
    "interpreter": ("needs: [a],", "interpreter: python3, needs: [a],", {"s": {"definition"}}),
    # the same files match, so only the definition differs
    "inputs pattern": ('"data/*.csv"', '"data/a.csv"', {"s": {"definition"}}),
    "notebook parameters": ("{p: 1}", "{p: 2}", {"nb": {"definition"}}),
    "kernel": ("kernel: python3", "kernel: ir", {"nb": {"definition"}}),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_each_part_of_a_definition_changes_the_job_and_its_descendants_only(
    flow: Path, name: str
) -> None:
    old, new, expected = EDITS[name]
    assert old in SPEC
    before = fps(flow)
    after = fps(flow, SPEC.replace(old, new))
    # a's descendants are s and c; s's is c
    descendants = {"a": {"s", "c"}, "s": {"c"}, "nb": set()}
    [edited] = expected
    assert changed(before, after) == {
        **expected,
        **{job: {"upstream"} for job in descendants[edited]},
    }


def test_a_rendered_variable_changes_every_job_that_renders_it(flow: Path) -> None:
    before = fps(flow)
    assert changed(before, fps(flow, n=2)) == {
        "a": {"definition"},  # its command
        "s": {"definition", "upstream"},  # its args, and a
        "c": {"upstream"},
    }
    assert changed(before, fps(flow, unused=2)) == {}  # a variable no job renders


def test_each_expansion_of_a_matrix_has_its_own_fingerprint(flow: Path) -> None:
    # the command does not render the value: the matrix itself must tell the two apart
    text = SPEC + '      m: {run: "echo same", matrix: {x: [1, 2]}}\n'
    before = fps(flow, text)
    assert before["m-1"].parts["definition"] != before["m-2"].parts["definition"]
    after = fps(flow, text.replace("[1, 2]", "[1, 3]"))
    assert set(after) - set(before) == {"m-3"} and changed(before, after) == {}
    assert after["m-3"].value not in {fp.value for fp in before.values()}


IGNORED = {
    "host": ('d: {run: "echo d"}', 'd: {run: "echo d", host: far}'),
    "host settings": ("workdir: /srv/flow", "workdir: /srv/other"),
    "resources, timeout, retries": (
        'd: {run: "echo d"}',
        'd: {run: "echo d", resources: {mem: 64G, cpus: 8}, timeout: 1h, retries: 3}',
    ),
    "description": ('d: {run: "echo d"}', 'd: {run: "echo d", description: "the last one"}'),
    "env key order": ('{X: "1", Y: "2"}', '{Y: "2", X: "1"}'),
    "another job added": ('d: {run: "echo d"}', 'd: {run: "echo d"}\n      e: {run: "echo e"}'),
}


@pytest.mark.parametrize("name", list(IGNORED))
def test_what_does_not_change_what_a_job_does_leaves_every_fingerprint(
    flow: Path, name: str
) -> None:
    old, new = IGNORED[name]
    assert old in SPEC
    assert changed(fps(flow), fps(flow, SPEC.replace(old, new))) == {}


def test_yaml_layout_comments_and_job_order_leave_every_fingerprint(flow: Path) -> None:
    rewritten = """
        # the same workflow, written out longhand
        version: 1
        vars:
          unused: 1
          n: 1   # a comment
        hosts:
          far: {type: ssh, host: example.org, workdir: /srv/flow}
        jobs:
          d:
            run: echo d
          nb:
            notebook: n.ipynb
            kernel: python3
            parameters:
              p: 1
          c:
            needs: s
            run: 'echo c'
          s:
            inputs: data/*.csv
            needs: [a]
            script: s.py
            args:
              - --n
              - "{{ vars.n }}"
          a:
            env:
              Y: "2"
              X: "1"
            run: >-
              echo {{ vars.n }}
    """
    assert fps(flow) == fps(flow, rewritten)


def _touch(repo: Path) -> None:
    for path in repo.rglob("*"):
        os.utime(path, (2_000_000_000, 2_000_000_000))


FILE_EDITS: dict[str, tuple[Callable[[Path], object], dict[str, set[str]]]] = {
    "script content": (
        lambda r: (r / "s.py").write_text("print('S')\n"),
        {"s": {"file"}, "c": {"upstream"}},
    ),
    "notebook content": (lambda r: (r / "n.ipynb").write_text(EDITED_NOTEBOOK), {"nb": {"file"}}),
    "input content": (
        lambda r: (r / "data" / "a.csv").write_text("1,3\n"),
        {"s": {"inputs"}, "c": {"upstream"}},
    ),
    "input added to the glob": (
        lambda r: (r / "data" / "b.csv").write_text("1,2\n"),
        {"s": {"inputs"}, "c": {"upstream"}},
    ),
    "input renamed, same content": (
        lambda r: (r / "data" / "a.csv").rename(r / "data" / "b.csv"),
        {"s": {"inputs"}, "c": {"upstream"}},
    ),
    "input removed": (
        lambda r: (r / "data" / "a.csv").unlink(),
        {"s": {"inputs"}, "c": {"upstream"}},
    ),
    "file outside the glob": (lambda r: (r / "data" / "notes.txt").write_text("edited\n"), {}),
    "modification times only": (_touch, {}),
    "files rewritten with the same bytes": (
        lambda r: [p.write_bytes(p.read_bytes()) for p in r.rglob("*") if p.is_file()],
        {},
    ),
}


@pytest.mark.parametrize("name", list(FILE_EDITS))
def test_file_contents_count_and_nothing_else_about_files(flow: Path, name: str) -> None:
    edit, expected = FILE_EDITS[name]
    before = fps(flow)
    edit(flow)
    assert changed(before, fps(flow)) == expected


def test_an_input_folder_counts_every_file_under_it(flow: Path) -> None:
    text = SPEC.replace('"data/*.csv"', "data")
    before = fps(flow, text)
    (flow / "data" / "deep").mkdir()
    (flow / "data" / "deep" / "x.bin").write_bytes(b"\0")
    assert changed(before, fps(flow, text)) == {"s": {"inputs"}, "c": {"upstream"}}


def succeeded(got: Mapping[str, Fingerprint]) -> dict[str, RecordedJob]:
    """The state after every job succeeded with these fingerprints."""
    return {
        job_id: RecordedJob(
            workflow="flow",
            id=job_id,
            name=job_id,
            state=JobState.SUCCEEDED,
            reason=None,
            fingerprint=fp.value,
            parts=fp.parts,
            success_fingerprint=fp.value,
            success_parts=fp.parts,
            success_seq=1,
            outputs={},
            attempts=1,
            last_attempt=1,
            updated=0.0,
        )
        for job_id, fp in got.items()
    }


PLAN_REASONS = {
    # file edit in FILE_EDITS: (the job it reruns, its reason code and detail)
    "script content": ("s", ("file_changed", "script changed")),
    "notebook content": ("nb", ("file_changed", "notebook changed")),
    "input content": ("s", ("inputs_changed", "inputs changed")),
}


@pytest.mark.parametrize("name", list(PLAN_REASONS))
def test_the_plan_names_the_part_that_changed(flow: Path, name: str) -> None:
    job, reason = PLAN_REASONS[name]
    recorded = succeeded(fps(flow))
    FILE_EDITS[name][0](flow)
    workflow = load(flow)
    plan = make_plan(workflow, fingerprints(workflow, gather_facts(workflow)), recorded)
    planned = plan.by_id()[job]
    assert (planned.action.value, planned.reason.code, planned.reason.detail) == ("rerun", *reason)
    assert {j.id for j in plan.to_run} == {job} | ({"c"} if job == "s" else set())
