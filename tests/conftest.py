"""Shared fixtures: a scratch repository to write specs into."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from ccspec.spec.validate import SpecReport, validate_file

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty git-like repository: `.git` marks its root for the path checks."""
    (tmp_path / ".git").mkdir()
    return tmp_path


SpecWriter = Callable[..., SpecReport]


@pytest.fixture
def check(repo: Path) -> SpecWriter:
    """Write a spec (dedented) into the scratch repo and validate it."""

    def write(text: str, name: str = "flow.yaml", **overrides: object) -> SpecReport:
        path = repo / name
        path.write_text(textwrap.dedent(text))
        return validate_file(path, overrides=overrides or None)

    return write
