"""Shell completion of workflow and job names, for click's `shell_complete` hooks on
`logs`, `cancel` and `graph` (WORKFLOW, JOB) and on `plan`/`apply` `--replace`/`--target`.

Names come from the recorded state (the workflows ever applied with the state folder, their
jobs: matrix members too) and from the specs (`name:` and `jobs:` of the spec files under
`specs/`, or of the PATHS already typed). A completion runs on every Tab press, so it reads
the state database read-only with plain SQL and the specs with the YAML parser only (no
validation, none of ccspec's heavy modules), and it never fails: a missing or unreadable state
folder or spec offers fewer names, never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.shell_completion import CompletionItem

if TYPE_CHECKING:  # imported on a completion only: `ccspec --help` stays fast
    import sqlite3

__all__ = ["complete_job", "complete_spec_job", "complete_workflow", "complete_workflow_or_file"]

_SUFFIXES = (".yaml", ".yml")
_LARGEST = 10 * 1024 * 1024  # validate refuses larger spec files too


def complete_workflow(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """WORKFLOW: the applied workflows and those of the specs under specs/."""
    try:
        names = set(_recorded_workflows(ctx)) | {name for name, _ in _specs(["specs"])}
    except Exception:  # a completion must never print a traceback into the shell
        return []
    return _items(names, incomplete)


def complete_workflow_or_file(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """`graph` takes a workflow's name or a spec file: a path is completed as a file."""
    if "/" in incomplete or incomplete.startswith("."):
        return [CompletionItem(incomplete, type="file")]
    return complete_workflow(ctx, param, incomplete)


def complete_job(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """JOB of the WORKFLOW typed before it: its recorded jobs (ids and names) and the jobs
    of its spec (the file it was applied from, or the spec of that name under specs/)."""
    workflow = ctx.params.get("workflow")
    if not isinstance(workflow, str):
        return []
    try:
        names = set(_recorded_jobs(ctx, [workflow]))
        spec = _recorded_spec(ctx, workflow)
        files = [spec] if spec else ["specs"]
        names |= {job for name, jobs in _specs(files) if name == workflow for job in jobs}
    except Exception:  # a completion must never print a traceback into the shell
        return []
    return _items(names, incomplete)


def complete_spec_job(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """`--replace`/`--target` JOB of `plan`/`apply`: the jobs of the specs in the PATHS
    typed so far, or under specs/ (and the recorded ids of their workflows' jobs: matrix
    members)."""
    # while an option's value is completed, click leaves the arguments before it unparsed
    paths = ctx.params.get("paths") or [a for a in ctx.args if not a.startswith("-")] or ["specs"]
    try:
        specs = list(_specs([str(p) for p in paths]))
        names = {job for _, jobs in specs for job in jobs}
        names |= set(_recorded_jobs(ctx, [name for name, _ in specs]))
    except Exception:  # a completion must never print a traceback into the shell
        return []
    return _items(names, incomplete)


def _items(names: Iterable[str], incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(n) for n in sorted(names) if n.startswith(incomplete)]


def _database(ctx: click.Context) -> sqlite3.Connection | None:
    """The state database, read-only; None when there is none. The folder is found as the
    commands find it (--state, $CCSPEC_STATE, .ccspec) without importing them."""
    option = ctx.params.get("state_opt")
    folder = Path(str(option) if option else os.environ.get("CCSPEC_STATE") or ".ccspec")
    db = folder / "state.db"
    if not db.is_file():
        return None
    import sqlite3

    # read-only: a completion neither creates nor migrates a state folder
    return sqlite3.connect(f"file:{db.resolve()}?mode=ro", uri=True, timeout=0.5)


def _query(ctx: click.Context, sql: str, args: Sequence[str] = ()) -> list[tuple[object, ...]]:
    """Rows of `sql` on the state database; none when there is no database, or one that
    cannot be read (locked, damaged, not a database): the specs still offer their names."""
    import sqlite3

    try:
        conn = _database(ctx)
        if conn is None:
            return []
        with closing(conn):
            return list(conn.execute(sql, args))
    except sqlite3.Error:
        return []


def _recorded_workflows(ctx: click.Context) -> list[str]:
    return [str(r[0]) for r in _query(ctx, "SELECT name FROM workflows")]


def _recorded_jobs(ctx: click.Context, workflows: list[str]) -> set[str]:
    if not workflows:
        return set()
    marks = ",".join("?" * len(workflows))
    rows = _query(ctx, f"SELECT id, name FROM jobs WHERE workflow IN ({marks})", workflows)
    return {str(v) for row in rows for v in row}


def _recorded_spec(ctx: click.Context, workflow: str) -> str | None:
    rows = _query(ctx, "SELECT spec_path FROM workflows WHERE name=?", [workflow])
    spec = rows[0][0] if rows else None
    return str(spec) if spec and Path(str(spec)).is_file() else None


def _specs(paths: list[str]) -> Iterator[tuple[str, list[str]]]:
    """(workflow name, job names) of the spec files in `paths` (files, or folders' *.yaml
    and *.yml but their status files); a file that does not parse is left out."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # safe, in C where built
    for path in _spec_files(paths):
        try:
            if path.stat().st_size > _LARGEST:
                continue
            doc = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        except (OSError, UnicodeError, yaml.YAMLError):
            continue
        if not isinstance(doc, dict):
            continue
        name = doc.get("name")
        if not isinstance(name, str):
            name = path.name.removesuffix(path.suffix).lower()  # as validate names it
        jobs = doc.get("jobs")
        yield name, [str(j) for j in jobs] if isinstance(jobs, dict) else []


def _spec_files(paths: list[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(
                p
                for p in path.iterdir()
                if p.suffix in _SUFFIXES
                and not p.name.endswith((".status.yaml", ".status.yml"))
                and p.is_file()
            )
        elif path.is_file():
            yield path
