"""Workflow leases: one runner per workflow holds its lease and renews it; only the holder
records launches (`StateStore.begin_attempt` checks it in the transaction that records one).
A lease whose holder died on this host, or that was not renewed in time, is taken over.
Used by the runner (`ccspec.runner.leased`), `ccspec cancel` and the reconciler."""

from __future__ import annotations

import os
import socket
import time
import uuid

from ccspec.errors import LeaseHeld
from ccspec.processes import pid_alive
from ccspec.state.database import StateDatabase

__all__ = ["Leases"]


class Leases(StateDatabase):
    """The lease methods of `StateStore`."""

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
