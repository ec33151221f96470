from __future__ import annotations

from pathlib import Path

import pytest

import ccspec
from ccspec.errors import SpecInvalid
from tests.conftest import REPO


def test_exported_names_are_pinned() -> None:
    assert sorted(ccspec.__all__) == ["__version__", "load", "validate"]


def test_load_and_validate(tmp_path: Path) -> None:
    workflow = ccspec.load(REPO / "specs" / "quickstart.yaml", vars={"rows": 10})
    assert workflow.name == "quickstart" and list(workflow.jobs) == ["generate", "summarise", "report"]
    assert workflow.jobs["generate"].args == ("10", "7")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\njobs: {a: {run: x, needs: [b]}}\n")
    with pytest.raises(SpecInvalid) as info:
        ccspec.load(bad)
    assert info.value.diagnostics[0].code == "unknown-need"
    [report] = ccspec.validate(bad)
    assert not report.valid
