"""Which files the reconciler watches: spec files, the specs a file event concerns, and the
watchdog observer that turns file events into paths on the reconciler's queue. ccspec's own
writes beside the specs (status files, pictures) are not events.

Used by the reconciler (ccspec.reconcile.reconciler) and, for `specs_touched`, its tests.
"""

from __future__ import annotations

import queue
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ccspec.spec.validate import SPEC_SUFFIXES

if TYPE_CHECKING:  # watchdog is imported when watching starts
    from watchdog.observers.api import BaseObserver

__all__ = ["is_ours", "is_spec_file", "specs_touched", "start_observer"]


def is_spec_file(path: Path) -> bool:
    return path.suffix in SPEC_SUFFIXES and not path.name.endswith((".status.yaml", ".status.yml"))


def is_ours(path: Path) -> bool:
    """Files ccspec writes beside the specs (and their temporary names): not events."""
    name = path.name
    return (
        name.endswith((".status.yaml", ".status.yml", ".svg"))
        or ".status.yaml." in name
        or ".svg." in name
        or name.startswith(".ccspec")
        or "/.ccspec/" in path.as_posix()
    )


def specs_touched(changed: Iterable[Path], specs: Iterable[Path]) -> set[Path]:
    """Pure: the specs to plan again after file events. A spec file counts itself; any other
    file (a script, a notebook, an input) counts for the specs in its folder or above it."""
    specs = list(specs)
    out: set[Path] = set()
    for path in changed:
        if is_ours(path):
            continue
        if is_spec_file(path):
            out.add(path)
            continue
        out.update(s for s in specs if path.is_relative_to(s.parent))
    return out


def start_observer(folders: Iterable[Path], events: queue.SimpleQueue[Path | None]) -> BaseObserver:
    """A started watchdog observer that puts the path of every file event under `folders` that
    is not ccspec's own on `events`; the caller stops and joins it."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if event.is_directory or event.event_type in ("opened", "closed_no_write"):
                return
            for raw in (event.src_path, getattr(event, "dest_path", "")):
                if raw:
                    path = Path(raw if isinstance(raw, str) else raw.decode()).resolve()
                    if not is_ours(path):
                        events.put(path)

    observer = Observer()
    for folder in folders:
        watched = folder if folder.is_dir() else folder.parent
        observer.schedule(Handler(), str(watched), recursive=True)
    observer.start()
    return observer
