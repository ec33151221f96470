"""Whole-workflow checks on resolved jobs: dependency cycles and the files jobs refer to.

Called by `ccspec.spec.validate` after `resolve`, and (the file checks) by
`ccspec.spec.resolve.resolve_at_launch` for jobs rendered at launch. The cycle check is pure;
the file checks look at the disk (existence, kind, place inside the repository) and nothing else.
"""

from __future__ import annotations

import graphlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from ccspec.errors import Diagnostic
from ccspec.fingerprint import input_files
from ccspec.interpreters import SUFFIXES, interpreter_argv
from ccspec.spec.resolved import ResolvedJob, ResolvedWorkflow
from ccspec.spec.source import Source, ValuePath

__all__ = [
    "check_cycles",
    "check_files",
    "check_launch_files",
    "find_repo_root",
    "topological_order",
]

MAX_CYCLES_REPORTED = 5


def topological_order(needs: dict[str, tuple[str, ...]]) -> list[str]:
    """Ids in an order where every job comes after what it needs; raises graphlib.CycleError."""
    return list(graphlib.TopologicalSorter(needs).static_order())


def check_cycles(workflow: ResolvedWorkflow, source: Source) -> tuple[list[str], list[Diagnostic]]:
    """Return a topological order of the job ids and one diagnostic per cycle found."""
    graph = {
        jid: tuple(n for n in job.needs if n in workflow.jobs) for jid, job in workflow.jobs.items()
    }
    problems: list[Diagnostic] = []
    for _ in range(MAX_CYCLES_REPORTED):
        try:
            return topological_order(graph), problems
        except graphlib.CycleError as exc:
            # [a, b, ..., a], each needing the next one's predecessor
            cycle: list[str] = list(exc.args[1])
            path = list(reversed(cycle))  # a needs b needs c ... needs a
            first = workflow.jobs[path[0]]
            second = path[1]
            index = _need_index(workflow, path[0], second)
            problems.append(
                source.diagnostic(
                    ("jobs", first.name, "needs", index)
                    if index is not None
                    else ("jobs", first.name, "needs"),
                    "dependency cycle: "
                    + " -> ".join(path)
                    + " (each needs the next); remove one of these needs",
                    "cycle",
                )
            )
            # break it, look for more
            graph[path[0]] = tuple(n for n in graph[path[0]] if n != second)
    return [], problems


def _need_index(workflow: ResolvedWorkflow, job_id: str, needed: str) -> int | None:
    job = workflow.jobs[job_id]
    raw = workflow.spec.jobs[job.name].needs
    for i, entry in enumerate(raw):
        if entry == needed or needed in workflow.groups.get(entry, ()):
            return i
    return None


def find_repo_root(start: Path) -> Path:
    """The nearest folder above `start` holding `.git`; `start` itself when there is none."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


class _FileChecker:
    def __init__(self, workflow: ResolvedWorkflow, source: Source, repo_root: Path) -> None:
        self.workflow = workflow
        self.source = source
        self.repo_root = repo_root.resolve()
        self.allow_outside = workflow.spec.allow_outside_repo
        self.problems: dict[tuple[str, ValuePath], Diagnostic] = {}
        self.outside_match: dict[
            str, Path | None
        ] = {}  # input pattern -> a match outside the repository

    def error(self, path: ValuePath, message: str, code: str) -> None:
        d = self.source.diagnostic(path, message, code)
        self.problems.setdefault((d.message, path), d)

    def place(self, raw: str, path: ValuePath, what: str) -> Path | None:
        """The absolute path of `raw`, or None (and a diagnostic) when it may not be used."""
        candidate = Path(os.path.expanduser(raw) if raw.startswith("~") else raw)
        if candidate.is_absolute() and not self.allow_outside:
            self.error(
                path,
                f"{what} path {raw!r} is absolute; use a path relative to the spec's folder, or set `allow_outside_repo: true`",
                "path-outside-repo",
            )
            return None
        full = Path(os.path.normpath(self.workflow.base_dir.resolve() / candidate))
        if not self.allow_outside and not _is_within(full, self.repo_root):
            self.error(
                path,
                f"{what} path {raw!r} leads outside the repository ({self.repo_root}); keep job files in the repository, or set `allow_outside_repo: true`",
                "path-outside-repo",
            )
            return None
        return full

    def file(self, raw: str, path: ValuePath, what: str) -> Path | None:
        full = self.place(raw, path, what)
        if full is None:
            return None
        if not full.is_file():
            state = "is a folder, not a file" if full.is_dir() else "does not exist"
            self.error(
                path,
                f"{what} file {raw!r} {state} (looked for {full}); fix the path, which is relative to {self.workflow.base_dir}",
                f"missing-{what}",
            )
            return None
        return full

    def run(self, jobs: Iterable[ResolvedJob]) -> list[Diagnostic]:
        for job in jobs:
            # a pending fan-out's paths may use matrix values known only later
            if not job.fanout_pending:
                self.job(job)
        return sorted(self.problems.values())

    def job(self, job: ResolvedJob) -> None:
        base: ValuePath = ("jobs", job.name)
        if job.script is not None and "script" not in job.deferred:
            full = self.file(job.script, (*base, "script"), "script")
            if (
                full is not None
                and interpreter_argv(job.script, job.interpreter) is None
                and not os.access(full, os.X_OK)
            ):
                known = ", ".join(sorted(SUFFIXES))
                self.error(
                    (*base, "script"),
                    f"cannot tell how to run {job.script!r}: set `interpreter:`, use a known suffix ({known}) or make it executable with a #! line",
                    "unknown-interpreter",
                )
        if job.notebook is not None:
            full = self.file(job.notebook, (*base, "notebook"), "notebook")
            if full is not None:
                self._notebook(full, job.notebook, (*base, "notebook"))
        for i, pattern in enumerate(job.inputs):
            if (
                "inputs" not in job.deferred
                and self.place(pattern, (*base, "inputs", i), "input") is not None
            ):
                self._input_links(pattern, (*base, "inputs", i))
        if job.workdir is not None and "workdir" not in job.deferred:
            own = "workdir" in self.workflow.spec.jobs[job.name].model_fields_set
            self.place(
                job.workdir, (*base, "workdir") if own else ("defaults", "workdir"), "workdir"
            )

    def _input_links(self, pattern: str, path: ValuePath) -> None:
        """A pattern inside the repository may still match a link that leads out of it."""
        if self.allow_outside:
            return
        if pattern not in self.outside_match:  # matrix members often share their patterns
            base = self.workflow.base_dir
            self.outside_match[pattern] = next(
                (m for m in input_files(base, pattern) if not _is_within(m, self.repo_root)), None
            )
        match = self.outside_match[pattern]
        if match is not None:
            shown = os.path.relpath(match, self.workflow.base_dir)
            self.error(
                path,
                f"input {pattern!r} matches {shown!r}, a link to {match.resolve()} outside the repository ({self.repo_root}); remove the link or the file from the inputs, or set `allow_outside_repo: true`",
                "path-outside-repo",
            )

    def _notebook(self, full: Path, raw: str, path: ValuePath) -> None:
        if full.suffix != ".ipynb":
            self.error(
                path, f"notebook {raw!r} must be a Jupyter notebook (.ipynb)", "bad-notebook"
            )
            return
        try:
            document = json.loads(full.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self.error(
                path,
                f"notebook {raw!r} is not valid notebook JSON ({exc}); open and save it in Jupyter",
                "bad-notebook",
            )
            return
        if not isinstance(document, dict) or not isinstance(document.get("cells"), list):
            self.error(
                path,
                f"notebook {raw!r} has no `cells` list; it is not a Jupyter notebook",
                "bad-notebook",
            )


def check_files(workflow: ResolvedWorkflow, source: Source, repo_root: Path) -> list[Diagnostic]:
    """Problems with the files and folders the workflow's jobs name (validate calls this)."""
    return _FileChecker(workflow, source, repo_root).run(workflow.jobs.values())


def check_launch_files(workflow: ResolvedWorkflow, jobs: Iterable[ResolvedJob]) -> list[Diagnostic]:
    """The same checks for jobs rendered at launch (a matrix or fields known only from
    upstream outputs), so a path that validate could not see yet obeys the same rules."""
    root = find_repo_root(workflow.base_dir.resolve())
    return _FileChecker(workflow, workflow.source, root).run(jobs)


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True
