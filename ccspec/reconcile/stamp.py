"""What a resync of an unchanged spec compares instead of planning again: a stamp of what the
plan read. A workflow's plan depends on its resolved spec, the state store's records of it,
and the files its fingerprints hash (scripts, notebooks, declared inputs); its status file
and picture are rewritten when they differ from what the last run wrote. The stamp holds the
workflow's last event id and the (size, mtime, inode) of each of those files (an `inputs:`
glob is listed again, so a new match counts). Equal stamps: the plan would be the same, and
the pass is skipped at the cost of a stat per file and one indexed query.

A file changed within `RACY` seconds of being stamped may change again within the same
mtime tick: such a stamp is not trusted (the next resync plans), as git does with racy
index entries. Used by the workflow controllers (ccspec.reconcile.controller) and the
reconciler's spec reads (`file_stat`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ccspec.fingerprint import input_files

if TYPE_CHECKING:
    from ccspec.spec.resolved import ResolvedWorkflow
    from ccspec.state.store import StateStore

__all__ = ["RACY", "Racy", "Stamp", "Stat", "file_stat", "stamp_of"]

RACY = 2.0  # seconds: a file modified this recently may change again unseen by its mtime

Stat = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode
Stamp = tuple[int, tuple[tuple[str, Stat | None], ...]]  # last event, (path, stat) per file


def file_stat(path: Path | str, now: float | None = None) -> Stat | None:
    """A file's identity for change checks; None when missing, or when changed too recently
    (less than RACY seconds before `now`) for its stat to be trusted."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if now is not None and max(st.st_mtime, st.st_ctime) > now - RACY:
        raise Racy
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class Racy(Exception):
    """A stamped file changed too recently for its stat to be trusted."""


def _files(workflow: ResolvedWorkflow) -> list[Path]:
    base = workflow.base_dir
    folder = workflow.file.parent
    found = [folder / f"{workflow.name}.status.yaml", folder / f"{workflow.name}.svg"]
    for job in workflow.jobs.values():
        found += [base / rel for rel in (job.script, job.notebook) if rel is not None]
        if "inputs" in job.deferred:
            continue
        for pattern in job.inputs:
            found.append(base / pattern)  # a missing folder or file that appears later
            found += sorted(input_files(base, pattern))
    return found


def stamp_of(workflow: ResolvedWorkflow, store: StateStore) -> Stamp | None:
    """The workflow's stamp now; None when it cannot be trusted (a file changed too
    recently), so that the caller plans."""
    now = time.time()
    event = store.last_event(workflow.name)
    try:
        files = tuple((str(p), file_stat(p, now)) for p in _files(workflow))
    except Racy:
        return None
    return event, files
