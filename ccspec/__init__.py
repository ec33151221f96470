"""ccspec: declarative, GitOps-style workflow specs for hybrid HPC and cloud analytics.

The Python API. Heavy modules are imported on first use, so `import ccspec` stays cheap::

    import ccspec
    workflow = ccspec.load("specs/quickstart.yaml", vars={"rows": 1000})
    for report in ccspec.validate(["specs/"]):
        print(report.display, report.valid)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ccspec.spec.resolved import ResolvedWorkflow
    from ccspec.spec.validate import SpecReport

__all__ = ["__version__", "load", "validate"]

__version__ = "0.1.0"

PathLike = str | os.PathLike[str]


def validate(paths: PathLike | Iterable[PathLike], vars: Mapping[str, Any] | None = None) -> list[SpecReport]:
    """Validate spec files and folders; one report (with its diagnostics) per spec file."""
    from ccspec.spec.validate import validate_paths

    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    return validate_paths(items, vars)


def load(path: PathLike, vars: Mapping[str, Any] | None = None) -> ResolvedWorkflow:
    """Load one spec file as a resolved workflow; raises `SpecInvalid` listing every problem."""
    from pathlib import Path

    from ccspec.errors import SpecInvalid
    from ccspec.spec.validate import validate_file

    report = validate_file(Path(path), overrides=vars)
    if report.workflow is None:
        raise SpecInvalid(report.diagnostics)
    return report.workflow
