"""Resolving specs into concrete jobs: matrices, templates, defaults, needs, files."""

from __future__ import annotations

import itertools
from pathlib import Path

from tests.conftest import SpecWriter


def test_matrix_jobs_defaults_and_needs(check: SpecWriter) -> None:
    report = check("""
        version: 1
        vars: {epochs: 3, use_cluster: false, models: [mlp, cnn]}
        hosts:
          cluster: {type: slurm, partition: debug}
        defaults: {timeout: 1h, retries: 2, resources: {cpus: 2, mem: 1G}, env: {A: "1"}}
        jobs:
          fetch:
            run: echo fetch
          train:
            matrix: {model: "{{ vars.models }}"}
            run: train --model {{ matrix.model | q }} --epochs {{ vars.epochs }}
            host: "{{ 'cluster' if vars.use_cluster else 'local' }}"
            needs: fetch
            resources: {mem: 4G}
            env: {B: 2}
          report:
            run: echo done
            needs: [train]
            retries: 0
    """)
    assert report.valid, report.diagnostics
    wf = report.workflow
    assert wf is not None
    assert list(wf.jobs) == ["fetch", "train-mlp", "train-cnn", "report"]
    train = wf.jobs["train-cnn"]
    assert train.run == "train --model cnn --epochs 3"
    assert train.host == "local" and train.needs == ("fetch",)
    assert train.resources.cpus == 2 and train.resources.mem == 4096
    assert train.env == {"A": "1", "B": "2"}
    assert train.timeout == 3600 and train.retries == 2
    assert wf.jobs["report"].needs == ("train-mlp", "train-cnn") and wf.jobs["report"].retries == 0
    assert wf.groups["train"] == ("train-mlp", "train-cnn")


def test_var_overrides_change_the_rendering(check: SpecWriter) -> None:
    text = """
        version: 1
        vars: {use_cluster: false}
        hosts: {cluster: {type: slurm}}
        jobs:
          a: {run: x, host: "{{ 'cluster' if vars.use_cluster else 'local' }}"}
    """
    assert check(text).workflow.jobs["a"].host == "local"  # type: ignore[union-attr]
    assert check(text, use_cluster=True).workflow.jobs["a"].host == "cluster"  # type: ignore[union-attr]


def test_upstream_outputs_are_deferred(check: SpecWriter, repo: Path) -> None:
    (repo / "train.py").write_text("print(1)\n")
    report = check("""
        version: 1
        jobs:
          split: {run: echo}
          work:
            matrix: "{{ jobs.split.outputs.parts }}"
            run: echo {{ matrix.part }}
            needs: [split]
          train:
            script: train.py
            args: [--n, "{{ jobs.split.outputs.n }}", "{{ 1 + 1 }}"]
            env: {N: "{{ jobs.split.outputs.n }}", M: "{{ 2 }}"}
            needs: [split]
          after: {run: echo, needs: [work]}
    """)
    assert report.valid, report.diagnostics
    wf = report.workflow
    assert wf is not None
    assert wf.jobs["work"].fanout_pending and wf.jobs["work"].needs == ("split",)
    assert wf.jobs["after"].needs == ("work",)
    train = wf.jobs["train"]
    assert train.deferred == {"args", "env"} and train.upstream == {"split"}
    assert train.env["M"] == "2"


def test_lone_expression_lists_splice_into_args(check: SpecWriter, repo: Path) -> None:
    (repo / "t.py").write_text("")
    report = check("""
        version: 1
        vars: {files: [a.txt, b.txt]}
        jobs:
          t: {script: t.py, args: [--in, "{{ vars.files }}", 3, true]}
    """)
    assert report.workflow is not None
    assert report.workflow.jobs["t"].args == ("--in", "a.txt", "b.txt", "3", "true")


def test_notebook_parameters_keep_native_types(check: SpecWriter, repo: Path) -> None:
    (repo / "n.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    )
    report = check("""
        version: 1
        vars: {rates: [0.1, 0.01]}
        jobs:
          nb: {notebook: n.ipynb, parameters: {rates: "{{ vars.rates }}", label: "r={{ vars.rates[0] }}"}}
    """)
    assert report.workflow is not None
    assert report.workflow.jobs["nb"].parameters == {"rates": [0.1, 0.01], "label": "r=0.1"}


def test_every_problem_is_reported_not_only_the_first(check: SpecWriter) -> None:
    report = check("""
        version: 1
        jobs:
          a: {run: x, needs: [nope]}
          b: {run: "{{ vars.missing }}", host: elsewhere}
          c: {run: x, neds: [a]}
          d: {run: x, needs: [e]}
          e: {run: x, needs: [d]}
    """)
    codes = sorted(d.code for d in report.diagnostics)
    assert codes == ["cycle", "template-undefined", "unknown-host", "unknown-key", "unknown-need"]
    assert report.workflow is None


def test_needs_of_an_invalid_job_are_not_reported_twice(check: SpecWriter) -> None:
    report = check("""
        version: 1
        jobs:
          a: {run: x, resources: {mem: lots}}
          b: {run: x, needs: [a]}
    """)
    assert [d.code for d in report.diagnostics] == ["invalid-value"]


def test_three_cycle_message_shows_the_path(check: SpecWriter) -> None:
    report = check("""
        version: 1
        jobs:
          a: {run: x, needs: [c]}
          b: {run: x, needs: [a]}
          c: {run: x, needs: [b]}
    """)
    [problem] = report.diagnostics
    assert problem.code == "cycle"
    path = problem.message.split(": ", 1)[1].split(" (")[0].split(" -> ")
    assert path[0] == path[-1] and sorted(path[:-1]) == ["a", "b", "c"]
    for x, y in itertools.pairwise(path):  # each needs the next
        assert {"a": "c", "b": "a", "c": "b"}[x] == y


def test_paths_inside_and_outside_the_repository(check: SpecWriter, repo: Path) -> None:
    (repo / "sub").mkdir()
    (repo / "tools.py").write_text("")
    (repo / "sub" / "ok.py").write_text("")
    report = check(
        """
        version: 1
        jobs:
          a: {script: ../tools.py}
          b: {script: ok.py}
          c: {script: ../../etc/passwd}
          d: {script: /etc/hostname}
    """,
        name="sub/flow.yaml",
    )
    assert sorted((d.line, d.code) for d in report.diagnostics) == [
        (6, "path-outside-repo"),
        (7, "path-outside-repo"),
    ]


def test_allow_outside_repo(check: SpecWriter) -> None:
    report = check("""
        version: 1
        allow_outside_repo: true
        jobs:
          d: {script: /bin/true}
    """)
    assert report.valid, report.diagnostics


def test_workflow_name_from_file_must_be_valid(check: SpecWriter) -> None:
    report = check("version: 1\njobs: {a: {run: x}}\n", name="My Flow.yaml")
    assert [d.code for d in report.diagnostics] == ["invalid-name"]
    assert check("version: 1\nname: ok\njobs: {a: {run: x}}\n", name="My Flow.yaml").valid
