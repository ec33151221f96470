"""What apply prints: one line per event (for logs and CI), or a live table on a terminal.

Reporters share one call signature, `(event, view)`, like the status writer.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from ccspec.engine import JobView
from ccspec.planner import Plan

__all__ = ["make_reporter", "plain_reporter", "plan_header"]

_SHOWN = {
    "started",
    "queued",
    "running",
    "unknown",
    "attached",
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
    "skipped",
    "lost",
    "retrying",
}


def plan_header(workflow: str, plan: Plan) -> str:
    """The workflow's jobs to run and up to date, then a line per job not up to date."""
    fresh = sum(1 for j in plan.jobs if j.action.value == "up_to_date")
    lines = [f"{workflow}: {len(plan.to_run)} to run, {fresh} up to date"]
    lines.extend(f"  {job.line()}" for job in plan.jobs if job.action.value != "up_to_date")
    return "\n".join(lines)


@contextlib.contextmanager
def make_reporter(workflow: str, plan: Plan) -> Iterator[Any]:
    sys.stdout.write(plan_header(workflow, plan) + "\n")  # one write, not one per job
    sys.stdout.flush()
    if sys.stdout.isatty():
        with _live(workflow) as reporter:
            yield reporter
    else:
        reporter = _lines(workflow)
        try:
            yield reporter
        finally:
            reporter.flush()


def plain_reporter(workflow: str, say: Callable[[str], None]) -> Any:
    """Event lines through `say` (the reconciler prints every workflow's lines in one stream)."""
    return _lines(workflow, say)


LINES_EVERY = 0.05  # seconds: printed lines reach stdout at least this often (one write for all)


def _lines(workflow: str, say: Callable[[str], None] | None = None) -> Any:
    """Event lines: through `say`, or gathered and written to stdout together (a write and
    a flush per line were a measurable part of a run of small jobs): before the engine
    sleeps, on its tick once LINES_EVERY seconds passed since the first of them, and at the
    end of the run."""
    pending: list[str] = []
    since = 0.0  # monotonic time of the oldest pending line

    def out(line: str) -> None:
        nonlocal since
        if say is not None:
            say(line)
            return
        if not pending:
            since = time.monotonic()
        pending.append(line)

    def flush() -> None:
        if pending:
            sys.stdout.write("\n".join(pending) + "\n")
            pending.clear()
            sys.stdout.flush()

    def report(event: str, view: JobView | None) -> None:
        if event in ("tick", "idle", "finished"):
            if pending and (event != "tick" or time.monotonic() - since >= LINES_EVERY):
                flush()
            return
        if view is None or event not in _SHOWN:
            return
        stamp = time.strftime("%H:%M:%S")
        detail = ""
        if event in ("started", "queued"):
            detail = f" (attempt {view.attempt} on {view.host})"
        elif event == "running" and view.started:  # left a scheduler's queue
            detail = f" on {view.host}"
        elif event == "unknown":
            out(f"{stamp} {workflow}/{view.id} {view.message}")
            return
        elif event in ("succeeded", "failed", "timed_out", "cancelled", "lost") and view.started:
            detail = f" after {max(0.0, (view.finished or time.time()) - view.started):.1f}s"
        if view.reason and event != "succeeded":
            detail += f": {view.reason}"
        if event in ("failed", "timed_out", "lost") and view.log_path:
            detail += f" (log: {view.log_path})"
        out(f"{stamp} {workflow}/{view.id} {event}{detail}")

    report.flush = flush  # type: ignore[attr-defined]
    return report


@contextlib.contextmanager
def _live(workflow: str) -> Iterator[Any]:
    from rich.console import Console
    from rich.live import Live
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    views: dict[str, JobView] = {}
    console = Console()

    def table() -> Table:
        t = Table(title=workflow, expand=False)
        for column in ("job", "state", "progress", "elapsed", "note"):
            t.add_column(column)
        now = time.time()
        for v in views.values():
            elapsed = "" if v.started is None else f"{(v.finished or now) - v.started:.1f}s"
            bar = ProgressBar(
                total=100,
                completed=v.progress or (100 if v.state.value == "succeeded" else 0),
                width=20,
            )
            t.add_row(v.id, v.state.value, bar, elapsed, (v.message or v.reason or "")[:60])
        return t

    with Live(table(), console=console, refresh_per_second=4, transient=False) as live:

        def report(event: str, view: JobView | None) -> None:
            if event == "idle":
                return
            if view is not None:
                views[view.id] = view
            live.update(table())

        yield report
