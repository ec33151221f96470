from __future__ import annotations

import shlex

import pytest

from ccspec.spec.templating import TemplateProblem, analyze, has_template, render, shell_quote


def test_q_filter_makes_one_shell_word() -> None:
    hostile = "a b; rm -rf / $(x) 'q'"
    assert shlex.split(render("echo {{ v | q }}", {"v": hostile})) == ["echo", hostile]
    assert shell_quote(["a b", "c"]) == "'a b' c"
    assert shell_quote(True) == "true"


def test_a_lone_expression_keeps_its_type() -> None:
    assert render("{{ xs }}", {"xs": [1, 2]}) == [1, 2]
    assert render(" {{ n + 1 }} ", {"n": 1}) == 2
    assert render("n={{ n }}", {"n": 1}) == "n=1"
    assert render("{{ a }}{{ b }}", {"a": 1, "b": 2}) == "12"


@pytest.mark.parametrize(
    ("template", "code"),
    [
        ("{{ ''.__class__.__mro__ }}", "template-sandbox"),
        ("{{ vars.__init__.__globals__ }}", "template-sandbox"),
        ("{{ 'x' * 100000000 }}", "template-sandbox"),
        ("{{ 2 ** 100000 }}", "template-sandbox"),
        ("{{ missing }}", "template-undefined"),
        ("{{ vars.nope }}", "template-undefined"),
        ("x {{ vars.nope }} y", "template-undefined"),
        ("{{ 1 / 0 }}", "template-error"),
        ("{% for %}", "template-syntax"),
    ],
)
def test_problems(template: str, code: str) -> None:
    with pytest.raises(TemplateProblem) as info:
        render(template, {"vars": {}})
    assert info.value.code == code


def test_analyze_finds_references() -> None:
    info = analyze(
        "{{ vars.a }} {{ vars['b'] }} {{ matrix.m }} {{ jobs.fetch.outputs.x }} {{ jobs['t-1'].outputs }} {{ other }}"
    )
    assert info.vars == {"a", "b"}
    assert info.matrix == {"m"}
    assert info.jobs == {"fetch", "t-1"}
    assert "other" in info.names


def test_has_template() -> None:
    assert (
        has_template("a {{ b }}")
        and has_template("{% if x %}{% endif %}")
        and has_template("{# c #}")
    )
    assert not has_template("echo ${HOME} {x}")


def test_an_unknown_filter_is_a_diagnostic_not_a_crash(check) -> None:  # type: ignore[no-untyped-def]
    report = check("""
        version: 1
        jobs:
          a: {run: "echo {{ 'x' | odel }}"}
    """)
    assert not report.valid
    assert any("No filter named 'odel'" in d.message and d.line == 4 for d in report.diagnostics), (
        report.diagnostics
    )
