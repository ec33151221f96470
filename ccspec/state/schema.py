"""The state database's schema: its migrations, in order, and `migrate`, which brings a
database up to date when `StateStore` opens it.

The schema version is SQLite's `PRAGMA user_version`: the number of migrations applied. A
database written by a newer ccspec (a higher version) is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from ccspec.errors import CcspecError
from ccspec.state.busy import retry_busy

__all__ = ["MIGRATIONS", "migrate"]

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
    # resource usage of an attempt (ccspec.usage): wall and CPU seconds, peak RSS in bytes, and
    # the warning when it did not fit the job's `resources`; NULL for attempts before this
    """
    ALTER TABLE attempts ADD COLUMN wall REAL;
    ALTER TABLE attempts ADD COLUMN cpu REAL;
    ALTER TABLE attempts ADD COLUMN max_rss INTEGER;
    ALTER TABLE attempts ADD COLUMN usage_warning TEXT;
    """,
]


def migrate(
    db: sqlite3.Connection, path: Path, patience: float, rollback: Callable[[], None]
) -> None:
    """Bring the schema up to date, in one transaction. The version is read again once the
    write lock is held: processes opening a new database together all find it empty, and
    only the first may create the tables. `rollback` undoes the transaction on an error."""
    if _schema_version(db, path, patience) == len(MIGRATIONS):
        return  # the usual case: no write lock wanted
    retry_busy(lambda: db.execute("BEGIN IMMEDIATE"), path, patience)
    try:
        version = _schema_version(db, path, patience)
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):  # executescript() would commit mid-migration
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={number}")
        db.execute("COMMIT")
    except BaseException:
        rollback()
        raise


def _schema_version(db: sqlite3.Connection, path: Path, patience: float) -> int:
    version = int(
        retry_busy(lambda: db.execute("PRAGMA user_version").fetchone()[0], path, patience)
    )
    if version > len(MIGRATIONS):
        raise CcspecError(
            f"{path} was written by a newer ccspec (schema {version}); upgrade ccspec"
        )
    return version
