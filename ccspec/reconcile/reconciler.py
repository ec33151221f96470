"""The reconciler: the loop of `ccspec watch`. A first pass over every spec, then passes for
the specs that file events concern (debounced) and a periodic resync of all of them; each
pass validates the specs it looks at and hands each workflow's desired state to its
controller (ccspec.reconcile.controller). Started by the `watch` command.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccspec.reconcile.controller import Controller
from ccspec.reconcile.files import is_spec_file, specs_touched, start_observer
from ccspec.reconcile.passes import PassLog, PassSnapshot
from ccspec.reconcile.stamp import Racy, Stat, file_stat
from ccspec.slots import SlotLedger

if TYPE_CHECKING:  # watchdog is imported when watching starts
    from watchdog.observers.api import BaseObserver

    from ccspec.state.store import StateStore

__all__ = ["DEBOUNCE", "DEBOUNCE_MAX", "Reconciler", "Say"]

DEBOUNCE = 0.1  # seconds of quiet after the last file event before re-planning
DEBOUNCE_MAX = 0.5  # ...but never wait longer than this while events keep coming

Say = Callable[[str], None]


def _warm_up_pictures() -> None:
    """The first in-process Graphviz render compiles it and is much slower than the next
    ones: do it while idle, not while a saved spec waits for its run to finish."""
    from ccspec.report.graph import render

    with contextlib.suppress(Exception):  # a picture is never worth failing the reconciler
        render("digraph { a }")


class Reconciler:
    """Keeps the workflows of spec files and folders converged until `stop()`."""

    def __init__(
        self,
        folders: Iterable[Path],
        *,
        state: Path,
        jobs: int,
        interval: float = 30.0,
        prune: bool = False,
        overrides: Mapping[str, Any] | None = None,
        say: Say = print,
    ) -> None:
        self.folders = [Path(f).resolve() for f in folders]
        self.state = state
        self.jobs = jobs
        self.interval = interval
        self.prune = prune
        self.overrides = dict(overrides or {})
        self.say = say
        self.events: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self.controllers: dict[str, Controller] = {}
        self.names: dict[Path, str] = {}  # spec file -> workflow name, as last read
        self.digests: dict[Path, str] = {}  # spec file -> content hash, as last read
        self.hashed: dict[Path, tuple[Stat, str]] = {}  # spec file -> (its stat, content hash)
        self.passes = PassLog()
        self.slots = SlotLedger()  # every workflow's jobs share this machine's and hosts' slots
        self._stop = threading.Event()
        self._observer: BaseObserver | None = None
        self._errors: dict[str, int] = {}  # failed passes per workflow, for /metrics
        self._errors_lock = threading.Lock()
        self._store: StateStore | None = None  # this thread's, for the stamps of resyncs

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        """Watch until `stop()`: a first pass over every spec, then events and resyncs."""
        self._observer = start_observer(self.folders, self.events)
        threading.Thread(target=_warm_up_pictures, name="warm-up", daemon=True).start()
        self._pass(self._spec_files(), resync=False)
        next_resync = time.monotonic() + self.interval
        try:
            while not self._stop.is_set():
                changed = self._collect(max(0.0, next_resync - time.monotonic()))
                if self._stop.is_set():
                    break
                if changed:
                    self._pass(
                        specs_touched(changed, self.names.keys() | set(self._spec_files())),
                        resync=False,
                    )
                if time.monotonic() >= next_resync:
                    self._pass(self._spec_files() | set(self.names), resync=True)
                    next_resync = time.monotonic() + self.interval
        finally:
            self._close()

    def stop(self) -> None:
        self._stop.set()
        self.events.put(None)

    def count_error(self, workflow: str) -> None:
        with self._errors_lock:
            self._errors[workflow] = self._errors.get(workflow, 0) + 1

    def count_pass(self, workflow: str, seconds: float, outcome: str) -> None:
        self.passes.count(workflow, seconds, outcome)

    def pass_snapshot(self) -> PassSnapshot:
        """Passes so far, their durations, and the passes waiting and under way now (called
        by the server's /metrics under `watch --serve`, from its threads)."""
        waiting = running = 0
        for controller in list(self.controllers.values()):
            state = controller.state()
            waiting += state == "waiting"
            running += state == "running"
        return self.passes.snapshot(waiting=waiting, running=running)

    def pass_errors(self) -> dict[str, int]:
        """Failed passes so far per workflow, 0 for every other workflow seen (called by the
        server's /metrics under `watch --serve`, from its threads)."""
        with self._errors_lock:
            return {**dict.fromkeys(list(self.controllers), 0), **self._errors}

    def _collect(self, timeout: float) -> set[Path]:
        """File events, debounced: wait for one, then until DEBOUNCE passes without another."""
        changed: set[Path] = set()
        try:
            first = self.events.get(timeout=timeout)
        except queue.Empty:
            return changed
        if first is None:
            return changed
        changed.add(first)
        began = time.monotonic()
        while time.monotonic() - began < DEBOUNCE_MAX:
            try:
                path = self.events.get(timeout=DEBOUNCE)
            except queue.Empty:
                break
            if path is None:
                break
            changed.add(path)
        return changed

    def _spec_files(self) -> set[Path]:
        found: set[Path] = set()
        for folder in self.folders:
            if folder.is_file():
                found.add(folder)
            elif folder.is_dir():
                found.update(
                    p.resolve() for p in folder.iterdir() if p.is_file() and is_spec_file(p)
                )
        return found

    def _pass(self, specs: Iterable[Path], *, resync: bool) -> None:
        try:
            self._pass_over(specs, resync=resync)
        finally:
            # closed between resyncs: SQLite keeps the descriptors of connections closed in
            # this process while another one is open on the same file
            if self._store is not None:
                with contextlib.suppress(Exception):
                    self._store.close()
                self._store = None

    def _pass_over(self, specs: Iterable[Path], *, resync: bool) -> None:
        from ccspec.spec.validate import validate_file

        for path in sorted(specs):
            if not path.exists():
                name = self.names.pop(path, None)
                self.digests.pop(path, None)
                self.hashed.pop(path, None)
                if name is not None:
                    self.say(
                        f"{name}: spec {path.name} deleted"
                        + (
                            "; cancelling its jobs"
                            if self.prune
                            else "; its running jobs keep running"
                        )
                    )
                    self._controller(name).want(None, deleted=True)
                continue
            digest = self._digest(path)
            if digest is None:
                continue
            if resync and digest == self.digests.get(path) and path in self.names:
                controller = self._controller(self.names[path])
                began = time.monotonic()
                if self._unchanged(controller):  # converged, and nothing it read changed
                    self.count_pass(controller.name, time.monotonic() - began, "unchanged")
                    continue
                # unchanged spec: the same wish again, re-planned (files may have changed)
                last = controller.desired
                controller.want(
                    last.workflow, deleted=last.deleted, invalid=last.invalid, resync=True
                )
                continue
            report = validate_file(path, overrides=self.overrides or None)
            self.digests[path] = digest
            name = report.name or path.stem
            self.names[path] = name
            if report.workflow is None:
                self.say(
                    f"{name}: {path.name} is invalid ({len(report.diagnostics)} error(s)); nothing new is launched"
                )
                self._controller(name).want(None, invalid=report)
                continue
            self._controller(name).want(report.workflow, resync=resync)

    def _digest(self, path: Path) -> str | None:
        """The spec's content hash, read again only when its stat changed (or is too recent
        to be trusted): a resync of unchanged specs costs a stat of each."""
        try:
            stat = file_stat(path, time.time())
        except Racy:  # changed too recently for its stat to tell: read it
            stat = None
        known = self.hashed.get(path)
        if stat is not None and known is not None and known[0] == stat:
            return known[1]
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return None
        if stat is not None:
            self.hashed[path] = (stat, digest)
        else:
            self.hashed.pop(path, None)
        return digest

    def _unchanged(self, controller: Controller) -> bool:
        """Whether the controller's workflow is converged with the same stamp (False when the
        state store cannot be read here: the controller's pass will say why)."""
        from ccspec.runner import state_dir
        from ccspec.state.store import StateStore

        try:
            if self._store is None:
                self._store = StateStore(state_dir(str(self.state)))
            return controller.unchanged(self._store)
        except Exception:
            if self._store is not None:
                with contextlib.suppress(Exception):
                    self._store.close()
            self._store = None
            return False

    def _controller(self, name: str) -> Controller:
        controller = self.controllers.get(name)
        if controller is None:
            controller = self.controllers[name] = Controller(name, self)
        return controller

    def _close(self) -> None:
        self.slots.stop()  # runs closed one by one: none starts jobs with slots another left
        if self._observer is not None:
            self._observer.stop()
        for controller in self.controllers.values():
            controller.close()
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
        if self._observer is not None:
            self._observer.join(timeout=5)
