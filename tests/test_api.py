from __future__ import annotations

from pathlib import Path

import pytest

import ccspec
from ccspec.errors import SpecInvalid
from tests.conftest import REPO


def test_exported_names_are_pinned() -> None:
    assert sorted(ccspec.__all__) == [
        "SpecEditor",
        "__version__",
        "apply",
        "edit",
        "load",
        "plan",
        "validate",
    ]


def test_load_and_validate(tmp_path: Path) -> None:
    workflow = ccspec.load(REPO / "specs" / "quickstart.yaml", vars={"rows": 10})
    assert workflow.name == "quickstart" and list(workflow.jobs) == [
        "generate",
        "summarise",
        "report",
    ]
    assert workflow.jobs["generate"].args == ("10", "7")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\njobs: {a: {run: x, needs: [b]}}\n")
    with pytest.raises(SpecInvalid) as info:
        ccspec.load(bad)
    assert info.value.diagnostics[0].code == "unknown-need"
    [report] = ccspec.validate(bad)
    assert not report.valid


def test_build_plan_apply_from_python(repo: Path) -> None:
    spec = repo / "flow.yaml"
    spec.write_text(
        "# my workflow\nversion: 1\njobs:\n  # the first job\n  a: {run: echo a > a.out}\n"
    )
    editor = ccspec.edit(spec)
    editor.add_job("b", run="cat a.out > b.out", needs=["a"])
    editor.add_job("c", run="echo c > c.out")
    editor.add_need("c", "b")
    editor.save()
    text = spec.read_text()
    assert "# my workflow" in text and "# the first job" in text
    assert text.index("a:") < text.index("b:") < text.index("c:")
    state = repo / ".ccspec"
    planned = ccspec.plan(spec, state=state)
    assert [(j.id, j.action.value) for j in planned.jobs] == [
        ("a", "create"),
        ("b", "create"),
        ("c", "create"),
    ]
    outcome = ccspec.apply(spec, state=state, jobs=2)
    assert outcome.ok and (repo / "c.out").read_text() == "c\n"
    assert ccspec.plan(spec, state=state).is_empty
    editor = ccspec.edit(spec)
    editor.add_need("a", "c")  # a cycle: refused, the file is left as it was
    with pytest.raises(SpecInvalid, match="dependency cycle"):
        editor.save()
    assert spec.read_text() == text
    editor = ccspec.edit(spec)
    editor.remove_job("b")
    editor.save()
    assert "b:" not in spec.read_text() and ccspec.load(spec).jobs["c"].needs == ()
