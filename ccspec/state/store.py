"""Recorded state in SQLite (`.ccspec/state.db`): workflows, jobs, attempts, events, leases.

Used by plan (reads), the engine (writes as jobs move) and status/logs/serve (reads).
`StateStore` is the one interface; its parts live beside it: the connection and its
transactions (ccspec.state.database), the schema and its migrations (ccspec.state.schema),
leases (ccspec.state.leases) and the records it hands out (ccspec.state.records).

Crash safety: a launch is recorded as an attempt in state `launching` *before* the process
starts, and its handle (pid, Slurm id) right after, so a restarted runner always finds what
may be out there.

Concurrency: one runner per workflow holds its lease, and only the holder records launches;
an attempt's number is unique for its job. Both are checked in the transaction that records
the launch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# AttemptNumberTaken, LeaseHeld and LeaseLost are re-exported: raised here
from ccspec.errors import AttemptNumberTaken, LeaseHeld, LeaseLost
from ccspec.state.leases import Leases
from ccspec.state.records import (
    Attempt,
    LazyJSON,
    RecordedJob,
    attempt_from_row,
    from_json,
    to_json,
)
from ccspec.state.schema import MIGRATIONS
from ccspec.states import JobState
from ccspec.usage import Usage

__all__ = [
    "MIGRATIONS",
    "Attempt",
    "AttemptNumberTaken",
    "LeaseHeld",
    "LeaseLost",
    "RecordedJob",
    "StateStore",
]


class StateStore(Leases):
    """One SQLite database; use from one thread (the engine's) at a time. The connection and
    its transactions are `StateDatabase`'s, the leases `Leases`'; here are the reads and the
    writes of workflows, jobs and attempts."""

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
                LazyJSON(r[6]),
                r[7],
                LazyJSON(r[8]),
                r[9],
                LazyJSON(r[10]),
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
        return [attempt_from_row(r) for r in rows]

    def attempt(self, attempt_id: int) -> Attempt:
        self.flush()
        return attempt_from_row(
            self.db.execute("SELECT * FROM attempts WHERE id=?", (attempt_id,)).fetchone()
        )

    def last_attempts(self, workflow: str) -> dict[str, Attempt]:
        """Each job's latest attempt, by job id."""
        self.flush()
        rows = self.db.execute(
            "SELECT a.* FROM attempts a JOIN jobs j ON a.id = j.last_attempt WHERE j.workflow=?",
            (workflow,),
        )
        return {r["job"]: attempt_from_row(r) for r in rows}

    def active_attempts(self, workflow: str) -> list[Attempt]:
        self.flush()
        rows = self.db.execute(
            "SELECT * FROM attempts WHERE workflow=? AND state IN ('launching','queued','running') ORDER BY id",
            (workflow,),
        )
        return [attempt_from_row(r) for r in rows]

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
        return [{**dict(r), "data": from_json(r["data"])} for r in rows]

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
                (workflow, job, name, str(state), reason, fingerprint, to_json(parts), now),
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

        Both checks below are made in the transaction that records the attempt (inside
        `batch()`: the batch's), before any of its writes: a refused launch writes nothing. `number`: the
        attempt's number as the caller counted it (its paths carry it); AttemptNumberTaken
        when the job has an attempt with that number or a higher one (by default: the next
        free number). `lease`: the caller's lease token; LeaseLost when another runner holds
        the workflow now, so that two runners never launch the same job."""
        now = time.time()
        with self._checked():  # inside `batch()`: committed with the batch
            number = self._launch_number(workflow, job, number, lease)
            attempt_id = self._record_launch(
                workflow, job, name, number, host, fingerprint, parts, run_dir, log_path, now
            )
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
            (workflow, job, name, launching, fingerprint, to_json(parts), number, attempt_id, now),
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

    def update_progress(
        self,
        attempt_id: int,
        progress: float | None,
        message: str | None,
        outputs: Mapping[str, Any],
    ) -> None:
        self.db.execute(
            "UPDATE attempts SET progress=?, message=?, outputs=? WHERE id=?",
            (progress, message, to_json(dict(outputs)), attempt_id),
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
        usage: Usage | None = None,
        usage_warning: str | None = None,
    ) -> None:
        """Record how an attempt ended (pass workflow and job when known: one read less), with
        its measured resource usage when there is one (ccspec.usage).
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
                "UPDATE attempts SET state=?, exit_code=?, reason=?, outputs=?, progress=?, message=?, finished=?,"
                " wall=?, cpu=?, max_rss=?, usage_warning=? WHERE id=?",
                (
                    str(state),
                    exit_code,
                    reason,
                    to_json(outputs),
                    progress,
                    message,
                    now,
                    usage.wall if usage else None,
                    usage.cpu if usage else None,
                    usage.max_rss if usage else None,
                    usage_warning,
                    attempt_id,
                ),
            )
            if state is JobState.SUCCEEDED:
                self.db.execute(
                    """UPDATE jobs SET state=?, reason=NULL, success_fingerprint=fingerprint, success_parts=parts,
                       success_seq=?, outputs=?, updated=? WHERE workflow=? AND id=?""",
                    (str(state), attempt_id, to_json(outputs), now, row["workflow"], row["job"]),
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
        if self._batches:
            self._open()  # with the batch's other writes, not a commit of its own
        for job in ids:
            self.db.execute("DELETE FROM jobs WHERE workflow=? AND id=?", (workflow, job))
            self._event(workflow, job, None, "removed", {})
