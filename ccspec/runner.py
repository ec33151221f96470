"""Plan and apply, end to end: specs -> validate -> facts -> plan -> engine -> status files.

The glue between the pure core (validate, plan) and the I/O (state store, targets, files),
used by the CLI and the Python API.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from ccspec.engine import LEASE_TTL, Engine, JobView, Outcome
from ccspec.errors import CcspecError, Diagnostic
from ccspec.fanout import with_members
from ccspec.fingerprint import Facts, Fingerprint, fingerprints, gather_facts
from ccspec.planner import Action, Plan, make_plan
from ccspec.redact import masked_diagnostics
from ccspec.report.status import render_status, status_document, write_if_changed
from ccspec.report.writer import StatusWriter
from ccspec.settle import cancel_attempts, job_statuses, settle, spec_hosts
from ccspec.slots import SlotLedger
from ccspec.spec.resolve import resolve_at_launch, upstream_context
from ccspec.spec.resolved import ResolvedWorkflow
from ccspec.spec.validate import SpecReport, collector_paused, validate_paths
from ccspec.state.store import RecordedJob, StateStore

__all__ = [
    "Planned",
    "apply_workflow",
    "cancel_attempts",
    "current_plan",
    "job_statuses",
    "leased",
    "load_specs",
    "plan_workflow",
    "settle",
    "spec_hosts",
    "state_dir",
    "write_invalid_status",
]


def state_dir(option: str | None = None) -> Path:
    return Path(option or os.environ.get("CCSPEC_STATE") or ".ccspec")


def load_specs(
    paths: Iterable[str],
    overrides: Mapping[str, Any] | None = None,
    *,
    record_invalid: bool = False,
) -> tuple[list[SpecReport], list[Diagnostic]]:
    reports = validate_paths(paths, overrides)
    # `validate` shows warnings
    problems = [
        d for r in reports for d in masked_diagnostics(r, overrides) if d.severity == "error"
    ]
    for report in reports:
        if record_invalid and not report.valid:
            write_invalid_status(report, overrides)
    return reports, problems


def write_invalid_status(report: SpecReport, overrides: Mapping[str, Any] | None = None) -> None:
    if report.name is None:
        return
    doc = status_document(report.name, [], [str(d) for d in masked_diagnostics(report, overrides)])
    write_if_changed(report.file.parent / f"{report.name}.status.yaml", render_status(doc))


@dataclass
class Planned:
    workflow: ResolvedWorkflow
    plan: Plan
    facts: Facts
    fingerprints: dict[str, Fingerprint]
    recorded: Mapping[str, RecordedJob]
    # how it was made, to make it again if it is stale when the lease is held (`current_plan`)
    source: ResolvedWorkflow | None = None
    replace: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    seen: int = -1  # the workflow's last event before the records were read


def plan_workflow(
    workflow: ResolvedWorkflow,
    store: StateStore,
    *,
    replace: Iterable[str] = (),
    targets: Iterable[str] = (),
) -> Planned:
    """Fingerprint and plan; fan-outs whose upstream is up to date are expanded from the
    outputs recorded last time, so their jobs are planned one by one."""
    # first: anything recorded while planning makes the plan stale
    seen = store.last_event(workflow.name)
    with collector_paused():  # tens of thousands of small records, no cycles
        planned = _plan_workflow(workflow, store, list(replace), list(targets))
    planned.source, planned.replace, planned.targets, planned.seen = (
        workflow,
        tuple(replace),
        tuple(targets),
        seen,
    )
    return planned


def current_plan(planned: Planned, store: StateStore) -> Planned:
    """The plan, made again if anything was recorded for its workflow since it was made (by
    an apply that held the lease meanwhile): what that apply ran is not run a second time.
    Called by the lease holder."""
    if planned.source is None or store.last_event(planned.workflow.name) == planned.seen:
        return planned
    return plan_workflow(planned.source, store, replace=planned.replace, targets=planned.targets)


def _plan_workflow(
    workflow: ResolvedWorkflow, store: StateStore, replace: list[str], targets: list[str]
) -> Planned:
    unknown = [
        n for n in [*replace, *targets] if n not in workflow.jobs and n not in workflow.groups
    ]
    if unknown:
        raise CcspecError(f"no job {unknown[0]!r} in workflow {workflow.name!r}")
    recorded = store.recorded_jobs(workflow.name)
    facts = gather_facts(workflow)
    for _ in range(len(workflow.jobs) + 1):
        fps = fingerprints(workflow, facts)
        plan = make_plan(workflow, fps, recorded, replace=replace, targets=targets)
        expanded = _expand_known_fanouts(workflow, plan, recorded)
        if expanded is None:
            return Planned(workflow, plan, facts, fps, recorded)
        workflow = expanded
        gather_facts(workflow, facts=facts)
    return Planned(workflow, plan, facts, fps, recorded)


def _expand_known_fanouts(
    workflow: ResolvedWorkflow, plan: Plan, recorded: Mapping[str, Any]
) -> ResolvedWorkflow | None:
    by_id = plan.by_id()
    for job in workflow.jobs.values():
        if not job.fanout_pending:
            continue
        if not all(
            by_id.get(n) is not None and by_id[n].action is Action.UP_TO_DATE for n in job.needs
        ):
            continue
        outputs = {k: dict(r.outputs) for k, r in recorded.items()}
        members, problems = resolve_at_launch(
            workflow, job, upstream_context(workflow, job, outputs)
        )
        if problems or not members:
            continue
        return with_members(workflow, job.id, members)
    return None


def apply_workflow(
    planned: Planned,
    store: StateStore,
    *,
    folder: Path,
    jobs: int,
    reporter: Callable[[str, JobView | None], None],
    wait: bool = False,
    svg: bool = True,
    signals: bool = True,
    started: Callable[[Engine], None] | None = None,
    lease: str | None = None,
    waiting: Callable[[str], None] | None = None,
    slots: SlotLedger | None = None,
) -> Outcome:
    """Run a plan under the workflow's lease; SIGINT/SIGTERM cancel, a second one forces.

    A plan with nothing to do whose status file and picture are what the last run wrote
    (nothing was recorded since, the files are unchanged) returns at once: a no-change apply
    of a large workflow costs its validation and planning only.

    The reconciler runs workflows in threads: `signals=False` leaves signal handling (and the
    garbage collector) to its main thread, and `started` hands it the engine, so that a newer
    spec can take over the run (`Engine.handover`).

    `lease`: the token of the lease the caller holds (`leased`); otherwise the lease is
    taken here (`waiting` is told once whom `wait` waits for) and a plan made before it was
    held is made again if it is stale. Losing the lease mid-run ends the run early with
    `Outcome.lost` set. `slots`: job slots shared with the caller's other runs (ccspec.slots)."""
    name = planned.workflow.name
    token = lease or _acquire(store, name, wait, waiting)
    try:
        planned = current_plan(planned, store)
        workflow = planned.workflow
        store.touch_workflow(workflow.name, str(workflow.file))
        files = _beside(workflow, svg)
        if planned.plan.is_empty and store.written(workflow.name) == (
            store.last_event(workflow.name),
            _digest(files),
        ):
            return Outcome({}, False)
        engine = Engine(
            workflow,
            planned.plan,
            store,
            state_dir=folder,
            jobs=jobs,
            reporter=lambda e, v: None,
            lease=token,
            fingerprints=planned.fingerprints,
            facts=planned.facts,
            recorded=planned.recorded,
            slots=slots,
        )
        try:
            writer = _status_writer(engine, svg)
        except BaseException:
            if engine.seat is not None:
                engine.seat.close()  # the run never starts: no seat is left behind
            raise

        def report(event: str, view: JobView | None) -> None:
            reporter(event, view)
            if engine.lost is None:  # once the lease is lost, the files are the new holder's
                writer(event, view)

        engine.report = report
        if started is not None:
            started(engine)
        try:
            return _run(engine, signals)
        finally:
            writer.close()
            store.set_written(workflow.name, store.last_event(workflow.name), _digest(files))
    finally:
        if lease is None:  # a caller that holds it releases it
            store.release_lease(name, token)


def _status_writer(engine: Engine, svg: bool) -> StatusWriter:
    return StatusWriter(
        engine.workflow,
        lambda: engine.views,
        lambda i: engine.jobs[i].needs if i in engine.jobs else (),
        svg,
    )


def _run(engine: Engine, signals: bool) -> Outcome:
    """The engine's run; with `signals`, under apply's SIGINT/SIGTERM handlers and with the
    garbage collector on for its length."""
    collecting = gc.isenabled()
    if signals:
        gc.freeze()  # the spec, plan and records live as long as the run: keep them out of every collection
        gc.enable()  # the command line starts with it off (ccspec.cli.run): a run may last for days
    try:
        with _signals(engine) if signals else contextlib.nullcontext():
            return engine.run()
    finally:
        if signals:
            gc.unfreeze()  # a long-lived caller (the Python API) collects them again
            if not collecting:
                gc.disable()


@contextlib.contextmanager
def leased(
    store: StateStore,
    workflow: str,
    *,
    wait: bool = False,
    waiting: Callable[[str], None] | None = None,
) -> Iterator[str]:
    """Hold the workflow's lease (its token) for a plan made under it and the apply of that
    plan: the plan then shows what is still to do. LeaseHeld, unless `wait`; `waiting` is
    told once whom it waits for."""
    token = _acquire(store, workflow, wait, waiting)
    try:
        yield token
    finally:
        store.release_lease(workflow, token)


def _beside(workflow: ResolvedWorkflow, svg: bool) -> list[Path]:
    folder = workflow.file.parent
    return [
        folder / f"{workflow.name}.status.yaml",
        *([folder / f"{workflow.name}.svg"] if svg else []),
    ]


def _digest(paths: list[Path]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in paths:
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"\0missing")
        digest.update(b"\0")
    return digest.hexdigest()


def _acquire(
    store: StateStore, workflow: str, wait: bool, waiting: Callable[[str], None] | None = None
) -> str:
    from ccspec.state.store import LeaseHeld

    told = False
    while True:
        try:
            return store.acquire_lease(workflow, LEASE_TTL)
        except LeaseHeld as held:
            if not wait:
                raise
            if waiting is not None and not told:
                waiting(f"waiting for workflow {workflow!r}: {held.doing}")
                told = True
            time.sleep(0.5)


class _signals:
    """SIGINT/SIGTERM: first cancels the running jobs, a second forces (kills at once)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.count = 0
        self.saved: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count == 1:
            print(
                "\ncancelling running jobs (press Ctrl-C again to kill them at once)",
                file=sys.stderr,
                flush=True,
            )
        self.engine.interrupt(force=self.count > 1)

    def __enter__(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.saved[sig] = signal.signal(sig, self._handler)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
