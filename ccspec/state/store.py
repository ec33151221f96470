"""Recorded state in SQLite (`.ccspec/state.db`): workflows, jobs, attempts, events, leases.

Used by plan (reads), the engine (writes as jobs move) and status/logs/serve (reads). WAL
mode lets readers look while an apply writes. The schema is versioned with
`PRAGMA user_version` and migrated forward on open.

Crash safety: a launch is recorded as an attempt in state `launching` *before* the process
starts, and its handle (pid, Slurm id) right after, so a restarted runner always finds what
may be out there.

Concurrency: one runner per workflow holds its lease, and only the holder records launches;
an attempt's number is unique for its job. Both are checked in the transaction that records
the launch. Processes opening the database together wait for each other (ccspec.state.busy).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# AttemptNumberTaken, LeaseHeld and LeaseLost are re-exported: raised here
from ccspec.errors import AttemptNumberTaken, CcspecError, LeaseHeld, LeaseLost
from ccspec.processes import pid_alive
from ccspec.state.busy import OPEN_PATIENCE, retry_busy
from ccspec.state.private import prepare as prepare_private
from ccspec.state.unwritable import GuardedConnection
from ccspec.states import JobState

__all__ = ["Attempt", "AttemptNumberTaken", "LeaseHeld", "LeaseLost", "RecordedJob", "StateStore"]

MIGRATIONS = [
    """
    CREATE TABLE workflows (
        name TEXT PRIMARY KEY, spec_path TEXT, updated REAL
    );
    CREATE TABLE jobs (
        workflow TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL,
        state TEXT NOT NULL, reason TEXT,
        fingerprint TEXT, parts TEXT,
        success_fingerprint TEXT, success_parts TEXT, success_seq INTEGER, outputs TEXT,
        attempts INTEGER NOT NULL DEFAULT 0, last_attempt INTEGER,
        updated REAL,
        PRIMARY KEY (workflow, id)
    );
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        workflow TEXT NOT NULL, job TEXT NOT NULL, number INTEGER NOT NULL,
        host TEXT NOT NULL, handle TEXT, state TEXT NOT NULL, reason TEXT,
        exit_code INTEGER, fingerprint TEXT, run_dir TEXT, log_path TEXT,
        created REAL, started REAL, finished REAL,
        progress REAL, message TEXT, outputs TEXT
    );
    CREATE INDEX attempts_by_job ON attempts (workflow, job, number);
    CREATE INDEX attempts_active ON attempts (state) WHERE state IN ('launching', 'queued', 'running');
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time REAL NOT NULL, workflow TEXT NOT NULL, job TEXT, attempt INTEGER,
        kind TEXT NOT NULL, data TEXT
    );
    CREATE TABLE leases (
        workflow TEXT PRIMARY KEY, token TEXT NOT NULL, pid INTEGER, host TEXT,
        acquired REAL, expires REAL
    );
    """,
    """
    CREATE TABLE written (
        workflow TEXT PRIMARY KEY, event INTEGER NOT NULL, digest TEXT NOT NULL
    );
    """,
    # the last event of a workflow, and its events after an id (status API, no-change apply)
    """
    CREATE INDEX events_by_workflow ON events (workflow, id);
    """,
    # one attempt per number: two runners of one workflow once both launched a job as attempt N.
    # Such duplicates (the later ones, by id) are numbered after the job's last attempt; a job
    # counts its attempts up to its highest number, so the next launch takes a free one.
    """
    CREATE TEMP TABLE renumbered AS
        SELECT id, top + ROW_NUMBER() OVER (PARTITION BY workflow, job ORDER BY id) AS number FROM (
            SELECT a.id, a.workflow, a.job,
                   (SELECT MAX(number) FROM attempts m WHERE m.workflow = a.workflow AND m.job = a.job) AS top
            FROM attempts a
            WHERE EXISTS (SELECT 1 FROM attempts d
                          WHERE d.workflow = a.workflow AND d.job = a.job AND d.number = a.number AND d.id < a.id));
    UPDATE attempts SET number = (SELECT r.number FROM renumbered r WHERE r.id = attempts.id)
        WHERE id IN (SELECT id FROM renumbered);
    DROP TABLE renumbered;
    UPDATE jobs SET attempts = (SELECT MAX(number) FROM attempts a WHERE a.workflow = jobs.workflow AND a.job = jobs.id)
        WHERE attempts < (SELECT MAX(number) FROM attempts a WHERE a.workflow = jobs.workflow AND a.job = jobs.id);
    DROP INDEX attempts_by_job;
    CREATE UNIQUE INDEX attempts_number ON attempts (workflow, job, number);
    """,
]


@dataclass(frozen=True, slots=True)
class RecordedJob:
    workflow: str
    id: str
    name: str
    state: JobState
    reason: str | None
    fingerprint: str | None  # of the last launch
    parts: Mapping[str, str]
    success_fingerprint: str | None
    success_parts: Mapping[str, str]
    success_seq: int | None  # attempt id of the last success: a logical clock across jobs
    outputs: Mapping[str, Any]
    attempts: int
    last_attempt: int | None
    updated: float | None


@dataclass(frozen=True)
class Attempt:
    id: int
    workflow: str
    job: str
    number: int
    host: str
    handle: str | None
    state: JobState
    reason: str | None
    exit_code: int | None
    fingerprint: str | None
    run_dir: str | None
    log_path: str | None
    created: float | None
    started: float | None
    finished: float | None
    progress: float | None
    message: str | None
    outputs: Mapping[str, Any]


# one for every record: json.dumps makes one a call
_ENCODER = json.JSONEncoder(sort_keys=True, default=str)


def _json(value: Any) -> str | None:
    return None if value is None else _ENCODER.encode(value)


def _load(text: str | None) -> Any:
    return json.loads(text) if text else {}


_INSERT_EVENT = "INSERT INTO events (time, workflow, job, attempt, kind, data) VALUES (?,?,?,?,?,?)"


class StateStore:
    """One SQLite database; use from one thread (the engine's) at a time."""

    def __init__(self, folder: Path, *, patience: float = OPEN_PATIENCE) -> None:
        """`patience`: seconds to wait for other processes creating or migrating the database."""
        prepare_private(folder)  # 0700, files 0600: what jobs print (secrets too) is nobody else's
        self.folder = folder
        self.path = folder / "state.db"
        self.db = sqlite3.connect(
            self.path, timeout=min(30.0, patience), isolation_level=None, factory=GuardedConnection
        )
        self.db.row_factory = sqlite3.Row
        # a new database: another process may be switching it to WAL too, which fails at once
        retry_busy(lambda: self.db.execute("PRAGMA journal_mode=WAL"), self.path, patience)
        self.db.execute("PRAGMA synchronous=NORMAL")
        # a checkpoint costs two fsyncs, whatever its size: one every 4,000 pages (16 MB of
        # WAL, ~400 launches) instead of SQLite's 1,000 spares the runner ~25 ms per 1,000 jobs
        self.db.execute("PRAGMA wal_autocheckpoint=4000")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._soon: list[
            Callable[[], None]
        ] = []  # writes asked for `soon`: done in the next transaction
        self._events: list[tuple[Any, ...]] | None = (
            None  # the events of the transaction under way, inserted last
        )
        self._soon_since = 0.0  # monotonic time the oldest of them was asked for
        self._migrate(patience)

    def close(self) -> None:
        self.flush()
        self.db.close()

    def _migrate(self, patience: float) -> None:
        """Bring the schema up to date, in one transaction. The version is read again once the
        write lock is held: processes opening a new database together all find it empty, and
        only the first may create the tables."""
        if self._schema_version(patience) == len(MIGRATIONS):
            return  # the usual case: no write lock wanted
        retry_busy(lambda: self.db.execute("BEGIN IMMEDIATE"), self.path, patience)
        try:
            version = self._schema_version(patience)
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):  # executescript() would commit mid-migration
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version={number}")
            self.db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _schema_version(self, patience: float) -> int:
        version = int(
            retry_busy(
                lambda: self.db.execute("PRAGMA user_version").fetchone()[0], self.path, patience
            )
        )
        if version > len(MIGRATIONS):
            raise CcspecError(
                f"{self.path} was written by a newer ccspec (schema {version}); upgrade ccspec"
            )
        return version

    # -- leases ------------------------------------------------------------------------

    def acquire_lease(self, workflow: str, ttl: float, *, token: str | None = None) -> str:
        """Take the workflow's lease or raise LeaseHeld. A lease whose holder died on this
        host, or that was not renewed in time, is taken over."""
        token = token or uuid.uuid4().hex
        now = time.time()
        me = socket.gethostname()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            row = self.db.execute("SELECT * FROM leases WHERE workflow=?", (workflow,)).fetchone()
            holder_alive = row is not None and not (row["host"] == me and not pid_alive(row["pid"]))
            if row is not None and row["token"] != token and row["expires"] > now and holder_alive:
                raise LeaseHeld(workflow, row["pid"], row["host"], row["acquired"])
            self.db.execute(
                "INSERT OR REPLACE INTO leases (workflow, token, pid, host, acquired, expires) VALUES (?,?,?,?,?,?)",
                (workflow, token, os.getpid(), me, now, now + ttl),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        return token

    def renew_lease(self, workflow: str, token: str, ttl: float) -> bool:
        cur = self.db.execute(
            "UPDATE leases SET expires=? WHERE workflow=? AND token=?",
            (time.time() + ttl, workflow, token),
        )
        return cur.rowcount == 1

    def release_lease(self, workflow: str, token: str) -> None:
        self.db.execute("DELETE FROM leases WHERE workflow=? AND token=?", (workflow, token))

    def lease_holder(self, workflow: str) -> tuple[int, str, float] | None:
        """(pid, host, since) of a live holder; a holder that died on this host holds nothing."""
        row = self.db.execute(
            "SELECT * FROM leases WHERE workflow=? AND expires>?", (workflow, time.time())
        ).fetchone()
        if row is None or (row["host"] == socket.gethostname() and not pid_alive(row["pid"])):
            return None
        return (row["pid"], row["host"], row["acquired"])

    # -- reads -------------------------------------------------------------------------

    def spec_path(self, workflow: str) -> str | None:
        """The spec file a workflow was last applied from."""
        row = self.db.execute(
            "SELECT spec_path FROM workflows WHERE name=?", (workflow,)
        ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def workflows(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM workflows ORDER BY name")]

    def recorded_jobs(self, workflow: str) -> dict[str, RecordedJob]:
        self.flush()
        cur = self.db.cursor()
        cur.row_factory = None  # plain tuples: this reads every job of a workflow
        rows = cur.execute(
            """SELECT workflow, id, name, state, reason, fingerprint, parts, success_fingerprint, success_parts,
                      success_seq, outputs, attempts, last_attempt, updated FROM jobs WHERE workflow=?""",
            (workflow,),
        )
        states = {s.value: s for s in JobState}
        return {
            r[1]: RecordedJob(
                r[0],
                r[1],
                r[2],
                states[r[3]],
                r[4],
                r[5],
                _LazyJSON(r[6]),
                r[7],
                _LazyJSON(r[8]),
                r[9],
                _LazyJSON(r[10]),
                r[11],
                r[12],
                r[13],
            )
            for r in rows
        }

    def attempts(self, workflow: str, job: str | None = None) -> list[Attempt]:
        self.flush()
        if job is None:
            rows = self.db.execute(
                "SELECT * FROM attempts WHERE workflow=? ORDER BY id", (workflow,)
            )
        else:
            rows = self.db.execute(
                "SELECT * FROM attempts WHERE workflow=? AND job=? ORDER BY number", (workflow, job)
            )
        return [_attempt(r) for r in rows]

    def attempt(self, attempt_id: int) -> Attempt:
        self.flush()
        return _attempt(
            self.db.execute("SELECT * FROM attempts WHERE id=?", (attempt_id,)).fetchone()
        )

    def last_attempts(self, workflow: str) -> dict[str, Attempt]:
        """Each job's latest attempt, by job id."""
        self.flush()
        rows = self.db.execute(
            "SELECT a.* FROM attempts a JOIN jobs j ON a.id = j.last_attempt WHERE j.workflow=?",
            (workflow,),
        )
        return {r["job"]: _attempt(r) for r in rows}

    def active_attempts(self, workflow: str) -> list[Attempt]:
        self.flush()
        rows = self.db.execute(
            "SELECT * FROM attempts WHERE workflow=? AND state IN ('launching','queued','running') ORDER BY id",
            (workflow,),
        )
        return [_attempt(r) for r in rows]

    def last_event(self, workflow: str) -> int:
        self.flush()
        row = self.db.execute("SELECT MAX(id) FROM events WHERE workflow=?", (workflow,)).fetchone()
        return int(row[0] or 0)

    def written(self, workflow: str) -> tuple[int, str] | None:
        """(last event, digest) when the files beside the spec were last written."""
        row = self.db.execute(
            "SELECT event, digest FROM written WHERE workflow=?", (workflow,)
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def set_written(self, workflow: str, event: int, digest: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO written (workflow, event, digest) VALUES (?,?,?)",
            (workflow, event, digest),
        )

    def events(self, workflow: str, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM events WHERE workflow=? AND id>? ORDER BY id LIMIT ?",
            (workflow, after, limit),
        )
        return [{**dict(r), "data": _load(r["data"])} for r in rows]

    # -- writes ------------------------------------------------------------------------

    def touch_workflow(self, workflow: str, spec_path: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO workflows (name, spec_path, updated) VALUES (?,?,?)",
            (workflow, spec_path, time.time()),
        )

    def set_job_state(
        self,
        workflow: str,
        job: str,
        name: str,
        state: JobState,
        reason: str | None = None,
        *,
        fingerprint: str | None = None,
        parts: Mapping[str, str] | None = None,
    ) -> None:
        now = time.time()

        def write() -> None:  # after the writes asked for `soon`, so events keep their order
            self.db.execute(
                """INSERT INTO jobs (workflow, id, name, state, reason, fingerprint, parts, updated) VALUES (?,?,?,?,?,?,?,?)
                   ON CONFLICT (workflow, id) DO UPDATE SET state=excluded.state, reason=excluded.reason, updated=excluded.updated,
                   fingerprint=COALESCE(excluded.fingerprint, jobs.fingerprint), parts=COALESCE(excluded.parts, jobs.parts)""",
                (workflow, job, name, str(state), reason, fingerprint, _json(parts), now),
            )
            self._event(workflow, job, None, "state", {"state": str(state), "reason": reason})

        self._write(write, soon=False)

    def begin_attempt(
        self,
        workflow: str,
        job: str,
        name: str,
        *,
        host: str,
        fingerprint: str,
        parts: Mapping[str, str],
        run_dir: Path,
        log_path: Path,
        number: int | None = None,
        lease: str | None = None,
    ) -> Attempt:
        """Record the intent to launch (state `launching`) before anything starts.

        Both checks below are made in the transaction that records the attempt. `number`: the
        attempt's number as the caller counted it (its paths carry it); AttemptNumberTaken
        when the job has an attempt with that number or a higher one (by default: the next
        free number). `lease`: the caller's lease token; LeaseLost when another runner holds
        the workflow now, so that two runners never launch the same job."""
        now = time.time()
        self._begin()
        try:
            number = self._launch_number(workflow, job, number, lease)
            self._write_soon()
            attempt_id = self._record_launch(
                workflow, job, name, number, host, fingerprint, parts, run_dir, log_path, now
            )
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return Attempt(
            attempt_id,
            workflow,
            job,
            number,
            host,
            None,
            JobState.LAUNCHING,
            None,
            None,
            fingerprint,
            str(run_dir),
            str(log_path),
            now,
            None,
            None,
            None,
            None,
            {},
        )

    def _launch_number(self, workflow: str, job: str, number: int | None, lease: str | None) -> int:
        """Inside begin_attempt's transaction: the attempt's number, after the checks that
        keep two runners from launching the same job (see begin_attempt)."""
        holder, highest = self.db.execute(
            "SELECT (SELECT token FROM leases WHERE workflow=?), (SELECT MAX(number) FROM attempts WHERE workflow=? AND job=?)",
            (workflow, workflow, job),
        ).fetchone()
        if lease is not None and holder != lease:
            raise LeaseLost(workflow, self.lease_holder(workflow))
        if number is None:
            return int(highest or 0) + 1
        if highest is not None and number <= highest:
            raise AttemptNumberTaken(workflow, job, number, highest)
        return number

    def _record_launch(
        self,
        workflow: str,
        job: str,
        name: str,
        number: int,
        host: str,
        fingerprint: str,
        parts: Mapping[str, str],
        run_dir: Path,
        log_path: Path,
        now: float,
    ) -> int:
        """Inside begin_attempt's transaction: the attempt in state `launching`, the job's
        record pointing at it, and the event; returns the attempt's id."""
        launching = str(JobState.LAUNCHING)
        cur = self.db.execute(
            """INSERT INTO attempts (workflow, job, number, host, state, fingerprint, run_dir, log_path, created)
               VALUES (?,?,?,?,?,?,?,?,?)""",
            (workflow, job, number, host, launching, fingerprint, str(run_dir), str(log_path), now),
        )
        attempt_id = int(cur.lastrowid or 0)
        self.db.execute(
            """INSERT INTO jobs (workflow, id, name, state, fingerprint, parts, attempts, last_attempt, updated)
               VALUES (?,?,?,?,?,?,?,?,?)
               ON CONFLICT (workflow, id) DO UPDATE SET state=excluded.state, reason=NULL,
               fingerprint=excluded.fingerprint, parts=excluded.parts, attempts=excluded.attempts,
               last_attempt=excluded.last_attempt, updated=excluded.updated""",
            (workflow, job, name, launching, fingerprint, _json(parts), number, attempt_id, now),
        )
        self._event(workflow, job, attempt_id, "launching", {"attempt": number, "host": host})
        return attempt_id

    def set_handle(
        self,
        attempt_id: int,
        handle: str,
        state: JobState = JobState.RUNNING,
        started: float | None = None,
        *,
        workflow: str | None = None,
        job: str | None = None,
        soon: bool = False,
    ) -> None:
        """Record the handle of a launched attempt (pass workflow and job when known: one
        read less on the launch path).

        `soon`: write it with the next transaction (or `flush`) instead of a commit of its
        own. The engine uses it on the launch path and flushes before it waits; a runner
        killed in between loses nothing, since the wrapper wrote the pid into the run folder."""
        if workflow is None or job is None:
            row = self.db.execute(
                "SELECT workflow, job FROM attempts WHERE id=?", (attempt_id,)
            ).fetchone()
            workflow, job = row["workflow"], row["job"]
        started = started or time.time()

        def write() -> None:
            now = time.time()
            self.db.execute(
                "UPDATE attempts SET handle=?, state=?, started=? WHERE id=?",
                (handle, str(state), started, attempt_id),
            )
            self.db.execute(
                "UPDATE jobs SET state=?, updated=? WHERE workflow=? AND id=?",
                (str(state), now, workflow, job),
            )
            self._event(workflow, job, attempt_id, str(state), {"handle": handle})

        self._write(write, soon)

    def _write(self, write: Callable[[], None], soon: bool) -> None:
        if not self._soon:
            self._soon_since = time.monotonic()
        self._soon.append(write)
        if not soon:
            self.flush()

    def pending_age(self) -> float | None:
        """Seconds the oldest write asked for `soon` has waited; None when none waits."""
        return time.monotonic() - self._soon_since if self._soon else None

    def flush(self) -> None:
        """Do the writes asked for `soon`, in one transaction (in the order they were asked)."""
        if not self._soon:
            return
        self._begin()
        try:
            self._write_soon()
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def _begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self._events = []

    def _commit(self) -> None:
        """The transaction's events in one statement, then COMMIT."""
        events, self._events = self._events, None
        if events:
            self.db.executemany(_INSERT_EVENT, events)
        self.db.execute("COMMIT")

    def _rollback(self) -> None:
        """In an `except` block: undo the transaction under way, if one still is. SQLite ends
        it by itself on some errors (a full disk, an I/O error); a ROLLBACK then, or one that
        fails, would raise in place of the real error, which is the one to report."""
        self._events = None
        if self.db.in_transaction:
            with contextlib.suppress(sqlite3.Error, CcspecError):
                self.db.execute("ROLLBACK")

    def _write_soon(self) -> None:
        """Inside a transaction."""
        pending, self._soon = self._soon, []
        for write in pending:
            write()

    def update_progress(
        self,
        attempt_id: int,
        progress: float | None,
        message: str | None,
        outputs: Mapping[str, Any],
    ) -> None:
        self.db.execute(
            "UPDATE attempts SET progress=?, message=?, outputs=? WHERE id=?",
            (progress, message, _json(dict(outputs)), attempt_id),
        )

    def finish_attempt(
        self,
        attempt_id: int,
        state: JobState,
        *,
        exit_code: int | None,
        reason: str | None,
        outputs: Mapping[str, Any],
        progress: float | None,
        message: str | None,
        finished: float | None = None,
        soon: bool = False,
        workflow: str | None = None,
        job: str | None = None,
    ) -> None:
        """Record how an attempt ended (pass workflow and job when known: one read less).
        `soon`: with the next transaction (the engine's hot path; a runner killed before
        that finds the attempt active and collects it again from the wrapper's exit-code file)."""
        now = finished or time.time()
        outputs = dict(outputs)

        def write() -> None:
            row = (
                {"workflow": workflow, "job": job}
                if workflow is not None and job is not None
                else self.db.execute(
                    "SELECT workflow, job FROM attempts WHERE id=?", (attempt_id,)
                ).fetchone()
            )
            self.db.execute(
                "UPDATE attempts SET state=?, exit_code=?, reason=?, outputs=?, progress=?, message=?, finished=? WHERE id=?",
                (str(state), exit_code, reason, _json(outputs), progress, message, now, attempt_id),
            )
            if state is JobState.SUCCEEDED:
                self.db.execute(
                    """UPDATE jobs SET state=?, reason=NULL, success_fingerprint=fingerprint, success_parts=parts,
                       success_seq=?, outputs=?, updated=? WHERE workflow=? AND id=?""",
                    (str(state), attempt_id, _json(outputs), now, row["workflow"], row["job"]),
                )
            else:
                self.db.execute(
                    "UPDATE jobs SET state=?, reason=?, updated=? WHERE workflow=? AND id=?",
                    (str(state), reason, now, row["workflow"], row["job"]),
                )
            self._event(
                row["workflow"],
                row["job"],
                attempt_id,
                str(state),
                {"exit_code": exit_code, "reason": reason},
            )

        self._write(write, soon)

    def forget_jobs(self, workflow: str, ids: Iterable[str]) -> None:
        for job in ids:
            self.db.execute("DELETE FROM jobs WHERE workflow=? AND id=?", (workflow, job))
            self._event(workflow, job, None, "removed", {})

    def _event(
        self,
        workflow: str,
        job: str | None,
        attempt: int | None,
        kind: str,
        data: Mapping[str, Any],
    ) -> None:
        row = (time.time(), workflow, job, attempt, kind, _ENCODER.encode(dict(data)))
        # inside one of the store's transactions: inserted with the others at its end
        if self._events is not None:
            self._events.append(row)
        else:
            self.db.execute(_INSERT_EVENT, row)


class _LazyJSON(Mapping[str, Any]):
    """A JSON object from the database, parsed on first use: most records of a large
    workflow are never looked into (their fingerprints match)."""

    __slots__ = ("_text", "_value")

    def __init__(self, text: str | None) -> None:
        self._text = text
        self._value: dict[str, Any] | None = None if text and text != "{}" else {}

    def _data(self) -> dict[str, Any]:
        if self._value is None:
            self._value = json.loads(self._text or "{}")
        return self._value

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())


def _attempt(r: sqlite3.Row) -> Attempt:
    return Attempt(
        id=r["id"],
        workflow=r["workflow"],
        job=r["job"],
        number=r["number"],
        host=r["host"],
        handle=r["handle"],
        state=JobState(r["state"]),
        reason=r["reason"],
        exit_code=r["exit_code"],
        fingerprint=r["fingerprint"],
        run_dir=r["run_dir"],
        log_path=r["log_path"],
        created=r["created"],
        started=r["started"],
        finished=r["finished"],
        progress=r["progress"],
        message=r["message"],
        outputs=_LazyJSON(r["outputs"]),
    )
