"""`ccspec apply` of several specs at once: each spec's workflow is planned and applied in a
thread of its own, all of them through one ledger of job slots (ccspec.slots), as `watch`
runs them. `-j` bounds this machine's jobs across every spec, a remote host's `max_jobs`
bounds its jobs across the specs that write it alike, and a freed slot goes to the fairest
spec waiting (the fewest slots held, then the least used lately), so specs interleave and a
large one starves no other. Called by `ccspec.cli.cmd_apply` when PATHS hold more than one
spec; one spec is applied in the main thread as before, with its live table on a terminal.

What it prints, in one stream: each spec's plan once it holds the spec's lease and planned,
its job events as lines (`12:00:01 spec/job started (attempt 1 on local)`), and its summary
line (ccspec.cli.apply_out) as it ends; an error of one spec (another apply holds it, its
lease was taken over) on stderr as it happens, while the others go on.

The exit code is the worst spec's: 130 when interrupted, a bug's (3, through the command's
handler), else the highest code of the specs' errors (5 state folder unwritable, 4 lease
taken over, 1 lease held), else 1 when a job failed, else 0.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ccspec.engine import Engine, Outcome
    from ccspec.spec.resolved import ResolvedWorkflow
    from ccspec.state.store import StateStore

__all__ = ["apply_many"]


@dataclass
class _Result:
    outcome: Outcome | None = None
    error: BaseException | None = None  # what its thread raised
    interrupted: bool = False  # interrupted before its run started
    waiting: bool = False  # for another apply of the workflow to end (--wait)


class _Applies:
    """The specs' threads, their engines (for Ctrl-C) and the one stream they print to."""

    def __init__(
        self,
        folder: Path,
        jobs: int,
        replace: tuple[str, ...],
        target: tuple[str, ...],
        wait: bool,
    ) -> None:
        from ccspec.slots import SlotLedger

        self.folder, self.jobs, self.wait = folder, jobs, wait
        self.replace, self.target = replace, target  # --replace and --target, for every spec
        self.ledger = SlotLedger()  # every spec's jobs share this machine's and hosts' slots
        self.lock = threading.Lock()  # one writer at a time: lines never mix
        self.engines: list[Engine] = []
        self.interrupts = 0

    def say(self, text: str, *, err: bool = False) -> None:
        with self.lock:
            click.echo(text, err=err)

    def started(self, engine: Engine) -> None:
        with self.lock:
            self.engines.append(engine)
            interrupts = self.interrupts
        if interrupts:  # Ctrl-C came while it planned
            engine.interrupt(force=interrupts > 1)

    def interrupt(self, signum: int, frame: FrameType | None) -> None:
        """SIGINT/SIGTERM: the first cancels every spec's running jobs, a second kills them."""
        with self.lock:
            self.interrupts += 1
            engines, count = list(self.engines), self.interrupts
        if count == 1:
            print(
                "\ncancelling running jobs (press Ctrl-C again to kill them at once)",
                file=sys.stderr,
                flush=True,
            )
        for engine in engines:
            engine.interrupt(force=count > 1)

    def apply(self, workflow: ResolvedWorkflow, result: _Result) -> None:
        """One spec, in its thread: lease, plan, run, summary; errors kept in `result`."""
        from ccspec.errors import CcspecError
        from ccspec.state.store import StateStore

        store: StateStore | None = None
        try:
            store = StateStore(self.folder)  # a connection per thread
            self._apply(store, workflow, result)
        except CcspecError as exc:
            result.error = exc
            self.say(f"ccspec: {exc}", err=True)
        except BaseException as exc:  # a bug: the command's handler says it (exit 3)
            result.error = exc
        finally:
            if store is not None:
                store.close()

    def _apply(self, store: StateStore, workflow: ResolvedWorkflow, result: _Result) -> None:
        from ccspec.cli.apply_out import apply_summary
        from ccspec.console import plain_reporter, plan_header
        from ccspec.runner import apply_workflow, leased, plan_workflow

        def waiting(line: str) -> None:
            self.say(line, err=True)

        result.waiting = True
        with leased(store, workflow.name, wait=self.wait, waiting=waiting) as token:
            result.waiting = False
            if self.interrupts:
                result.interrupted = True
                return
            planned = plan_workflow(workflow, store, replace=self.replace, targets=self.target)
            self.say(plan_header(planned.plan.workflow, planned.plan))
            began = time.monotonic()
            outcome = apply_workflow(
                planned,
                store,
                folder=self.folder,
                jobs=self.jobs,
                reporter=plain_reporter(workflow.name, self.say),
                lease=token,
                signals=False,
                started=self.started,
                slots=self.ledger,
            )
        result.outcome = outcome
        self.say(apply_summary(planned.plan, outcome, workflow.file, time.monotonic() - began))
        if outcome.lost is not None and not outcome.interrupted:
            self.say(f"ccspec: {outcome.lost}", err=True)


def apply_many(
    workflows: list[ResolvedWorkflow],
    folder: Path,
    *,
    jobs: int,
    replace: tuple[str, ...],
    target: tuple[str, ...],
    wait: bool,
) -> int:
    """Apply every workflow at once through shared job slots; the exit code (a bug of one
    of them is raised once all ended)."""
    import gc

    applies = _Applies(folder, jobs, replace, target, wait)
    results = [_Result() for _ in workflows]
    threads = [
        threading.Thread(target=applies.apply, args=(w, r), name=f"apply-{w.name}", daemon=True)
        for w, r in zip(workflows, results, strict=True)
    ]
    saved = {sig: signal.signal(sig, applies.interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    collecting = gc.isenabled()
    gc.enable()  # the command line starts with it off: runs may last for days
    try:
        for thread in threads:
            thread.start()
        for thread, result in zip(threads, results, strict=True):
            while thread.is_alive():
                thread.join(timeout=0.5)  # the main thread stays free for the signal handler
                if applies.interrupts and result.waiting:  # it would start nothing now
                    result.interrupted = True
                    break
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        if not collecting:
            gc.disable()
    return exit_code(results)


def exit_code(results: list[_Result]) -> int:
    """The worst spec decides (see the module's docstring); a bug is raised."""
    from ccspec.errors import CcspecError

    if any(r.interrupted or (r.outcome is not None and r.outcome.interrupted) for r in results):
        return 130
    for r in results:
        if r.error is not None and not isinstance(r.error, CcspecError):
            raise r.error
    codes = [0]
    for r in results:
        if isinstance(r.error, CcspecError):
            codes.append(r.error.exit_code)
        elif r.outcome is not None:
            lost = r.outcome.lost
            codes.append(lost.exit_code if lost is not None else 0 if r.outcome.ok else 1)
    return max(codes)
