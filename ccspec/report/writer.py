"""Keeps `NAME.status.yaml` and `NAME.svg` beside the spec up to date while a run goes on.

A reporter sink of the engine (called on every event): it writes at most every
STATUS_EVERY seconds, less often when the files are costly (a write waits COST_SHARE times
what the last one cost), and only files whose content changed. Files are rendered and
written by a worker thread from snapshots of the jobs, and the picture is laid out there
once per shape of the graph, so the engine never waits for either; later writes repaint
the kept layout (milliseconds).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from ccspec.engine import JobView
from ccspec.redact import redactor_for
from ccspec.report.graph import GraphNode, Painter
from ccspec.report.status import JobStatus, KeptFile, StatusRenderer, status_document
from ccspec.spec.resolved import ResolvedWorkflow
from ccspec.state import unwritable

__all__ = ["COST_PER_JOB", "COST_SHARE", "STATUS_EVERY", "StatusWriter"]

STATUS_EVERY = 0.5  # seconds: at most two status/SVG writes a second
# A write's cost (snapshot, render, files) times this is the least time to the next one. The
# writer's thread holds the GIL while it renders, and the engine's thread then waits for it
# after each of its system calls: a write delays a run of small jobs by about twice its own
# cost, so 40 keeps that delay near 5% of the run.
COST_SHARE = 40
# Before the first write its cost is not known: an estimate per job (snapshot, status file
# and picture) sets the time of the first write.
COST_PER_JOB = 50e-6


class StatusWriter:
    """Writes NAME.status.yaml and NAME.svg beside the spec while the engine runs: at most
    every STATUS_EVERY seconds, and only files whose content changed.

    The engine's thread only takes a snapshot of the jobs, which is cheap; a worker thread
    renders and writes the files, newest snapshot first, and lays out the picture when the
    graph's shape is new. It uses the GIL while the engine waits in SQLite, the file system
    or the kernel."""

    def __init__(
        self,
        workflow: ResolvedWorkflow,
        engine_views: Callable[[], Mapping[str, JobView]],
        needs: Callable[[str], tuple[str, ...]],
        svg: bool = True,
    ) -> None:
        self.workflow = workflow
        self.views = engine_views
        self.needs = needs
        self.svg = svg
        self.folder = workflow.file.parent
        self.dirty = True
        # the first write one interval after the start (short runs need none but the last),
        # an interval that a large workflow's cost stretches as later writes would be
        self.last = time.monotonic()
        self.interval = max(STATUS_EVERY, COST_SHARE * COST_PER_JOB * len(workflow.jobs))
        self.last_cost = 0.0  # seconds the last write took (snapshot, render, files)
        self.writes = 0  # snapshots written
        self._wake = threading.Condition()
        self._pending: tuple[list[JobStatus], list[GraphNode], float] | None = None
        self._layout_at = 0.0  # no new layout before this (monotonic): it takes CPU from the jobs
        self.painter = Painter(workflow.name)
        self.renderer = StatusRenderer()
        self.status_file = KeptFile(self.folder / f"{workflow.name}.status.yaml")
        self.svg_file = KeptFile(self.folder / f"{workflow.name}.svg")
        # the spec's `secrets:` vars and secret-looking environment values: never in the files
        self.secrets = redactor_for(workflow.vars, workflow.spec.secrets, environ=os.environ)
        self._thread: threading.Thread | None = None
        self._closing = False
        self.failed: dict[Path, OSError] = {}  # files whose last write failed, and why

    def __call__(self, event: str, view: JobView | None) -> None:
        if event not in ("tick", "idle"):
            self.dirty = True
        if event == "finished" or (self.dirty and time.monotonic() - self.last >= self.interval):
            self.write()

    def write(self) -> None:
        """Hand the worker a snapshot of the jobs."""
        self.dirty = False
        self.last = began = time.monotonic()
        views = list(self.views().values())
        statuses = [_status(v) for v in views]
        nodes: list[GraphNode] = []
        if self.svg:
            now = time.time()
            nodes = [
                GraphNode(
                    v.id,
                    v.state.value,
                    self.needs(v.id),
                    v.progress,
                    None if v.started is None else (v.finished or now) - v.started,
                    v.host,
                )
                for v in views
            ]
        with self._wake:
            self._pending = (statuses, nodes, time.monotonic() - began)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="status", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _work(self) -> None:
        svg_nodes: list[GraphNode] | None = None  # the newest picture not drawn yet
        while True:
            with self._wake:
                while (
                    self._pending is None
                    and not self._closing
                    and not (svg_nodes is not None and time.monotonic() >= self._layout_at)
                ):
                    self._wake.wait(
                        None if svg_nodes is None else max(0.0, self._layout_at - time.monotonic())
                    )
                pending, self._pending = self._pending, None
                closing = self._closing
            cost = 0.0
            if pending is not None:
                statuses, nodes, cost = pending
                began = time.monotonic()
                doc = status_document(self.workflow.name, statuses, redact=self.secrets)
                self._write(self.status_file, self.renderer.render(doc))
                cost += time.monotonic() - began
                if self.svg:
                    svg_nodes = nodes
            if svg_nodes is not None and (
                self.painter.fits(svg_nodes) or closing or time.monotonic() >= self._layout_at
            ):
                cost += self._draw(svg_nodes)
                svg_nodes = None
            if pending is not None:  # a large workflow's files cost more: write them less often
                self.last_cost = cost
                self.interval = max(STATUS_EVERY, COST_SHARE * cost)
                self.writes += 1
            if closing and pending is None and svg_nodes is None:
                return

    def _draw(self, nodes: list[GraphNode]) -> float:
        """Repaint the kept layout, or lay the graph out first (the first render compiles
        Graphviz; a large graph takes seconds) and then rest 9x as long as that took (at
        most 10 s) before the next layout, unless the run has ended. Returns the seconds the
        repaint took (a layout is paced on its own)."""
        if not self.painter.fits(nodes):
            began = time.monotonic()
            self.painter.lay_out(nodes)
            self._layout_at = time.monotonic() + min(10.0, 9 * (time.monotonic() - began))
        began = time.monotonic()
        self._write(self.svg_file, self.painter.paint(nodes))
        return time.monotonic() - began

    def close(self) -> None:
        """Write the last snapshot now and wait for it; raise when the status file could not be written."""
        with self._wake:
            self._closing = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join()
        # a file is out of date: say why (exit 5 on a full disk)
        for (
            path,
            exc,
        ) in self.failed.items():
            error = unwritable.for_file(exc, path)
            if error is None:
                raise exc
            raise error from exc

    def _write(self, file: KeptFile, content: str | bytes) -> None:
        """Write one file; a full or read-only folder does not stop the run (`close` reports it)."""
        try:
            file.write(content)
        except OSError as exc:
            self.failed[file.path] = exc
        else:
            self.failed.pop(file.path, None)


def _status(v: JobView) -> JobStatus:
    return JobStatus(
        v.id,
        v.state,
        v.host,
        v.attempt,
        v.fingerprint,
        v.started,
        v.finished,
        v.exit_code,
        v.progress,
        v.message,
        v.reason,
        v.outputs,
        v.usage,
        v.usage_warning,
    )
