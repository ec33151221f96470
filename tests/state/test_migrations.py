"""Opening a state database that an older ccspec wrote: the store migrates it forward on
open, in one transaction, keeping what it recorded. The old databases are built here by hand
with sqlite3, from the schema each version had (written out below as it was, not taken from
the store's code), filled with records, then opened with StateStore. A database with
duplicate attempt numbers at version 3, and one from a newer ccspec, are in
tests/test_store.py."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ccspec.errors import AttemptNumberTaken, CcspecError
from ccspec.state.store import StateStore
from ccspec.states import JobState
from ccspec.usage import Usage
from tests.state.records import launch

# The schema as each version left it: version N is steps 1..N.
STEPS = [
    """
    CREATE TABLE workflows (name TEXT PRIMARY KEY, spec_path TEXT, updated REAL);
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
    "CREATE TABLE written (workflow TEXT PRIMARY KEY, event INTEGER NOT NULL, digest TEXT NOT NULL);",
    "CREATE INDEX events_by_workflow ON events (workflow, id);",
]
FP = "sha256:" + "1" * 64
PARTS = '{"definition": "d", "file": "", "inputs": "i", "upstream": "u"}'


def old_database(folder: Path, version: int) -> sqlite3.Connection:
    """An empty state database as version `version` of the schema left it."""
    folder.mkdir(parents=True)
    db = sqlite3.connect(folder / "state.db", isolation_level=None)
    for step in STEPS[:version]:
        db.executescript(step)
    db.execute(f"PRAGMA user_version={version}")
    return db


def record_a_run(db: sqlite3.Connection) -> None:
    """Job `a` succeeded at its attempt 1, failed at 2, and attempt 2 was recorded twice (two
    runners once both launched it); `b` is running; one event each."""
    db.execute("INSERT INTO workflows VALUES ('w', 'specs/w.yaml', 1.0)")
    for number, state, handle in [(1, "succeeded", "11"), (2, "failed", "12"), (2, "failed", "13")]:
        db.execute(
            "INSERT INTO attempts (workflow, job, number, host, handle, state, exit_code, fingerprint, log_path, created)"
            " VALUES ('w', 'a', ?, 'local', ?, ?, ?, ?, ?, 1.0)",
            (number, handle, state, 0 if state == "succeeded" else 1, FP, f"logs/a/{handle}.log"),
        )
    db.execute(
        "INSERT INTO attempts (workflow, job, number, host, handle, state, fingerprint, created)"
        " VALUES ('w', 'b', 1, 'local', '14', 'running', ?, 2.0)",
        (FP,),
    )
    db.execute(
        "INSERT INTO jobs VALUES ('w', 'a', 'a', 'failed', 'exit code 1', ?, ?, ?, ?, 1, '{\"n\": 1}', 2, 3, 1.0)",
        (FP, PARTS, FP, PARTS),
    )
    db.execute(
        "INSERT INTO jobs (workflow, id, name, state, fingerprint, parts, attempts, last_attempt, updated)"
        " VALUES ('w', 'b', 'b', 'running', ?, ?, 1, 4, 2.0)",
        (FP, PARTS),
    )
    for job, kind in [("a", "failed"), ("b", "running")]:
        db.execute(
            "INSERT INTO events (time, workflow, job, kind, data) VALUES (1.0, 'w', ?, ?, '{}')",
            (job, kind),
        )


def schema_version(folder: Path) -> int:
    with sqlite3.connect(folder / "state.db") as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def current_version(tmp_path: Path) -> int:
    """The version a new database is created at."""
    StateStore(tmp_path / "new").close()
    return schema_version(tmp_path / "new")


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_old_database_is_migrated_keeping_its_records(tmp_path: Path, version: int) -> None:
    folder = tmp_path / "state"
    db = old_database(folder, version)
    record_a_run(db)
    db.close()
    store = StateStore(folder)
    try:
        assert schema_version(folder) == current_version(tmp_path) > version
        assert store.workflows() == ["w"] and store.spec_path("w") == "specs/w.yaml"
        jobs = store.recorded_jobs("w")
        a = jobs["a"]
        assert (a.state, a.reason, a.success_fingerprint, a.success_seq, dict(a.outputs)) == (
            JobState.FAILED,
            "exit code 1",
            FP,
            1,
            {"n": 1},
        )
        assert dict(a.success_parts) == {
            "definition": "d",
            "file": "",
            "inputs": "i",
            "upstream": "u",
        }
        # the duplicate attempt 2 (the later one) is numbered after the job's last attempt
        assert [(x.handle, x.number) for x in store.attempts("w", "a")] == [
            ("11", 1),
            ("12", 2),
            ("13", 3),
        ]
        assert a.attempts == 3
        [running] = store.active_attempts("w")
        assert (running.job, running.handle, running.state) == ("b", "14", JobState.RUNNING)
        assert [(e["job"], e["kind"]) for e in store.events("w")] == [
            ("a", "failed"),
            ("b", "running"),
        ]
        assert store.last_event("w") == 2
        # what the newer versions added works on the migrated database
        assert store.written("w") is None
        store.set_written("w", 2, "digest")
        assert store.written("w") == (2, "digest")
        # attempts recorded before usage was measured have none; a new one keeps what it used
        assert [x.usage for x in store.attempts("w", "a")] == [None, None, None]
        new = launch(store)
        assert new.number == 4
        used = Usage(wall=2.0, cpu=1.5, max_rss=50 * 1024 * 1024)
        store.finish_attempt(
            new.id,
            JobState.SUCCEEDED,
            exit_code=0,
            reason=None,
            outputs={},
            progress=None,
            message=None,
            usage=used,
            usage_warning="peak memory under 10%",
        )
        assert (store.attempt(new.id).usage, store.attempt(new.id).usage_warning) == (
            used,
            "peak memory under 10%",
        )
        with pytest.raises(AttemptNumberTaken):
            launch(store, number=4)
    finally:
        store.close()


def test_a_migration_that_fails_leaves_the_old_database_as_it_was(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    db = old_database(folder, 1)
    record_a_run(db)
    # a name a later version's schema needs is taken: the last migration cannot run
    db.execute("CREATE INDEX attempts_number ON attempts (number)")
    db.close()
    with pytest.raises((sqlite3.Error, CcspecError), match="attempts_number already exists"):
        StateStore(folder)
    assert schema_version(folder) == 1
    with sqlite3.connect(folder / "state.db") as check:
        tables = {r[0] for r in check.execute("SELECT name FROM sqlite_master")}
        # not even the versions before it were applied
        assert "written" not in tables and "events_by_workflow" not in tables
        numbers = check.execute("SELECT number FROM attempts WHERE job='a' ORDER BY id").fetchall()
        assert [n for (n,) in numbers] == [1, 2, 2]


# Imports ccspec, says it is ready, and opens the store once a start file exists.
OPEN = """
import sys, time
from pathlib import Path
from ccspec.state.store import StateStore
print("ready", flush=True)
end = time.monotonic() + 30
while not Path(sys.argv[2]).exists() and time.monotonic() < end:
    time.sleep(0.002)
StateStore(Path(sys.argv[1])).close()
"""


def test_processes_opening_an_old_database_together_migrate_it_once(tmp_path: Path) -> None:
    for round_ in range(5):
        folder, start = tmp_path / str(round_), tmp_path / f"start-{round_}"
        db = old_database(folder, 1)
        record_a_run(db)
        db.close()
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN, str(folder), str(start)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        ready = [proc.stdout.readline() if proc.stdout else "" for proc in procs]
        start.touch()
        errors = [proc.communicate(timeout=60)[1] for proc in procs]
        assert ready == ["ready\n"] * 4 and errors == [""] * 4
        store = StateStore(folder)
        try:
            assert [x.number for x in store.attempts("w", "a")] == [1, 2, 3]
            assert store.written("w") is None
        finally:
            store.close()
