"""The state store (ccspec.state.store) on real SQLite files: its settings (WAL, checkpoints
every 4,000 pages, a WAL file that stays bounded over many launches), leases (held, expired,
holder dead), a launch recorded before its handle, one attempt per number, migrations of
older databases, and opening a database other processes are creating or hold locked."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ccspec.errors import CcspecError
from ccspec.state.busy import StateBusy
from ccspec.state.store import (
    MIGRATIONS,
    Attempt,
    AttemptNumberTaken,
    LeaseHeld,
    LeaseLost,
    StateStore,
)
from ccspec.states import JobState


def test_a_store_checkpoints_its_wal_every_4000_pages(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    try:
        pragma = {
            name: store.db.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous", "wal_autocheckpoint")
        }
        assert pragma == {"journal_mode": "wal", "synchronous": 1, "wal_autocheckpoint": 4000}
        page = store.db.execute("PRAGMA page_size").fetchone()[0]
        for i in range(1500):  # launches as the engine records them: intent, handle, end
            job = f"j{i}"
            attempt = store.begin_attempt(
                "flow",
                job,
                job,
                host="local",
                fingerprint="sha256:" + "0" * 64,
                parts={"definition": "sha256:" + "1" * 64},
                run_dir=tmp_path / job / "1",
                log_path=tmp_path / job / "1.log",
                number=1,
            )
            store.set_handle(attempt.id, str(1000 + i), workflow="flow", job=job, soon=True)
            store.finish_attempt(
                attempt.id,
                JobState.SUCCEEDED,
                exit_code=0,
                reason=None,
                outputs={},
                progress=100.0,
                message=None,
                soon=True,
                workflow="flow",
                job=job,
            )
        store.flush()
        wal = (tmp_path / "state.db-wal").stat().st_size
        # checkpointed and restarted, not grown with every launch
        assert wal <= (4000 + 100) * (page + 24)
        assert (
            store.db.execute("SELECT COUNT(*) FROM attempts WHERE state='succeeded'").fetchone()[0]
            == 1500
        )
    finally:
        store.close()


# -- leases, launches, attempt numbers, migrations, opening (behaviour through the public methods)

FP = "sha256:" + "0" * 64


def launch(
    store: StateStore, job: str = "a", *, number: int | None = None, lease: str | None = None
) -> Attempt:
    logs = store.folder / "logs" / "w" / job
    return store.begin_attempt(
        "w",
        job,
        job,
        host="local",
        fingerprint=FP,
        parts={},
        run_dir=logs / "n",
        log_path=logs / "n.log",
        number=number,
        lease=lease,
    )


def test_a_held_lease_is_refused_naming_its_holder(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    other = StateStore(tmp_path)  # another runner: its own connection
    try:
        token = store.acquire_lease("w", 60)
        with pytest.raises(LeaseHeld) as held:
            other.acquire_lease("w", 60)
        assert held.value.pid == os.getpid() and f"being applied by pid {os.getpid()} on " in str(
            held.value
        )
        holder = other.lease_holder("w")
        assert holder is not None and holder[0] == os.getpid()
        assert store.renew_lease("w", token, 60) and not other.renew_lease("w", "not-the-token", 60)
        store.release_lease("w", token)
        assert other.lease_holder("w") is None
        other.acquire_lease("w", 60)  # free again
    finally:
        store.close()
        other.close()


def test_an_expired_lease_is_taken_over_and_its_old_holder_can_neither_renew_nor_launch(
    tmp_path: Path,
) -> None:
    stalled = StateStore(tmp_path)
    other = StateStore(tmp_path)
    try:
        old = stalled.acquire_lease("w", -1)  # expired at once: a holder that stopped renewing
        new = other.acquire_lease("w", 60)
        assert new != old
        assert not stalled.renew_lease("w", old, 60)
        with pytest.raises(LeaseLost) as lost:
            launch(stalled, lease=old)
        assert lost.value.exit_code == 4 and f"taken over by pid {os.getpid()} on " in str(
            lost.value
        )
        assert stalled.attempts("w") == []  # nothing was recorded, so nothing was launched
        assert launch(other, lease=new).number == 1
    finally:
        stalled.close()
        other.close()


def test_a_lease_whose_holder_died_on_this_host_is_taken_over(tmp_path: Path) -> None:
    # took a lease for 10 minutes, then exited
    holder = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from ccspec.state.store import StateStore; "
            "print(StateStore(Path(sys.argv[1])).acquire_lease('w', 600))",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    store = StateStore(tmp_path)
    try:
        assert store.lease_holder("w") is None  # a dead holder holds nothing
        token = store.acquire_lease("w", 60)
        now = store.lease_holder("w")
        assert token != holder.stdout.strip() and now is not None and now[0] == os.getpid()
    finally:
        store.close()


def test_a_launch_is_recorded_before_its_handle(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    try:
        attempt = launch(store)
        restarted = StateStore(tmp_path)  # a runner killed right after the intent finds it
        try:
            [found] = restarted.active_attempts("w")
            assert (found.id, found.state, found.handle, found.number) == (
                attempt.id,
                JobState.LAUNCHING,
                None,
                1,
            )
            assert restarted.recorded_jobs("w")["a"].state is JobState.LAUNCHING
            store.set_handle(attempt.id, "4242")
            [found] = restarted.active_attempts("w")
            assert (found.state, found.handle) == (JobState.RUNNING, "4242")
        finally:
            restarted.close()
        kinds = [e["kind"] for e in store.events("w")]
        assert kinds == ["launching", "running"]
    finally:
        store.close()


def test_a_second_attempt_with_the_same_number_is_refused(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    other = StateStore(tmp_path)
    try:
        assert launch(store, number=1).number == 1
        with pytest.raises(AttemptNumberTaken) as taken:
            launch(other, number=1)  # a runner that counted from an old record
        assert taken.value.highest == 1 and "already has attempt 1" in str(taken.value)
        with pytest.raises(AttemptNumberTaken):
            launch(other, number=1, lease=None)
        # by default: the next free number, read in the transaction
        assert launch(other).number == 2
        assert launch(store, number=3).number == 3
        assert [a.number for a in store.attempts("w", "a")] == [1, 2, 3]
        assert launch(store, "b", number=1).number == 1  # numbers count per job
    finally:
        store.close()
        other.close()


def old_database(folder: Path, version: int) -> sqlite3.Connection:
    """A state database as an older ccspec left it (its schema up to `version`)."""
    folder.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(folder / "state.db", isolation_level=None)
    for script in MIGRATIONS[:version]:
        db.executescript(script)
    db.execute(f"PRAGMA user_version={version}")
    return db


def test_migrating_a_database_whose_attempts_share_numbers(tmp_path: Path) -> None:
    db = old_database(tmp_path, 3)
    # two runners both launched attempt 2 of `a` (then one launched 3); `b` is fine
    for number, job in [(1, "a"), (2, "a"), (2, "a"), (3, "a"), (1, "b")]:
        db.execute(
            "INSERT INTO attempts (workflow, job, number, host, state, log_path) VALUES ('w',?,?,'local','succeeded',?)",
            (job, number, f"logs/w/{job}/{number}.log"),
        )
    db.execute(
        "INSERT INTO jobs (workflow, id, name, state, attempts, last_attempt) VALUES ('w','a','a','succeeded',3,4)"
    )
    db.execute(
        "INSERT INTO jobs (workflow, id, name, state, attempts, last_attempt) VALUES ('w','b','b','succeeded',1,5)"
    )
    db.execute("INSERT INTO events (time, workflow, kind, data) VALUES (1.0, 'w', 'state', '{}')")
    db.close()
    store = StateStore(tmp_path)
    try:
        assert store.last_event("w") == 1  # the rest of the records kept
        attempts = store.attempts("w", "a")
        # the later duplicate moved last
        assert [(a.id, a.number) for a in attempts] == [
            (1, 1),
            (2, 2),
            (4, 3),
            (3, 4),
        ]
        assert attempts[3].log_path == "logs/w/a/2.log"  # where its log was written
        assert (
            store.recorded_jobs("w")["a"].attempts == 4
            and store.recorded_jobs("w")["b"].attempts == 1
        )
        assert launch(store).number == 5
        with pytest.raises(AttemptNumberTaken):
            launch(store, number=5)
    finally:
        store.close()
    again = StateStore(tmp_path)  # opening an up-to-date database changes nothing
    try:
        assert [a.number for a in again.attempts("w", "a")] == [1, 2, 3, 4, 5]
    finally:
        again.close()


def test_a_database_from_a_newer_ccspec_is_refused(tmp_path: Path) -> None:
    old_database(tmp_path, 0).execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    with pytest.raises(CcspecError, match="written by a newer ccspec"):
        StateStore(tmp_path)


def test_opening_a_database_locked_for_too_long_names_it(tmp_path: Path) -> None:
    locker = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another program holds it and does not let go
    try:
        started = time.monotonic()
        with pytest.raises(StateBusy) as busy:
            StateStore(tmp_path, patience=0.3)
        assert str(tmp_path / "state.db") in str(busy.value) and "stayed locked" in str(busy.value)
        assert time.monotonic() - started < 5
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    StateStore(tmp_path, patience=0.3).close()  # let go: it opens


OPEN = "import sys; from pathlib import Path; from ccspec.state.store import StateStore; StateStore(Path(sys.argv[1])).close()"


def test_processes_opening_a_new_database_together_all_succeed(tmp_path: Path) -> None:
    failures = []
    for round_ in range(10):
        folder = tmp_path / str(round_)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN, str(folder)], stderr=subprocess.PIPE, text=True
            )
            for _ in range(3)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            if proc.returncode != 0:
                failures.append(err.strip().splitlines()[-1])
    assert failures == []
    store = StateStore(tmp_path / "0")
    try:
        assert launch(store).number == 1
    finally:
        store.close()
