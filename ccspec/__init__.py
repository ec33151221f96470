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
    from ccspec.engine import Outcome
    from ccspec.planner import Plan
    from ccspec.spec.edit import SpecEditor
    from ccspec.spec.resolved import ResolvedWorkflow
    from ccspec.spec.validate import SpecReport

__all__ = ["SpecEditor", "__version__", "apply", "edit", "load", "plan", "validate"]

__version__ = "0.1.0"

PathLike = str | os.PathLike[str]


def validate(
    paths: PathLike | Iterable[PathLike], vars: Mapping[str, Any] | None = None
) -> list[SpecReport]:
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


def edit(path: PathLike) -> SpecEditor:
    """Open a spec for editing; `save()` validates and keeps comments and order."""
    from pathlib import Path

    from ccspec.spec.edit import SpecEditor

    return SpecEditor(Path(path))


def plan(
    path: PathLike,
    vars: Mapping[str, Any] | None = None,
    *,
    state: PathLike | None = None,
    replace: Iterable[str] = (),
    targets: Iterable[str] = (),
) -> Plan:
    """What `apply` would run for one spec, and why."""
    from ccspec.runner import plan_workflow, state_dir
    from ccspec.state.store import StateStore

    store = StateStore(state_dir(os.fspath(state) if state else None))
    try:
        return plan_workflow(load(path, vars), store, replace=replace, targets=targets).plan
    finally:
        store.close()


def apply(
    path: PathLike,
    vars: Mapping[str, Any] | None = None,
    *,
    state: PathLike | None = None,
    jobs: int | None = None,
    replace: Iterable[str] = (),
    targets: Iterable[str] = (),
    wait: bool = False,
) -> Outcome:
    """Run what is new, changed or failed in one spec; returns every job's final view.

    `wait`: wait while another apply holds the workflow, then plan again what is still to do.
    An apply whose lease another one took over mid-run returns early with `Outcome.lost` set."""
    from ccspec.runner import apply_workflow, plan_workflow, state_dir
    from ccspec.state.store import StateStore

    folder = state_dir(os.fspath(state) if state else None)
    store = StateStore(folder)
    try:
        planned = plan_workflow(load(path, vars), store, replace=replace, targets=targets)
        return apply_workflow(
            planned,
            store,
            folder=folder,
            jobs=jobs or os.cpu_count() or 1,
            reporter=lambda event, view: None,
            wait=wait,
        )
    finally:
        store.close()


def __getattr__(name: str) -> Any:
    if name == "SpecEditor":
        from ccspec.spec.edit import SpecEditor

        return SpecEditor
    raise AttributeError(name)
