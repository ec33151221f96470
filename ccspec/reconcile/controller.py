"""One controller per workflow: a thread that validates, plans and applies (through the
runner) whenever the workflow's desired state changes, follows the jobs of a spec that is
invalid or gone, and retries a failed pass with a growing delay, keeping the failure in the
spec's status file until a pass succeeds. Created and fed by the reconciler
(ccspec.reconcile.reconciler).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccspec.backoff import Backoff
from ccspec.reconcile.failures import failure_kind_of, traceback_file
from ccspec.reconcile.stamp import Stamp, stamp_of
from ccspec.report.pass_errors import pass_error_line, with_pass_error

if TYPE_CHECKING:
    from ccspec.reconcile.reconciler import Reconciler
    from ccspec.runner import Planned
    from ccspec.spec.models import Host
    from ccspec.spec.resolved import ResolvedWorkflow
    from ccspec.spec.validate import SpecReport
    from ccspec.state.store import StateStore

__all__ = ["Controller", "Desired"]

TRACK_EVERY = 2.0  # seconds between polls of jobs whose spec is invalid or gone
RETRY_FIRST = 1.0  # seconds before a failed pass is tried again; doubling up to the resync interval
# ...but never sooner than this after a failure, whatever the interval: no busy loop
RETRY_LEAST = 0.1


@dataclass
class Desired:
    """What a controller should converge on next."""

    workflow: ResolvedWorkflow | None = None  # the resolved workflow; None: invalid or deleted
    hosts: Mapping[str, Host] = field(default_factory=dict)  # last valid hosts, to follow jobs
    deleted: bool = False
    invalid: SpecReport | None = None  # the validation report of a spec that is invalid now
    version: int = 0
    resync: bool = False  # a periodic pass: do not relaunch unchanged failures


class Controller:
    """One workflow: a thread that plans and applies whenever its desired state changes."""

    def __init__(self, name: str, reconciler: Reconciler) -> None:
        self.name = name
        self.r = reconciler
        self.desired = Desired()
        self.applied_version = -1
        self.engine: Any = None
        self.cond = threading.Condition()
        self.closing = False
        self.backoff = Backoff(first=RETRY_FIRST, cap=max(reconciler.interval, RETRY_LEAST))
        self.failure: str | None = None  # the error of the failing passes, as said once
        self.failure_kind: tuple[
            str, ...
        ] = ()  # its type and where it was raised: a retry failing alike is not said again
        self.failing_since = 0.0  # Unix time of the first of them
        self.owed_full = False  # a failed pass was not a resync: its retry must not be one either
        # the workflow and stamp of the last pass that found nothing to do: a resync that
        # finds the same stamp skips planning (ccspec.reconcile.stamp)
        self.clean: tuple[ResolvedWorkflow, Stamp] | None = None
        self.busy = False  # a pass is under way (for /metrics)
        self.handed_over = False  # the last pass's engine was handed over
        # the last pass followed a job to its end whose definition had changed meanwhile
        # (it never launches a second attempt beside one still running): plan again at once
        self.again = False
        self.thread = threading.Thread(target=self._loop, name=f"reconcile-{name}", daemon=True)
        self.thread.start()

    def want(
        self,
        workflow: ResolvedWorkflow | None,
        *,
        deleted: bool = False,
        invalid: SpecReport | None = None,
        resync: bool = False,
    ) -> None:
        with self.cond:
            d = self.desired
            hosts = workflow.hosts if workflow is not None else d.hosts
            self.desired = Desired(workflow, hosts, deleted, invalid, d.version + 1, resync)
            engine = self.engine
            self.cond.notify()
        if engine is not None and not resync:  # a newer spec takes over the running engine
            engine.handover()

    def state(self) -> str:
        """`running` (a pass under way), `waiting` (a newer wish not yet taken up) or `idle`."""
        if self.busy:
            return "running"
        with self.cond:
            return "waiting" if self.desired.version != self.applied_version else "idle"

    def close(self) -> None:
        with self.cond:
            self.closing = True
            engine = self.engine
            self.cond.notify()
        if engine is not None:
            engine.handover()  # jobs stay out there; a later watch or apply re-attaches
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        store: StateStore | None = None
        try:
            while True:
                desired = self._next()
                if desired is None:
                    return
                self.busy, self.handed_over = True, False
                try:
                    store = self._attempt(store, desired)
                except Exception:
                    # saying the failure failed too (stdout closed): the thread goes on
                    store = None
                finally:
                    self.busy = False
                    if not self.handed_over:  # else the next pass takes its slots back
                        self.r.slots.drop_carried(self.name)
        finally:
            if store is not None:
                with contextlib.suppress(Exception):
                    store.close()

    def _next(self) -> Desired | None:
        """Wait for something to do: a newer wish, a failed pass's retry coming due, time to
        follow the jobs of an invalid or deleted spec, or a job edited while it ran that
        ended (`again`). None when closing."""
        with self.cond:
            again, self.again = self.again, False
            while not again and not self.closing and self.desired.version == self.applied_version:
                timeout = TRACK_EVERY if self.desired.workflow is None else None
                retry = self.backoff.wait(time.monotonic())
                if retry is not None:
                    timeout = retry if timeout is None else min(timeout, retry)
                if timeout is None:
                    self.cond.wait()
                elif timeout <= 0 or not self.cond.wait(timeout=timeout):
                    break  # the same wish again: a retry, or following jobs
            if self.closing:
                return None
            desired = self.desired
            self.applied_version = desired.version
        owed = again or self.owed_full
        return replace(desired, resync=False) if desired.resync and owed else desired

    def _attempt(self, store: StateStore | None, desired: Desired) -> StateStore | None:
        """One pass; returns the store to use next (None: open a fresh one)."""
        from ccspec.runner import state_dir
        from ccspec.state.store import StateStore

        began = time.monotonic()
        planned = False
        try:
            if store is None:
                store = StateStore(state_dir(str(self.r.state)))
            planned = self._converge(store, desired)
        except Exception as exc:
            # one workflow's trouble must stop neither it for good nor the others
            self.clean = None
            if store is not None:  # the retry starts on a fresh connection
                with contextlib.suppress(Exception):
                    store.close()
            self.r.count_pass(self.name, time.monotonic() - began, "failed")
            self._failed(exc, desired)
            return None
        self.r.count_pass(
            self.name, time.monotonic() - began, "planned" if planned else "unchanged"
        )
        self._succeeded(desired)
        if self.clean is not None:
            # converged: an idle workflow holds no connection (the reconciler compares its
            # stamp on its own); the next pass opens one
            with contextlib.suppress(Exception):
                store.close()
            return None
        return store

    def unchanged(self, store: StateStore) -> bool:
        """True when a resync need not wake this controller: no pass is due or under way, the
        last one found nothing to do and nothing failed since, and the workflow's stamp is
        still what that pass found. Called by the reconciler's thread with its own store."""
        with self.cond:
            quiet = self.desired.version == self.applied_version and not self.busy
            clean = self.clean if quiet and self.failure is None else None
            current = self.desired.workflow
        if clean is None or clean[0] is not current:
            return False
        return stamp_of(clean[0], store) == clean[1]

    def _failed(self, exc: Exception, desired: Desired) -> None:
        """Count it, say it once, put it in the status file, and schedule the retry."""
        now = time.monotonic()
        due = self.backoff.failed(now)
        self.r.count_error(self.name)
        if not desired.resync:
            self.owed_full = True
        kind = failure_kind_of(exc)
        if kind != self.failure_kind:  # a new error: said once, not at every retry
            if self.failure is None:
                self.failing_since = time.time()
            self.failure_kind = kind
            from ccspec.errors import CcspecError

            # a condition ccspec explains, not a bug: no traceback
            known = isinstance(exc, CcspecError)
            self.failure = " ".join(
                (str(exc) if known else f"{type(exc).__name__}: {exc}").split()
            )[:500]
            self.r.say(
                f"{self.name}: reconcile failed ({self.failure}); trying again in {due - now:g}s, then at "
                f"growing intervals of up to {self.backoff.cap:g}s until it works"
                + ("" if known else f"; traceback in {traceback_file(exc, self.name)}")
            )
        self._write_error(desired, pass_error_line(self.failure or "", self.failing_since))

    def _succeeded(self, desired: Desired) -> None:
        self.owed_full = False
        if self.failure is None:
            return
        failures = self.backoff.failures
        self.backoff.succeeded()
        self.failure, self.failure_kind = None, ()
        self._write_error(desired, None)
        self.r.say(f"{self.name}: reconciled again after {failures} failed pass(es)")

    def _write_error(self, desired: Desired, line: str | None) -> None:
        """The reconcile error into the status file beside the spec (None: out of it)."""
        spec = (
            desired.workflow.file
            if desired.workflow is not None
            else getattr(desired.invalid, "file", None)
        )
        if spec is None:
            return  # a deleted spec has no status file to keep
        path = Path(spec).parent / f"{self.name}.status.yaml"
        from ccspec.report.status import write_if_changed

        try:
            try:
                text: str | None = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                text = None
            write_if_changed(path, with_pass_error(text, self.name, line))
        except (OSError, UnicodeDecodeError):
            pass  # e.g. a folder in its way: the line said and /metrics still tell

    def _converge(self, store: StateStore, desired: Desired) -> bool:
        """One pass; False when a resync found the workflow's stamp unchanged and did not plan."""
        from ccspec.redact import source_redactor
        from ccspec.runner import settle

        if desired.workflow is None:
            if desired.deleted and self.r.prune:
                self._prune(store, desired)
            # follow what it started earlier; an invalid spec's secrets are still masked
            redactor = (
                source_redactor(desired.invalid, self.r.overrides)
                if desired.invalid is not None
                else None
            )
            settle(store, self.name, desired.hosts, redactor=redactor)
            if desired.invalid is not None:  # its errors, and the jobs it ran, in its status file
                self._write_invalid(store, desired.invalid)
            return True
        return self._apply(store, desired)

    def _apply(self, store: StateStore, desired: Desired) -> bool:
        from ccspec.planner import Action
        from ccspec.runner import plan_workflow

        workflow = desired.workflow
        assert workflow is not None  # _converge calls this only with a workflow
        stamp = stamp_of(workflow, store)  # before planning: a change meanwhile shows next time
        clean, self.clean = self.clean, None
        if desired.resync and stamp is not None and clean == (workflow, stamp):
            self.clean = clean
            return False
        planned = plan_workflow(workflow, store)
        # a periodic pass launches new and changed jobs, not unchanged failures again
        news = [
            j
            for j in planned.plan.jobs
            if j.action in (Action.CREATE, Action.ATTACH)
            or (j.action is Action.RERUN and j.reason.code != "upstream_runs")
        ]
        if desired.resync and news:
            self._run(store, planned)
            return True
        # nothing new to do: the next resync compares the stamp instead of planning, unless
        # the plan expanded a fan-out from recorded outputs (it may depend on more)
        idle = stamp is not None and planned.workflow is workflow and not news
        # a resync leaves unchanged failures alone; otherwise the runner applies the plan (an
        # empty one only rewrites the status file and picture if they are not the last run's)
        done = (desired.resync and not planned.plan.is_empty) or self._run(store, planned)
        if idle and done and stamp is not None:
            self.clean = (workflow, stamp)
        return True

    def _run(self, store: StateStore, planned: Planned) -> bool:
        """Apply a plan through the runner, the engine handed to `want` while it runs; False
        when another apply holds or took the workflow."""
        from ccspec.console import plain_reporter
        from ccspec.runner import apply_workflow
        from ccspec.state.store import LeaseHeld

        workflow = planned.workflow
        started_at = time.monotonic()
        runs = planned.plan.to_run
        if runs:
            self.r.say(f"{workflow.name}: {len(runs)} to run")
            for job in runs:
                self.r.say(f"  {job.line()}")

        def started(engine: Any) -> None:
            with self.cond:
                self.engine = engine

        try:
            outcome = apply_workflow(
                planned,
                store,
                folder=self.r.state,
                jobs=self.r.jobs,
                reporter=plain_reporter(workflow.name, self.r.say),
                signals=False,
                started=started,
                slots=self.r.slots,
            )
        except LeaseHeld as exc:
            self.r.say(f"{self.name}: {exc}; trying again at the next resync")
            return False
        finally:
            with self.cond:
                self.handed_over = bool(getattr(self.engine, "handed_over", False))
                self.engine = None
        self.again = (
            not outcome.interrupted
            and outcome.lost is None
            and any(j.reason.code == "changed_while_running" for j in planned.plan.jobs)
        )
        if outcome.lost is not None:  # another apply took the workflow over: it runs it now
            self.r.say(f"{self.name}: {outcome.lost}; trying again at the next resync")
            return False
        if outcome.views:
            failed = len(outcome.failed)
            self.r.say(
                f"{self.name}: {'handed over' if not outcome.interrupted and self._newer() else 'done'} "
                f"in {time.monotonic() - started_at:.1f}s"
                + (f", {failed} failed" if failed else "")
            )
        return True

    def _write_invalid(self, store: StateStore, report: SpecReport) -> None:
        from ccspec.redact import masked_diagnostics, source_redactor
        from ccspec.report.status import render_status, status_document, write_if_changed
        from ccspec.runner import job_statuses

        redactor = source_redactor(report, self.r.overrides)
        doc = status_document(
            self.name,
            job_statuses(store, self.name),
            [str(d) for d in masked_diagnostics(report, self.r.overrides)],
            redact=redactor if redactor is not None else (),
        )
        write_if_changed(report.file.parent / f"{self.name}.status.yaml", render_status(doc))

    def _newer(self) -> bool:
        with self.cond:
            return self.desired.version != self.applied_version

    def _prune(self, store: StateStore, desired: Desired) -> None:
        from ccspec.runner import cancel_attempts

        active = store.active_attempts(self.name)
        if active:
            problems = cancel_attempts(
                store, desired.hosts, active, "its spec was deleted (--prune)"
            )
            self.r.say(
                f"{self.name}: spec deleted, cancelled {len(active) - len(problems)} running job(s)"
            )
