"""The committed JSON Schema (what editors check while typing) and `ccspec validate` agree.

Every corpus case, every shipped spec and a table of job shapes goes through both: the real
`jsonschema` library, with the draft the schema declares, and ccspec's own validation. They
must give the same verdict, except for the cases listed in `VALIDATE_ONLY`, which need more
than one document's shape (other jobs, templates, files on disk, the YAML text itself); each
says why. A listed case the schema rejects anyway is an error too, so the list stays exact.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ccspec.spec.models import JOB_KINDS, KIND_OF_FIELD
from ccspec.spec.validate import validate_paths, validate_text
from tests.conftest import REPO

SCHEMA = json.loads((REPO / "schemas" / "workflow.schema.json").read_text())
CORPUS = REPO / "tests" / "corpus"

_YAML = "YAML-level: the schema sees the loaded data, not the text"
_FILES = "needs the files on disk"
_GRAPH = "needs the other jobs of the workflow"
_TEMPLATE = "needs templates rendered"
_MATRIX = "a matrix is checked after its templates are rendered, when its values are known"
VALIDATE_ONLY = {
    "duplicate_key_in_job.yaml": _YAML + " (a loader keeps the last of two equal keys)",
    "duplicate_key_top_level.yaml": _YAML + " (a loader keeps the last of two equal keys)",
    "yaml_nested_too_deep.yaml": _YAML + " (nesting depth is a reading limit)",
    "cycle_three_jobs.yaml": _GRAPH + " (a dependency cycle)",
    "cycle_through_matrix.yaml": _GRAPH + " (a cycle through matrix members)",
    "cycle_two_jobs.yaml": _GRAPH + " (a dependency cycle)",
    "needs_self.yaml": _GRAPH + " (a job needing itself)",
    "needs_unknown_job.yaml": _GRAPH + " (needs naming a job that does not exist)",
    "defaults_host_unknown.yaml": _GRAPH + " (a host name not under `hosts:`)",
    "host_unknown.yaml": _GRAPH + " (a host name not under `hosts:`)",
    "matrix_duplicate_job_id.yaml": _GRAPH + " (a matrix member's id equals another job's name)",
    "defaults_workdir_outside_repo.yaml": _FILES + " (where the repository ends)",
    "inputs_outside_repo.yaml": _FILES + " (where the repository ends)",
    "matrix_paths_outside_repo.yaml": _FILES + " (where the repository ends)",
    "script_outside_repo.yaml": _FILES + " (where the repository ends)",
    "workdir_absolute.yaml": _FILES + " (an absolute path is allowed with allow_outside_repo)",
    "workdir_outside_repo.yaml": _FILES + " (where the repository ends)",
    "notebook_absolute_path.yaml": _FILES
    + " (an absolute path is allowed with allow_outside_repo)",
    "notebook_invalid_json.yaml": _FILES + " (the notebook's content)",
    "notebook_without_cells.yaml": _FILES + " (the notebook's content)",
    "notebook_wrong_suffix.yaml": _FILES + " (the notebook's content)",
    "script_is_folder.yaml": _FILES + " (the script is a folder)",
    "script_missing.yaml": _FILES + " (the script does not exist)",
    "script_unknown_suffix.yaml": _FILES + " (no interpreter for the file's suffix)",
    "script_template_leads_outside.yaml": _TEMPLATE + " (a path from vars)",
    "run_renders_to_mapping.yaml": _TEMPLATE + " (what `run` renders to)",
    "template_division_by_zero.yaml": _TEMPLATE,
    "template_matrix_without_matrix.yaml": _TEMPLATE + " (which names a template uses)",
    "template_missing_nested_key.yaml": _TEMPLATE + " (the values of vars)",
    "template_sandbox_violation.yaml": _TEMPLATE + " (the sandbox)",
    "template_syntax_error.yaml": _TEMPLATE + " (Jinja syntax)",
    "template_undefined_var.yaml": _TEMPLATE + " (the names of vars)",
    "template_unknown_name.yaml": _TEMPLATE + " (which names a template uses)",
    "template_upstream_not_needed.yaml": _TEMPLATE + " (upstream outputs against needs)",
    "upstream_in_inputs.yaml": _TEMPLATE + " (upstream outputs in inputs)",
    "matrix_secret_in_job_id.yaml": _TEMPLATE + " (a secret var's values in job ids)",
    "matrix_too_many_combinations.yaml": _MATRIX,
    "matrix_dimension_bad_name.yaml": _MATRIX,
    "matrix_dimension_not_list.yaml": _MATRIX,
    "matrix_empty_list.yaml": _MATRIX,
    "matrix_exclude_unknown_dimension.yaml": _MATRIX,
    "matrix_not_mapping.yaml": _MATRIX,
    "matrix_value_empty_id.yaml": _MATRIX,
    "matrix_value_mapping.yaml": _MATRIX,
    "matrix_values_collide.yaml": _MATRIX,
}
# Files a loader cannot read at all: no data, so no schema verdict (validate reports them).
UNREADABLE = {
    "not_utf8.yaml",
    "recursive_alias.yaml",
    "several_documents.yaml",
    "tab_indentation.yaml",
    "tag_custom.yaml",
    "tag_python_object.yaml",
    "tag_python_object_mapping.yaml",
    "yaml_key_not_text.yaml",
    "yaml_merge_not_mapping.yaml",
    "yaml_syntax_unclosed_flow_list.yaml",
    "yaml_syntax_unquoted_colon.yaml",
    "yaml_unclosed_quote.yaml",
    "yaml_undefined_alias.yaml",
}
# Aliases that expand to millions of values: ccspec refuses them while reading, before any
# shape check; a loader that expands them takes minutes, so the schema is not run on them.
BOMBS = {"alias_bomb.yaml", "yaml_merge_key_bomb.yaml", "yaml_merge_key_bomb_with_keys.yaml"}
CASES = sorted(CORPUS.glob("*.yaml"))
SPECS = sorted(p for p in (REPO / "specs").glob("*.yaml") if not p.name.endswith(".status.yaml"))


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    """The validator of the draft the schema declares (2020-12), after checking the schema
    itself against that draft's meta-schema."""
    validator_class = jsonschema.validators.validator_for(SCHEMA)
    assert validator_class.META_SCHEMA["$id"].rstrip("#") == SCHEMA["$schema"].rstrip("#")
    validator_class.check_schema(SCHEMA)
    return validator_class(SCHEMA)


def schema_valid(document: object) -> bool:
    return bool(_validator().is_valid(document))


def _load(path: Path) -> object:
    """The data an editor's loader sees; yaml_key_not_text and friends fail here."""
    data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    json.dumps(data)  # what a JSON Schema can hold
    return data


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_corpus_case_same_verdict(path: Path) -> None:
    (report,) = validate_paths([path])
    assert not report.valid
    if path.name in BOMBS:
        assert any(d.code == "yaml-alias-bomb" for d in report.diagnostics)
        return
    if path.name in UNREADABLE:
        with pytest.raises((yaml.YAMLError, UnicodeDecodeError, TypeError, ValueError)):
            _load(path)
        return
    verdict = schema_valid(_load(path))
    if path.name in VALIDATE_ONLY:
        assert verdict, f"{path.name} is rejected by the schema: remove it from VALIDATE_ONLY"
    else:
        assert not verdict, f"the schema accepts {path.name}, which ccspec rejects"


def test_exception_lists_name_real_cases() -> None:
    names = {p.name for p in CASES}
    assert names.issuperset(VALIDATE_ONLY) and names.issuperset(UNREADABLE | BOMBS)
    assert not set(VALIDATE_ONLY) & UNREADABLE and not (set(VALIDATE_ONLY) | UNREADABLE) & BOMBS


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_shipped_specs_valid_for_both(path: Path) -> None:
    (report,) = validate_paths([path])
    assert report.valid, report.diagnostics
    assert schema_valid(_load(path))


def _job(**keys: object) -> dict[str, Any]:
    return {"version": 1, "jobs": {"a": keys, "b": {"run": "echo b"}}}


RUN = {"run": "echo a"}
DOCUMENTS: list[tuple[str, dict[str, Any], bool]] = [
    # the disagreements issue 16 lists, each with the verdict ccspec gives
    ("run and script", _job(run="x", script="hello.py"), False),
    ("no kind", _job(description="nothing", retries=1), False),
    ("parameters on run", _job(run="x", parameters={"p": 1}), False),
    ("timeout 0s", _job(**RUN, timeout="0s"), False),
    ("slurm time 1-99:99:99", _job(**RUN, resources={"time": "1-99:99:99"}), False),
    ("retries 2.0 is 2", _job(**RUN, retries=2.0), True),
    ("retries 2.5", _job(**RUN, retries=2.5), False),
    ("retries true", _job(**RUN, retries=True), False),
    ("needs one string", _job(**RUN, needs="b"), True),
    ("needs a number", {"version": 1, "jobs": {"1": RUN, "a": {**RUN, "needs": 1}}}, True),
    ("needs true", _job(**RUN, needs=True), False),
    ("inputs one string", _job(**RUN, inputs="data.csv"), True),
    ("inputs null", _job(**RUN, inputs=None), False),
    ("env numbers and booleans", _job(**RUN, env={"N": 2, "X": 1.5, "DEBUG": True}), True),
    ("env null", _job(**RUN, env={"N": None}), False),
    ("env list", _job(**RUN, env={"N": [1]}), False),
    ("host env number", {**_job(**RUN), "hosts": {"h": {"type": "local", "env": {"N": 1}}}}, True),
    # the other kinds, and a kind key set to null
    ("script", _job(script="hello.py", args=["-v", 1], interpreter="python3"), True),
    ("notebook", _job(notebook="nb.ipynb", parameters={"n": 1}, kernel="python3"), True),
    ("null run beside script", _job(run=None, script="hello.py"), True),
    ("only null run", _job(run=None), False),
    ("run not text", _job(run=5), False),
    ("three kinds", _job(run="x", script="hello.py", notebook="nb.ipynb"), False),
    ("shell on run", _job(**RUN, shell="sh"), True),
    ("shell null on script", _job(script="hello.py", shell=None), False),
    # durations: seconds, units, Slurm clocks, spaces; zero and out-of-range clocks
    *(
        (f"timeout {t!r}", _job(**RUN, timeout=t), ok)
        for t, ok in [
            ("90s", True),
            ("1h30m", True),
            (" 2 h ", True),
            ("250MS", True),
            ("1.5h", True),
            ("45", True),
            (".5", True),
            ("10:00", True),
            ("59:59", True),
            ("60:00", False),
            ("100:00:00", True),
            ("1:60:00", False),
            ("1-23:59:59", True),
            ("1-24:00:00", False),
            ("2-12", True),
            ("0-00:00:01", True),
            ("0:00", False),
            ("0.0h", False),
            ("0", False),
            ("-1m", False),
            ("1h x", False),
            ("m", False),
            ("", False),
            (1.5, True),
            (0, False),
            (-3, False),
            (True, False),
        ]
    ),
    # memory: sizes and megabytes; zero, fractions of a number, unknown units
    *(
        (f"mem {m!r}", _job(**RUN, resources={"mem": m}), ok)
        for m, ok in [
            ("4G", True),
            ("4 GiB", True),
            ("512mb", True),
            ("1024K", True),
            ("0.5G", True),
            ("0G", False),
            ("0", False),
            ("4X", False),
            ("-1G", False),
            (2048, True),
            (2048.0, True),
            (1.5, False),
            (0, False),
        ]
    ),
    ("cpus 0", _job(**RUN, resources={"cpus": 0}), False),
    ("cpus 4.0", _job(**RUN, resources={"cpus": 4.0}), True),
    (
        "port 2222.0",
        {**_job(**RUN), "hosts": {"h": {"type": "ssh", "host": "x", "port": 2222.0}}},
        True,
    ),
    ("version 1.0", {**_job(**RUN), "version": 1.0}, True),
    ("version '1'", {**_job(**RUN), "version": "1"}, False),
    ("allow_outside_repo text", {**_job(**RUN), "allow_outside_repo": "yes"}, False),
    ("allow_outside_repo 1", {**_job(**RUN), "allow_outside_repo": 1}, False),
    ("allow_outside_repo true", {**_job(**RUN), "allow_outside_repo": True}, True),
]
# every kind-specific key, on every kind
DOCUMENTS += [
    (
        f"{key} on a {kind} job",
        _job(
            **{kind: {"run": "x", "script": "hello.py", "notebook": "nb.ipynb"}[kind]}, **{key: v}
        ),
        owner == kind,
    )
    for key, owner in KIND_OF_FIELD.items()
    for kind in JOB_KINDS
    for v in [{"args": ["-v"], "parameters": {"p": 1}}.get(key, "x")]
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "hello.py").write_text("print('hello')\n")
    (tmp_path / "nb.ipynb").write_text(
        json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )
    return tmp_path


@pytest.mark.parametrize(
    ("document", "ok"), [(d, ok) for _, d, ok in DOCUMENTS], ids=[n for n, _, _ in DOCUMENTS]
)
def test_document_same_verdict(folder: Path, document: dict[str, Any], ok: bool) -> None:
    report = validate_text(yaml.safe_dump(document), folder / "spec.yaml", repo_root=folder)
    assert report.valid is ok, report.diagnostics
    assert schema_valid(document) is ok


def test_check_jsonschema_gives_the_same_verdicts(tmp_path: Path) -> None:
    """The real check-jsonschema, which matches `pattern` with an ECMA-262 engine (regress)
    as editors do, on the shipped specs, the structural corpus and the table above."""
    expected: dict[str, bool] = {}
    for path in [*SPECS, *CASES]:
        if path.name in VALIDATE_ONLY or path.name in UNREADABLE or path.name in BOMBS:
            continue
        copy = tmp_path / f"{len(expected):03d}-{path.name}"
        copy.write_bytes(path.read_bytes())
        expected[copy.name] = path in SPECS
    for _, document, ok in DOCUMENTS:
        name = f"{len(expected):03d}-document.json"  # JSON: what the table holds, exactly
        (tmp_path / name).write_text(json.dumps(document))
        expected[name] = ok
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--schemafile",
            str(REPO / "schemas" / "workflow.schema.json"),
            "--output-format",
            "json",
            *sorted(str(tmp_path / name) for name in expected),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(result.stdout)
    assert not report.get("parse_errors"), report["parse_errors"]
    failed = {Path(e["filename"]).name for e in report["errors"]}
    wrong = {name: ok for name, ok in expected.items() if (name not in failed) is not ok}
    assert not wrong, f"check-jsonschema disagrees on {wrong}"


def test_init_starter_spec_valid_for_both(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ccspec", "init", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    spec = tmp_path / "specs" / "hello.yaml"
    (report,) = validate_paths([spec])
    assert report.valid, report.diagnostics
    assert schema_valid(_load(spec))
