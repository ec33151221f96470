"""The state database's connection, and the transactions every write of `StateStore` goes
through: writes asked for `soon` wait for the next transaction (or `flush`), and the events a
transaction records are inserted together at its end. `StateStore` builds on it.

`batch()` makes every write inside it one transaction, committed when the block ends: the
engine records all a pass decides (launch intents, ends, final states) with one commit, before
it hands any launch to a target. A launch's checks run in that transaction before any of
its writes, so a launch refused there has nothing to undo and the batch goes on.

WAL mode lets readers look while an apply writes. Processes opening the database together
wait for each other (ccspec.state.busy); the schema is migrated forward on open
(ccspec.state.schema).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ccspec.errors import CcspecError
from ccspec.state import unwritable
from ccspec.state.busy import OPEN_PATIENCE, retry_busy
from ccspec.state.private import prepare as prepare_private
from ccspec.state.records import ENCODER
from ccspec.state.schema import migrate
from ccspec.state.unwritable import GuardedConnection

__all__ = ["StateDatabase"]

_INSERT_EVENT = "INSERT INTO events (time, workflow, job, attempt, kind, data) VALUES (?,?,?,?,?,?)"


class StateDatabase:
    """One SQLite connection and its transactions; use from one thread at a time."""

    def __init__(self, folder: Path, *, patience: float = OPEN_PATIENCE) -> None:
        """`patience`: seconds to wait for other processes creating or migrating the database."""
        prepare_private(folder)  # 0700, files 0600: what jobs print (secrets too) is nobody else's
        self.folder = folder
        self.path = folder / "state.db"
        try:
            self.db = sqlite3.connect(
                self.path,
                timeout=min(30.0, patience),
                isolation_level=None,
                factory=GuardedConnection,
            )
        except sqlite3.Error as exc:  # no database yet, and its folder cannot take one
            unwritable.check(exc, folder)
            raise
        self.db.row_factory = sqlite3.Row
        # a new database: another process may be switching it to WAL too, which fails at once
        retry_busy(lambda: self.db.execute("PRAGMA journal_mode=WAL"), self.path, patience)
        self.db.execute("PRAGMA synchronous=NORMAL")
        # a checkpoint costs two fsyncs, whatever its size: fewer of them, one every 4,000
        # pages (16 MB of WAL) instead of SQLite's 1,000
        self.db.execute("PRAGMA wal_autocheckpoint=4000")
        self.db.execute("PRAGMA foreign_keys=ON")
        # writes asked for `soon`: done in the next transaction
        self._soon: list[Callable[[], None]] = []
        # the events of the transaction under way, inserted last
        self._events: list[tuple[Any, ...]] | None = None
        self._soon_since = 0.0  # monotonic time the oldest of them was asked for
        self._batches = 0  # depth of the batch() blocks under way
        migrate(self.db, self.path, patience, self._rollback)

    def close(self) -> None:
        self.flush()
        self.db.close()

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
        """Do the writes asked for `soon`, in one transaction (in the order they were asked);
        inside `batch()`, in the batch's transaction, committed with it."""
        if not self._soon:
            return
        if self._batches:
            self._open()
            self._write_soon()
            return
        self._begin()
        try:
            self._write_soon()
            self._commit()
        except BaseException:
            self._rollback()
            raise

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Every write inside is part of one transaction (begun at the first write), committed
        when the outermost block ends, or rolled back when it raises: nothing of it is then
        recorded. Reads inside see its writes (one connection)."""
        self._batches += 1
        try:
            yield
        except BaseException:
            self._batches -= 1
            if not self._batches:
                self._rollback()
            raise
        self._batches -= 1
        if self._batches or self._events is None:
            return
        try:
            self._write_soon()
            self._commit()
        except BaseException:
            self._rollback()
            raise

    @contextlib.contextmanager
    def _checked(self) -> Iterator[None]:
        """A write whose checks may refuse it (a launch): in a transaction of its own, or
        inside `batch()` in the batch's. The writes asked for `soon` go first (they are older)
        and stay when it is refused. Its checks come before its first write, so inside a
        batch a refusal has nothing to undo, and any other error leaves `batch()`, which rolls
        the whole transaction back: no SAVEPOINT there (two statements per launch). In a
        transaction of its own, a SAVEPOINT keeps the older writes whatever fails."""
        own = not self._batches
        if own:
            self._begin()
        else:
            self._open()
        try:
            self._write_soon()
        except BaseException:
            if own:
                self._rollback()
            raise
        try:
            with self._savepoint() if own else contextlib.nullcontext():
                yield
        except BaseException:
            if own:
                self._commit_or_rollback()
            raise
        if own:
            self._commit_or_rollback(raise_=True)

    @contextlib.contextmanager
    def _savepoint(self) -> Iterator[None]:
        assert self._events is not None
        events = len(self._events)
        self.db.execute("SAVEPOINT checked")
        try:
            yield
        except BaseException:
            del self._events[events:]
            with contextlib.suppress(sqlite3.Error, CcspecError):
                self.db.execute("ROLLBACK TO checked")
                self.db.execute("RELEASE checked")
            raise
        self.db.execute("RELEASE checked")

    def _commit_or_rollback(self, *, raise_: bool = False) -> None:
        try:
            self._commit()
        except BaseException:
            self._rollback()
            if raise_:
                raise

    def _open(self) -> None:
        """Inside `batch()`: its transaction, begun now if no write has begun it yet."""
        if self._events is None:
            self._begin()

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

    def _event(
        self,
        workflow: str,
        job: str | None,
        attempt: int | None,
        kind: str,
        data: Mapping[str, Any],
    ) -> None:
        row = (time.time(), workflow, job, attempt, kind, ENCODER.encode(dict(data)))
        # inside one of the store's transactions: inserted with the others at its end
        if self._events is not None:
            self._events.append(row)
        else:
            self.db.execute(_INSERT_EVENT, row)
