"""What the status API shows, read from the state store and the spec files, cached as bytes.

Every request goes through one `Reader`. It keeps one `StateStore` (an SQLite connection) per
thread, and caches built responses keyed by a stamp: SQLite's `PRAGMA data_version` (it
changes whenever the runner commits, progress updates included), the specs folder's mtime,
and the stat of each spec file consulted. Checking a stamp costs microseconds, so a workflow
of 1,000 jobs is serialised once per change of its state, not once per request.

Secrets are masked (`ccspec.redact`) before anything is cached. Rows become the API's models
in ccspec.server.views; a cached body is a `Built` (ccspec.server.built).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ccspec import __version__
from ccspec.redact import Redactor, environment_secrets
from ccspec.report.graph import GraphNode, Painter
from ccspec.report.status import phase_of
from ccspec.report.timeline import bars_of, timeline_svg
from ccspec.server.built import Built, etag, gzip_of
from ccspec.server.errors import NotFound
from ccspec.server.models import EventInfo, JobDetail, WorkflowHead, WorkflowList, WorkflowSummary
from ccspec.server.specs import SpecFile, SpecFiles, stat_key
from ccspec.server.views import (
    STATES,
    attempt_info,
    event_info,
    job_info,
    json_object,
    layout,
    log_url,
    redacted_spec,
    row_info,
    stamp_time,
)
from ccspec.state.store import Attempt, StateStore
from ccspec.states import JobState

# Built, event_info and stamp_time are re-exported: the server's other modules take them from here
__all__ = ["Built", "Reader", "event_info", "stamp_time"]

CACHED_BODIES = 256


class Reader:
    """The API's view of the state folder and the specs folder; safe to share between threads."""

    def __init__(
        self,
        state: Path,
        specs: Path,
        *,
        environ: Mapping[str, str] | None = None,
        extra_secrets: Iterable[str] = (),
    ) -> None:
        self.state = state
        StateStore(state).close()  # create or migrate once, before any reader thread opens it
        self.specs = SpecFiles(specs)
        self.environ_secrets = (
            *environment_secrets(environ or {}),
            *(s for s in extra_secrets if s),
        )
        self._local = threading.local()
        self._version_db = sqlite3.connect(
            state / "state.db", check_same_thread=False, isolation_level=None
        )
        self._version_lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, ...], Built] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._build_locks: dict[tuple[str, ...], threading.Lock] = {}
        self._fragments: dict[
            str, dict[str, tuple[Any, bytes]]
        ] = {}  # workflow -> job id -> (row key, JSON)
        self._painters: dict[str, Painter] = {}  # workflow -> its graph, laid out once per shape

    def close(self) -> None:
        """Close the shared connection; the per-thread ones close with their threads (sqlite3
        refuses to close a connection from another thread)."""
        with self._version_lock:
            self._version_db.close()

    # -- the store, per thread ---------------------------------------------------------

    def store(self) -> StateStore:
        store: StateStore | None = getattr(self._local, "store", None)
        if store is None:
            store = StateStore(self.state)
            store.db.execute("PRAGMA query_only=ON")  # the API never writes the state
            self._local.store = store
        return store

    def data_version(self) -> int:
        with self._version_lock:
            return int(self._version_db.execute("PRAGMA data_version").fetchone()[0])

    def base(self) -> tuple[int, int | None]:
        return (self.data_version(), self.specs.folder_stamp())

    # -- the cache ---------------------------------------------------------------------

    def cached(self, key: tuple[str, ...]) -> Built | None:
        """The body for `key` if it is still fresh (cheap: call it on the event loop)."""
        with self._cache_lock:
            built = self._cache.get(key)
        return built if built is not None and built.fresh(self.base()) else None

    def get(
        self, key: tuple[str, ...], build: Callable[[], tuple[bytes, str, list[Path]]]
    ) -> Built:
        """The fresh body for `key`, built at most once at a time (run it in a worker thread).
        `build` returns (body, media type, spec files it read)."""
        built = self.cached(key)
        if built is not None:
            return built
        with self._cache_lock:
            lock = self._build_locks.setdefault(key, threading.Lock())
        with lock:
            built = self.cached(key)
            if built is not None:
                return built
            # taken before reading: a change during the build makes it stale, not wrong
            base = self.base()
            body, media_type, files = build()
            built = Built(
                body,
                media_type,
                etag(body),
                base,
                tuple((p, stat_key(p)) for p in files),
                gzip_of(body),
            )
            with self._cache_lock:
                self._cache[key] = built
                self._cache.move_to_end(key)
                while len(self._cache) > CACHED_BODIES:
                    old, _ = self._cache.popitem(last=False)
                    self._build_locks.pop(old, None)
            return built

    # -- specs and secrets -------------------------------------------------------------

    def spec_of(self, name: str, index: Mapping[str, SpecFile] | None = None) -> SpecFile | None:
        """The spec a workflow was last applied from, else the one under the specs folder."""
        recorded = self.store().spec_path(name)
        if recorded:
            spec = self.specs.load(Path(recorded))
            if spec is not None:
                return spec
        return (self.specs.index() if index is None else index).get(name)

    def redactor(self, spec: SpecFile | None) -> Redactor:
        if spec is None:
            return Redactor(self.environ_secrets)
        return spec.redactor(self.environ_secrets)

    def redactor_of(self, name: str) -> Redactor:
        return self.redactor(self.spec_of(name))

    def known(self, name: str) -> bool:
        return self.store().spec_path(name) is not None or name in self.specs.index()

    # -- workflows ---------------------------------------------------------------------

    def workflow_list(self) -> tuple[bytes, str, list[Path]]:
        store = self.store()
        index = self.specs.index()
        names = sorted({*store.workflows(), *index})
        summaries = []
        files: list[Path] = []
        for name in names:
            spec = self.spec_of(name, index)
            if spec is not None:
                files.append(spec.path)
            summaries.append(self._summary(name, spec, self._counts(name)))
        files.extend(s.path for s in index.values())
        return (
            WorkflowList(workflows=summaries).model_dump_json(exclude_none=True).encode(),
            "application/json",
            files,
        )

    def _counts(self, name: str) -> tuple[dict[str, int], float | None]:
        # One grouped query instead of loading every job: (state -> count, last update).
        rows = (
            self.store()
            .db.execute(
                "SELECT state, COUNT(*), MAX(updated) FROM jobs WHERE workflow=? GROUP BY state",
                (name,),
            )
            .fetchall()
        )
        counts = {str(r[0]): int(r[1]) for r in rows}
        updated = max((r[2] for r in rows if r[2] is not None), default=None)
        return dict(sorted(counts.items())), updated

    def _summary(
        self, name: str, spec: SpecFile | None, counts: tuple[dict[str, int], float | None]
    ) -> WorkflowSummary:
        by_state, updated = counts
        store = self.store()
        applied = store.spec_path(name) is not None
        errors = spec.errors if spec is not None else []
        redactor = self.redactor(spec)
        # the phase depends on which states occur
        states = [STATES[s] for s in by_state if s in STATES]
        return WorkflowSummary(
            name=name,
            phase=phase_of(states, bool(errors)),
            counts=by_state,
            total=sum(by_state.values()),
            description=redactor.text(spec.description)
            if spec is not None and spec.description
            else None,
            spec=str(spec.path) if spec is not None else store.spec_path(name),
            applied=applied,
            updated=stamp_time(updated),
            last_event=store.last_event(name) if applied else 0,
            errors=[redactor.text(e) for e in errors],
        )

    def workflow(self, name: str) -> tuple[bytes, str, list[Path]]:
        """One workflow with every job. Each job's JSON is kept between builds and made again
        only when its row changed: during a run, a rebuild costs one query, not 1,000 models."""
        if not self.known(name):
            raise NotFound(
                f"no workflow {name!r}: it was never applied and no spec under the specs folder defines it"
            )
        spec = self.spec_of(name)
        redactor = self.redactor(spec)
        rows = {row[0]: row for row in self.store().db.execute(_JOB_ROWS, (name,))}
        order, needs, planned = layout(spec, {job_id: row[1] for job_id, row in rows.items()})
        # what the redactor and needs came from
        token = (spec.path, spec.stat) if spec is not None else None
        with self._cache_lock:
            before = self._fragments.get(name, {})
        fragments: dict[str, tuple[Any, bytes]] = {}
        counts: dict[str, int] = {}
        for job_id in order:
            row = rows[job_id]
            key = (row, tuple(needs.get(job_id, ())), token)
            kept = before.get(job_id)
            if kept is not None and kept[0] == key:
                fragments[job_id] = kept
            else:
                info = row_info(row, needs.get(job_id, []), redactor)
                fragments[job_id] = (key, info.model_dump_json(exclude_none=True).encode())
            counts[row[2]] = counts.get(row[2], 0) + 1
        with self._cache_lock:
            self._fragments[name] = fragments
        updated = max((row[7] for row in rows.values() if row[7] is not None), default=None)
        summary = self._summary(name, spec, (dict(sorted(counts.items())), updated))
        head = WorkflowHead(
            **summary.model_dump(), vars=redactor.value(dict(spec.vars)) if spec else {}
        )
        body = b"".join(
            [
                head.model_dump_json(exclude_none=True).encode()[:-1],
                b',"jobs":[',
                b",".join(f for _, f in fragments.values()),
                b'],"planned":',
                json.dumps(planned, separators=(",", ":")).encode(),
                b"}",
            ]
        )
        return body, "application/json", [spec.path] if spec else []

    def job(self, name: str, job_id: str) -> tuple[bytes, str, list[Path]]:
        store = self.store()
        rec = store.recorded_jobs(name).get(job_id)
        if rec is None:
            if not self.known(name):
                raise NotFound(f"no workflow {name!r}")
            raise NotFound(f"no job {job_id!r} recorded in workflow {name!r}")
        spec = self.spec_of(name)
        redactor = self.redactor(spec)
        attempts = store.attempts(name, job_id)
        _, needs, _ = layout(spec, {job_id: rec.name})
        info = job_info(name, rec, attempts[-1] if attempts else None, needs, redactor)
        detail = JobDetail(
            **info.model_dump(),
            workflow=name,
            succeeded_fingerprint=rec.success_fingerprint,
            fingerprint_parts=dict(rec.parts),
            attempts=[attempt_info(name, a, redactor) for a in attempts],
            log=log_url(name, job_id, attempts[-1].number) if attempts else None,
        )
        return (
            detail.model_dump_json(exclude_none=True).encode(),
            "application/json",
            [spec.path] if spec else [],
        )

    def graph(self, name: str) -> tuple[bytes, str, list[Path]]:
        if not self.known(name):
            raise NotFound(f"no workflow {name!r}")
        spec = self.spec_of(name)
        rows = {row[0]: row for row in self.store().db.execute(_JOB_ROWS, (name,))}
        order, needs, planned = layout(spec, {job_id: row[1] for job_id, row in rows.items()})
        now = time.time()
        nodes = []
        for job_id in [*order, *planned]:
            row = rows.get(job_id)
            if row is None:
                nodes.append(GraphNode(job_id, "planned", tuple(needs.get(job_id, ()))))
                continue
            state, host, started, finished, progress = row[2], row[8], row[9], row[10], row[12]
            seconds = None if started is None else (finished or now) - started
            nodes.append(
                GraphNode(job_id, state, tuple(needs.get(job_id, ())), progress, seconds, host)
            )
        with self._cache_lock:
            painter = self._painters.setdefault(name, Painter(name))
        if not painter.fits(nodes):
            # once per shape of the graph; each change after only repaints it
            painter.lay_out(nodes)
        return painter.paint(nodes), "image/svg+xml", [spec.path] if spec else []

    def timeline(self, name: str) -> tuple[bytes, str, list[Path]]:
        """The run's timeline picture: one bar per attempt (ccspec.report.timeline)."""
        if not self.known(name):
            raise NotFound(f"no workflow {name!r}")
        bars = bars_of(self.store().attempts(name))
        return timeline_svg(bars).encode(), "image/svg+xml", []

    def spec_text(self, name: str) -> tuple[bytes, str, list[Path]]:
        spec = self.spec_of(name)
        if spec is None:
            raise NotFound(f"no spec file known for workflow {name!r}")
        try:
            text = spec.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise NotFound(f"the spec of {name!r} cannot be read: {exc.strerror}") from exc
        return (
            redacted_spec(text, spec.secrets, self.redactor(spec)).encode(),
            "application/yaml",
            [spec.path],
        )

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    # -- events ------------------------------------------------------------------------

    def max_event(self) -> int:
        row = self.store().db.execute("SELECT MAX(id) FROM events").fetchone()
        return int(row[0] or 0)

    def events_after(
        self, after: int, workflow: str | None = None, limit: int = 1000
    ) -> list[EventInfo]:
        """Events after id `after` (one workflow or all), secrets masked."""
        store = self.store()
        if workflow is not None:
            rows = store.events(workflow, after, limit)
        else:  # every workflow: the store's API reads one at a time
            cursor = store.db.execute(
                "SELECT * FROM events WHERE id>? ORDER BY id LIMIT ?", (after, limit)
            )
            rows = [{**dict(r), "data": json_object(r["data"])} for r in cursor]
        redactors: dict[str, Redactor] = {}
        out = []
        for row in rows:
            wf = str(row["workflow"])
            if wf not in redactors:
                redactors[wf] = self.redactor_of(wf)
            out.append(event_info(row, redactors[wf]))
        return out

    def progress(self) -> dict[tuple[str, str], tuple[int, float | None, str | None]]:
        """(workflow, job) -> (attempt id, progress, message) of every active attempt."""
        store = self.store()
        found = {}
        for workflow in store.workflows():
            for a in store.active_attempts(workflow):
                found[(workflow, a.job)] = (a.id, a.progress, a.message)
        return found

    def attempt_of(self, name: str, job_id: str, number: int | None) -> Attempt:
        attempts = self.store().attempts(name, job_id)
        if not attempts:
            raise NotFound(f"no attempts recorded for job {job_id!r} of workflow {name!r}")
        if number is None:
            return attempts[-1]
        for a in attempts:
            if a.number == number:
                return a
        raise NotFound(f"job {job_id!r} has no attempt {number}; it has {len(attempts)}")

    def attempt_state(self, attempt_id: int) -> JobState:
        return self.store().attempt(attempt_id).state

    def metrics_rows(self) -> list[tuple[str, str, int]]:
        """(workflow, state, jobs) for every workflow."""
        rows = self.store().db.execute(
            "SELECT workflow, state, COUNT(*) FROM jobs GROUP BY workflow, state ORDER BY 1, 2"
        )
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]


# Every recorded job of a workflow with its last attempt, as plain tuples (one query; the
# store's recorded_jobs + last_attempts build two objects per job). Read-only use of its schema.
_JOB_ROWS = """
    SELECT j.id, j.name, j.state, j.reason, j.fingerprint, j.outputs, j.attempts, j.updated,
           a.host, a.started, a.finished, a.exit_code, a.progress, a.message, a.outputs,
           a.wall, a.cpu, a.max_rss, a.usage_warning
    FROM jobs j LEFT JOIN attempts a ON a.id = j.last_attempt WHERE j.workflow = ?"""
