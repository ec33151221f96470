"""`ccspec watch`: converge on the specs in folders, without being asked.

Level-triggered, like a Kubernetes controller: every pass compares the spec on disk with the
recorded state and runs what differs, so a missed event costs latency, never correctness.

    file events (watchdog) --debounce--> changed specs ---------+
    periodic resync (--interval) ------> every spec --------+   |
                                                            v   v
                                   one controller thread per workflow:
                                   validate -> plan -> apply (the engine)

- Only a changed spec (or a file under its folder) is validated and planned again; the
  resync re-plans everything to catch missed events and to poll jobs nobody watches.
- A spec edited while its workflow runs takes over the run: the engine hands over (running
  jobs stay out there) and the next engine, planned from the new spec, re-attaches.
- An invalid spec gets its errors in its status file and launches nothing new; jobs it
  started earlier are still followed until they end.
- A deleted spec's running jobs keep running and are followed to the end, unless `prune`.
- ccspec's own writes (status files, pictures) are not events.
- After a crash, a new `watch` (or `apply`) re-attaches to what is still running.
- A pass that raises (the state folder unusable, a bug) never ends its thread: it is said
  once (a traceback goes to a file), written into the spec's status file (phase `error`),
  counted (`ccspec_reconcile_errors_total` under `watch --serve`) and tried again after
  1 s, 2 s, 4 s ... at most the resync interval (`Backoff`), until a pass succeeds, which
  takes the error out of the status file again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ccspec.backoff import Backoff
from ccspec.report.pass_errors import pass_error_line, with_pass_error
from ccspec.spec.validate import SPEC_SUFFIXES

__all__ = ["DEBOUNCE", "Reconciler", "is_spec_file", "specs_touched"]

DEBOUNCE = 0.1  # seconds of quiet after the last file event before re-planning
DEBOUNCE_MAX = 0.5  # ...but never wait longer than this while events keep coming
TRACK_EVERY = 2.0  # seconds between polls of jobs whose spec is invalid or gone
RETRY_FIRST = 1.0  # seconds before a failed pass is tried again; doubling up to the resync interval
RETRY_LEAST = (
    0.1  # ...but never sooner than this after a failure, whatever the interval: no busy loop
)

Say = Callable[[str], None]


def is_spec_file(path: Path) -> bool:
    return path.suffix in SPEC_SUFFIXES and not path.name.endswith((".status.yaml", ".status.yml"))


def _ours(path: Path) -> bool:
    """Files ccspec writes beside the specs (and their temporary names): not events."""
    name = path.name
    return (
        name.endswith((".status.yaml", ".status.yml", ".svg"))
        or ".status.yaml." in name
        or ".svg." in name
        or name.startswith(".ccspec")
        or "/.ccspec/" in path.as_posix()
    )


def _warm_up_pictures() -> None:
    """The first in-process Graphviz render compiles it (~0.5-1 s): do it while idle, not
    while a saved spec waits for its run to finish."""
    from ccspec.report.graph import render

    with contextlib.suppress(Exception):  # a picture is never worth failing the reconciler
        render("digraph { a }")


def specs_touched(changed: Iterable[Path], specs: Iterable[Path]) -> set[Path]:
    """Pure: the specs to plan again after file events. A spec file counts itself; any other
    file (a script, a notebook, an input) counts for the specs in its folder or above it."""
    specs = list(specs)
    out: set[Path] = set()
    for path in changed:
        if _ours(path):
            continue
        if is_spec_file(path):
            out.add(path)
            continue
        out.update(s for s in specs if path.is_relative_to(s.parent))
    return out


@dataclass
class _Desired:
    """What a controller should converge on next."""

    workflow: Any | None = None  # the resolved workflow; None: invalid or deleted
    hosts: Mapping[str, Any] = field(default_factory=dict)  # last valid hosts, to follow jobs
    deleted: bool = False
    invalid: Any | None = None  # the validation report of a spec that is invalid now
    version: int = 0
    resync: bool = False  # a periodic pass: do not relaunch unchanged failures


class _Controller:
    """One workflow: a thread that plans and applies whenever its desired state changes."""

    def __init__(self, name: str, reconciler: Reconciler) -> None:
        self.name = name
        self.r = reconciler
        self.desired = _Desired()
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
        self.thread = threading.Thread(target=self._loop, name=f"reconcile-{name}", daemon=True)
        self.thread.start()

    def want(
        self,
        workflow: Any | None,
        *,
        deleted: bool = False,
        invalid: Any | None = None,
        resync: bool = False,
    ) -> None:
        with self.cond:
            d = self.desired
            hosts = workflow.hosts if workflow is not None else d.hosts
            self.desired = _Desired(workflow, hosts, deleted, invalid, d.version + 1, resync)
            engine = self.engine
            self.cond.notify()
        if engine is not None and not resync:  # a newer spec takes over the running engine
            engine.handover()

    def close(self) -> None:
        with self.cond:
            self.closing = True
            engine = self.engine
            self.cond.notify()
        if engine is not None:
            engine.handover()  # jobs stay out there; a later watch or apply re-attaches
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        store: Any = None
        try:
            while True:
                desired = self._next()
                if desired is None:
                    return
                try:
                    store = self._attempt(store, desired)
                except Exception:
                    # saying the failure failed too (stdout closed): the thread goes on
                    store = None
        finally:
            if store is not None:
                with contextlib.suppress(Exception):
                    store.close()

    def _next(self) -> _Desired | None:
        """Wait for something to do: a newer wish, a failed pass's retry coming due, or time
        to follow the jobs of an invalid or deleted spec. None when closing."""
        with self.cond:
            while not self.closing and self.desired.version == self.applied_version:
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
        return replace(desired, resync=False) if desired.resync and self.owed_full else desired

    def _attempt(self, store: Any, desired: _Desired) -> Any:
        """One pass; returns the store to use next (None: open a fresh one)."""
        from ccspec.runner import state_dir
        from ccspec.state.store import StateStore

        try:
            if store is None:
                store = StateStore(state_dir(str(self.r.state)))
            self._converge(store, desired)
        except Exception as exc:
            # one workflow's trouble must stop neither it for good nor the others
            if store is not None:  # the retry starts on a fresh connection
                with contextlib.suppress(Exception):
                    store.close()
            self._failed(exc, desired)
            return None
        self._succeeded(desired)
        return store

    def _failed(self, exc: Exception, desired: _Desired) -> None:
        """Count it, say it once, put it in the status file, and schedule the retry."""
        now = time.monotonic()
        due = self.backoff.failed(now)
        self.r.count_error(self.name)
        if not desired.resync:
            self.owed_full = True
        kind = _kind(exc)
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
                + ("" if known else f"; traceback in {_traceback_file(exc, self.name)}")
            )
        self._write_error(desired, pass_error_line(self.failure or "", self.failing_since))

    def _succeeded(self, desired: _Desired) -> None:
        self.owed_full = False
        if self.failure is None:
            return
        failures = self.backoff.failures
        self.backoff.succeeded()
        self.failure, self.failure_kind = None, ()
        self._write_error(desired, None)
        self.r.say(f"{self.name}: reconciled again after {failures} failed pass(es)")

    def _write_error(self, desired: _Desired, line: str | None) -> None:
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

    def _converge(self, store: Any, desired: _Desired) -> None:
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
            return
        self._apply(store, desired)

    def _apply(self, store: Any, desired: _Desired) -> None:
        from ccspec.console import plain_reporter
        from ccspec.planner import Action
        from ccspec.runner import apply_workflow, plan_workflow
        from ccspec.state.store import LeaseHeld

        workflow = desired.workflow
        assert workflow is not None  # _converge calls this only with a workflow
        planned = plan_workflow(workflow, store)
        # a periodic pass launches new and changed jobs, not unchanged failures again
        if desired.resync:
            news = [
                j
                for j in planned.plan.jobs
                if j.action in (Action.CREATE, Action.ATTACH)
                or (j.action is Action.RERUN and j.reason.code != "upstream_runs")
            ]
            if not news and not planned.plan.is_empty:
                return
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
            )
        except LeaseHeld as exc:
            self.r.say(f"{self.name}: {exc}; trying again at the next resync")
            return
        finally:
            with self.cond:
                self.engine = None
        if outcome.lost is not None:  # another apply took the workflow over: it runs it now
            self.r.say(f"{self.name}: {outcome.lost}; trying again at the next resync")
            return
        if outcome.views:
            failed = len(outcome.failed)
            self.r.say(
                f"{self.name}: {'handed over' if not outcome.interrupted and self._newer() else 'done'} "
                f"in {time.monotonic() - started_at:.1f}s"
                + (f", {failed} failed" if failed else "")
            )

    def _write_invalid(self, store: Any, report: Any) -> None:
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

    def _prune(self, store: Any, desired: _Desired) -> None:
        from ccspec.runner import cancel_attempts

        active = store.active_attempts(self.name)
        if active:
            problems = cancel_attempts(
                store, desired.hosts, active, "its spec was deleted (--prune)"
            )
            self.r.say(
                f"{self.name}: spec deleted, cancelled {len(active) - len(problems)} running job(s)"
            )


class Reconciler:
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
        self.controllers: dict[str, _Controller] = {}
        self.names: dict[Path, str] = {}  # spec file -> workflow name, as last read
        self.digests: dict[Path, str] = {}  # spec file -> content hash, as last read
        self._stop = threading.Event()
        self._observer: Any = None
        self._errors: dict[str, int] = {}  # failed passes per workflow, for /metrics
        self._errors_lock = threading.Lock()

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        """Watch until `stop()`: a first pass over every spec, then events and resyncs."""
        self._start_observer()
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
        from ccspec.spec.validate import validate_file

        for path in sorted(specs):
            if not path.exists():
                name = self.names.pop(path, None)
                self.digests.pop(path, None)
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
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                continue
            if resync and digest == self.digests.get(path) and path in self.names:
                controller = self._controller(self.names[path])
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

    def _controller(self, name: str) -> _Controller:
        controller = self.controllers.get(name)
        if controller is None:
            controller = self.controllers[name] = _Controller(name, self)
        return controller

    def _close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
        for controller in self.controllers.values():
            controller.close()
        if self._observer is not None:
            self._observer.join(timeout=5)

    # -- file events -------------------------------------------------------------------

    def _start_observer(self) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        events = self.events

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.is_directory or event.event_type in ("opened", "closed_no_write"):
                    return
                for raw in (event.src_path, getattr(event, "dest_path", "")):
                    if raw:
                        path = Path(raw if isinstance(raw, str) else raw.decode()).resolve()
                        if not _ours(path):
                            events.put(path)

        observer = Observer()
        for folder in self.folders:
            watched = folder if folder.is_dir() else folder.parent
            observer.schedule(Handler(), str(watched), recursive=True)
        observer.start()
        self._observer = observer


def _kind(exc: BaseException) -> tuple[str, ...]:
    """An error's type and the place that raised it: the same failure again, even when its
    message differs (a temporary file's name, a count)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = (tb.tb_frame.f_code.co_filename, str(tb.tb_lineno)) if tb is not None else ()
    return (type(exc).__module__, type(exc).__qualname__, *where)


def _traceback_file(exc: Exception, workflow: str) -> str:
    """Where a failed pass's traceback was written (as the CLI does with an internal error's):
    $CCSPEC_CRASH_DIR or the temporary folder, never the state folder, which may be what fails."""
    import tempfile
    import traceback

    folder = os.environ.get("CCSPEC_CRASH_DIR") or tempfile.gettempdir()
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", workflow)[:64]
    path = os.path.join(
        folder, f"ccspec-reconcile-{safe}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    )
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(f"ccspec watch: a reconcile pass of workflow {workflow!r} failed\n")
            fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    except OSError:
        return "(none: it could not be written)"
    return path
