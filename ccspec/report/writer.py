"""Keeps `NAME.status.yaml` and `NAME.svg` beside the spec up to date while a run goes on.

A reporter sink of the engine (called on every event): it writes at most every
STATUS_EVERY seconds, less often when the files are costly, and only files whose content
changed. The picture is laid out in a worker thread, once per shape of the graph, so the
engine never waits for it; later writes repaint the kept layout (milliseconds).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping

from ccspec.engine import JobView
from ccspec.redact import environment_secrets, secret_values
from ccspec.report.graph import GraphNode, Painter
from ccspec.report.status import JobStatus, StatusRenderer, status_document, write_if_changed
from ccspec.spec.resolved import ResolvedWorkflow

__all__ = ["STATUS_EVERY", "StatusWriter"]

STATUS_EVERY = 0.5  # seconds: at most two status/SVG writes a second


class StatusWriter:
    """Writes NAME.status.yaml and NAME.svg beside the spec while the engine runs: at most
    every STATUS_EVERY seconds, and only files whose content changed."""

    def __init__(self, workflow: ResolvedWorkflow, engine_views: Callable[[], Mapping[str, JobView]],
                 needs: Callable[[str], tuple[str, ...]], svg: bool = True) -> None:
        self.workflow = workflow
        self.views = engine_views
        self.needs = needs
        self.svg = svg
        self.folder = workflow.file.parent
        self.dirty = True
        self.last = 0.0
        self.interval = STATUS_EVERY
        self._lock = threading.Lock()
        self._pending: list[GraphNode] | None = None
        self.painter = Painter(workflow.name)
        self.renderer = StatusRenderer()
        # the spec's `secrets:` vars and secret-looking environment values: never in the files
        self.secrets = [*secret_values(workflow.vars, workflow.spec.secrets), *environment_secrets(os.environ)]
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    def __call__(self, event: str, view: JobView | None) -> None:
        if event != "tick":
            self.dirty = True
        if event == "finished" or (self.dirty and time.monotonic() - self.last >= self.interval):
            self.write()

    def write(self) -> None:
        began = time.monotonic()
        self.dirty = False
        self._write()
        self.last = time.monotonic()
        # A large workflow's file costs more to write: never spend more than ~10% of the time on it.
        self.interval = max(STATUS_EVERY, 10 * (self.last - began))

    def _write(self) -> None:
        views = list(self.views().values())
        secrets = self.secrets
        doc = status_document(self.workflow.name, [_status(v) for v in views], redact=secrets)
        write_if_changed(self.folder / f"{self.workflow.name}.status.yaml", self.renderer.render(doc))
        if self.svg:
            now = time.time()
            nodes = [GraphNode(v.id, v.state.value, self.needs(v.id), v.progress,
                               None if v.started is None else (v.finished or now) - v.started, v.host) for v in views]
            if self.painter.fits(nodes):
                write_if_changed(self.folder / f"{self.workflow.name}.svg", self.painter.paint(nodes))
            else:
                self._draw(nodes)

    def _draw(self, nodes: list[GraphNode]) -> None:
        """Lay out in a worker thread (the first render compiles Graphviz, ~0.5 s; a large
        graph takes seconds): the engine never waits for a picture. Only the newest state is
        drawn."""
        with self._lock:
            self._pending = nodes
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._drain, name="svg", daemon=True)
                self._thread.start()

    def _drain(self) -> None:
        while True:
            with self._lock:
                nodes, self._pending = self._pending, None
            if nodes is None:
                return
            began = time.monotonic()
            laid_out = not self.painter.fits(nodes)
            if laid_out:
                self.painter.lay_out(nodes)
            with self._lock:  # states may have moved on while it was laid out
                newest = self._pending if self._pending is not None and self.painter.fits(self._pending) else nodes
                if newest is self._pending:
                    self._pending = None
            write_if_changed(self.folder / f"{self.workflow.name}.svg", self.painter.paint(newest))
            # Laying out a large graph takes CPU from the jobs: rest 9x as long as it took
            # (at most 10 s), unless the run has ended and the last picture is wanted now.
            if laid_out:
                self._closing.wait(min(10.0, 9 * (time.monotonic() - began)))

    def close(self) -> None:
        """Draw the last picture now and wait for it."""
        self._closing.set()
        thread = self._thread
        if thread is not None:
            thread.join()


def _status(v: JobView) -> JobStatus:
    return JobStatus(v.id, v.state, v.host, v.attempt, v.fingerprint, v.started, v.finished, v.exit_code, v.progress,
                     v.message, v.reason, v.outputs)
