"""The spec pipeline: read -> check shape -> resolve -> check workflow -> report.

Every command that reads specs (validate, plan, apply, watch, serve) comes through here, so
they all agree on what is valid. Bad input never raises: each file gets a `SpecReport` with
its diagnostics, and a workflow only when it has none.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ccspec.errors import Diagnostic, UsageError
from ccspec.spec.budget import overall
from ccspec.spec.checks import check_cycles, check_files, find_repo_root
from ccspec.spec.checks_slurm import check_arrays
from ccspec.spec.cloudmesh import looks_like_cloudmesh
from ccspec.spec.models import NAME_PATTERN, NAME_RULE, Workflow
from ccspec.spec.quoting import check_quoted_q
from ccspec.spec.resolve import resolve, suggest
from ccspec.spec.resolved import ResolvedWorkflow
from ccspec.spec.shape import shape_diagnostics
from ccspec.spec.source import Source, parse_text, read_source

__all__ = [
    "SpecReport",
    "collector_paused",
    "discover",
    "display_path",
    "validate_paths",
    "validate_source",
    "validate_text",
]

SPEC_SUFFIXES = (".yaml", ".yml")
SPEC_TEMPLATE_SECONDS = 60.0  # all the templates of one spec, rendered while it is validated


@dataclass
class SpecReport:
    """The outcome of reading one spec file."""

    file: Path
    display: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    workflow: ResolvedWorkflow | None = None
    source: Source | None = None
    name: str | None = None

    @property
    def valid(self) -> bool:
        return self.workflow is not None and not any(
            d.severity == "error" for d in self.diagnostics
        )


def display_path(path: Path) -> str:
    """A path as the user should see it: relative to the current folder when inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if relative.startswith("..") else relative


def discover(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Spec files named by `paths`: files as given, folders as their *.yaml/*.yml (not status files)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.iterdir()
                    if p.suffix in SPEC_SUFFIXES
                    and not p.name.endswith((".status.yaml", ".status.yml"))
                    and p.is_file()
                )
            )
        elif path.exists():
            found.append(path)
        else:
            raise UsageError(f"no such file or folder: {raw}")
    unique: dict[Path, None] = {}
    for p in found:
        unique.setdefault(p.resolve(), None)
    return list(unique)


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """`--var k=v` values; `v` is read as a YAML scalar, so `5` is a number and `true` a boolean."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--var takes NAME=VALUE, got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def validate_paths(
    paths: Iterable[str | os.PathLike[str]], overrides: Mapping[str, Any] | None = None
) -> list[SpecReport]:
    """Validate every spec under `paths`; checks that span files (names, --var) too."""
    overrides = dict(overrides or {})
    files = discover(paths)
    if not files:
        raise UsageError("no spec files found (a folder means its *.yaml and *.yml files)")
    reports = [validate_file(f, overrides=overrides) for f in files]
    declared = {
        k
        for r in reports
        if r.source is not None and isinstance(r.source.data.get("vars"), dict)
        for k in r.source.data["vars"]
    }
    for key in overrides:
        if key not in declared:
            raise UsageError(
                f"--var {key}: no spec declares this variable{suggest(key, declared)}; declared: {', '.join(sorted(declared)) or 'none'}"
            )
    owners: dict[str, SpecReport] = {}
    for report in reports:
        if report.name is None:
            continue
        first = owners.setdefault(report.name, report)
        if first is not report:
            line, col = report.source.locate(("name",)) if report.source else (1, 1)
            report.diagnostics.append(
                Diagnostic(
                    report.display,
                    line,
                    col,
                    f"workflow name {report.name!r} is also used by {first.display}; names must be unique (set `name:`)",
                    "duplicate-workflow",
                )
            )
            report.workflow = None
    return reports


def validate_file(
    path: Path, *, overrides: Mapping[str, Any] | None = None, repo_root: Path | None = None
) -> SpecReport:
    display = display_path(path)
    with collector_paused():
        source, problems = read_source(path, display)
        if source is None:
            return SpecReport(path, display, problems)
        return validate_source(
            source, path, overrides=overrides, repo_root=repo_root, problems=problems
        )


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a spec's many small objects.

    Loading makes hundreds of thousands of objects and no cycles; with the collector on it
    re-scans them over and over, which costs more than building them.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def validate_text(
    text: str,
    path: Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    repo_root: Path | None = None,
) -> SpecReport:
    """Validate spec text as if it were the file `path` (used for uploads and edits)."""
    display = display_path(path)
    source, problems = parse_text(text, display)
    if source is None:
        return SpecReport(path, display, problems)
    return validate_source(
        source, path, overrides=overrides, repo_root=repo_root, problems=problems
    )


def validate_source(
    source: Source,
    path: Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    repo_root: Path | None = None,
    problems: list[Diagnostic] | None = None,
) -> SpecReport:
    report = SpecReport(path, source.file, list(problems or []), source=source)
    data = source.data
    bad: dict[str, set[str]] = {}
    spec: Workflow | None
    if looks_like_cloudmesh(data):  # another tool's format: say how to convert it, not 3 errors
        report.diagnostics.append(
            source.diagnostic(
                ("workflow",),
                "this is a cloudmesh-cc workflow, not a ccspec spec; convert it with "
                f"`ccspec import cloudmesh-cc {shlex.quote(source.file)} -o NEW.yaml`",
                "cloudmesh-cc-workflow",
                key=True,
            )
        )
        return report
    try:
        spec = Workflow.model_validate(data)
    except ValidationError as exc:
        shape, bad = shape_diagnostics(source, exc)
        report.diagnostics.extend(shape)
        spec = _without(data, bad)
        if spec is None:
            report.diagnostics.sort()
            return report
    name = spec.name or _stem_name(path)
    report.name = name
    if spec.name is None and not re.match(NAME_PATTERN, name):
        report.diagnostics.append(
            Diagnostic(
                source.file,
                1,
                1,
                f"the file name gives the workflow name {name!r}, which is not valid ({NAME_RULE}); rename the file or set `name:`",
                "invalid-name",
            )
        )
    vars = {**spec.vars, **{k: v for k, v in (overrides or {}).items() if k in spec.vars}}
    with overall(SPEC_TEMPLATE_SECONDS):  # each template has its own limits; this bounds them all
        resolved, found = resolve(
            source,
            spec,
            name=name,
            vars=vars,
            file=path.resolve(),
            invalid=frozenset(bad.get("jobs", set()) | bad.get("hosts", set())),
        )
    report.diagnostics.extend(found)
    order, cycles = check_cycles(resolved, source)
    report.diagnostics.extend(cycles)
    root = repo_root or find_repo_root(path.resolve().parent)
    report.diagnostics.extend(check_files(resolved, source, root))
    report.diagnostics.extend(check_arrays(resolved, source))
    report.diagnostics.extend(check_quoted_q(spec, source))  # warnings: the spec stays valid
    if not any(d.severity == "error" for d in report.diagnostics):
        report.workflow = dataclasses.replace(
            resolved, jobs={jid: resolved.jobs[jid] for jid in order}
        )
    report.diagnostics.sort()
    return report


def _without(data: Any, bad: dict[str, set[str]]) -> Workflow | None:
    """The spec minus the parts that failed, so the rest can still be checked; None if hopeless."""
    if not isinstance(data, dict) or "version" in bad:
        return None
    trimmed: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("jobs", "hosts") and isinstance(value, dict):
            trimmed[key] = {k: v for k, v in value.items() if k not in bad.get(key, set())}
        elif key not in bad:
            trimmed[key] = value
    try:
        return Workflow.model_validate(trimmed)
    except ValidationError:
        return None


def _stem_name(path: Path) -> str:
    stem = path.name
    for suffix in SPEC_SUFFIXES:
        stem = stem.removesuffix(suffix)
    return stem.lower()
