"""Property: whatever mutation a valid spec goes through, the validator answers with
diagnostics (each with a position and a message) and never raises."""

from __future__ import annotations

import os
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccspec.spec.validate import SpecReport, validate_text
from tests.conftest import REPO

SPEC_PATH = REPO / "specs" / "fuzzed.yaml"  # beside the real scripts, so file checks run too
SEEDS = [
    (REPO / "specs" / "quickstart.yaml").read_text(),
    """version: 1
vars: {epochs: 3, models: [mlp, cnn], cluster: false}
hosts:
  hpc: {type: slurm, partition: debug, sbatch: {constraint: x}}
  box: {type: ssh, host: 10.0.0.5, port: 22}
defaults: {host: local, timeout: 2h, retries: 1, resources: {cpus: 1, mem: 1G}, env: {A: "1"}}
jobs:
  fetch: {run: "echo {{ vars.epochs | q }}"}
  train:
    matrix: {model: "{{ vars.models }}", seed: [1, 2], exclude: [{model: cnn, seed: 2}]}
    run: "train {{ matrix.model }} {{ matrix.seed }}"
    host: "{{ 'hpc' if vars.cluster else 'local' }}"
    needs: [fetch]
    resources: {time: 30m, gpus: 0}
  split: {run: echo, needs: [fetch]}
  fan: {matrix: "{{ jobs.split.outputs.parts }}", run: "echo {{ matrix.p }}", needs: [split]}
  report: {run: "echo {{ jobs.train.outputs }}", needs: [train, fan], timeout: 10m}
""",
]
ALPHABET = st.sampled_from(
    [*":{}[]-&*!|>'\"#,?%@`\t\n x1{}", "{{", "}}", "{%", "<<: *a", "&a ", "- ", ": ", "\n  "]
)


def assert_sane(report: SpecReport) -> None:
    for d in report.diagnostics:
        assert d.message and d.line >= 0 and d.col >= 0, d
        assert d.file == report.display
    if report.valid:
        assert report.workflow is not None and not report.diagnostics


@settings(
    max_examples=int(os.environ.get("CCSPEC_FUZZ_EXAMPLES", "250")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_text_mutations_never_crash(seed: str, data: st.DataObject) -> None:
    text = seed
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        kind = data.draw(st.sampled_from(["insert", "delete", "duplicate-line"]))
        if kind == "insert":
            text = (
                text[:at]
                + "".join(data.draw(st.lists(ALPHABET, min_size=1, max_size=4)))
                + text[at:]
            )
        elif kind == "delete":
            text = text[:at] + text[at + data.draw(st.integers(1, 20)) :]
        else:
            lines = text.splitlines(keepends=True)
            i = min(at, len(lines) - 1)
            lines.insert(i, lines[i])
            text = "".join(lines)
    assert_sane(validate_text(text, SPEC_PATH))


VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 10**6)
    | st.floats(allow_nan=True)
    | st.sampled_from(
        [
            "",
            "x",
            "{{ vars.epochs }}",
            "{{ nope }}",
            "{{ jobs.fetch.outputs.x }}",
            "{{ ''.__class__ }}",
            "{% if %}",
            "30m",
            "4G",
            "slurm",
            "ssh",
            "local",
            "fetch",
            "../../x.py",
            "/abs.sh",
            "Bad Name",
            "a" * 70,
        ]
    )
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "run",
                    "needs",
                    "matrix",
                    "type",
                    "host",
                    "x",
                    "Bad",
                    "jobs",
                    "vars",
                    "include",
                    "exclude",
                    "model",
                ]
            )
            | st.text(max_size=5),
            children,
            max_size=3,
        )
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@settings(
    max_examples=int(os.environ.get("CCSPEC_FUZZ_EXAMPLES", "250")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_structural_mutations_never_crash(seed: str, data: st.DataObject) -> None:
    doc = yaml.safe_load(seed)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(doc)))
        value = data.draw(VALUES)
        if not path:
            doc = value
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = value
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    assert_sane(validate_text(text, SPEC_PATH))
