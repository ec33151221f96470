"""Job slots shared by every workflow a process runs: one ledger per process, one pool per
host, each workflow's run a `Seat` at it. `ccspec watch` makes one ledger for all its specs
(ccspec.reconcile); an engine built without one (a single `apply`) makes its own.

The scheduler (ccspec.scheduler) asks its seat for a slot of a shared pool before it sends
a launch and gives it back when the launch ends; `-j` bounds this machine's pool, a remote
host's `max_jobs` (or its default) bounds its pool.

Fair between workflows: a seat refused a slot queues for that pool, once. A slot given back
while seats queue goes to the first of them, reserved for it (no other seat can take it)
and its engine is woken; it takes one slot that way and queues again at the end if it wants
more, so waiting workflows take turns (round-robin), whatever their sizes. A reservation its
scheduler finds no ready job for is handed on (`spare`). A closed seat gives back all it
holds and is reserved, whatever ended its run (success, failure, cancel, hand-over, a lost
lease, an exception). A run handed over to the next run of its workflow (its spec was
edited) leaves its jobs running: their slots are carried over to that run, which takes
them back as it re-attaches to the jobs (`drop_carried` frees what it did not take), so
other workflows do not start jobs in them meanwhile.

What "the same host" means (`pool_key`): this machine is one pool (`local`); an ssh host is
its type, user, address and port as the spec writes them (`ssh:user@host:port`, the alias
of ~/.ssh/config as written, not resolved); a Slurm cluster is its login node (or this
machine) and user, whatever the partition; WSL is its distribution and user. Two specs that
write the same host alike share its pool, whatever they name it; its limit is the smallest
`max_jobs` of the runs seated at it now.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccspec.spec.models import Host

__all__ = ["LOCAL_POOL", "Seat", "SlotLedger", "pool_key"]

LOCAL_POOL = "local"  # this machine: bounded by -j


def pool_key(host: Host) -> str:
    """The shared pool of a remote host: hosts written alike in several specs share it."""
    user = getattr(host, "user", None) or ""
    port = getattr(host, "port", None)
    at = f":{port}" if port else ""
    if host.type == "ssh":
        return f"ssh:{user}@{getattr(host, 'host', '')}{at}"
    if host.type == "slurm":
        login = getattr(host, "ssh", None) or "localhost"
        return f"slurm:{user}@{login}{at}"
    if host.type == "wsl":
        return f"wsl:{user}@{getattr(host, 'distro', '')}"
    return LOCAL_POOL


class _Pool:
    def __init__(self) -> None:
        self.busy = 0  # slots held or reserved
        self.limits: dict[Seat, int] = {}  # the limit each seated run asks for
        self.queue: deque[Seat] = deque()  # seats refused a slot, first come first served

    @property
    def limit(self) -> int | None:
        return min(self.limits.values()) if self.limits else None


class SlotLedger:
    """The shared pools of one process; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pools: dict[str, _Pool] = {}
        self._stopped = False
        self._carried: dict[str, dict[str, int]] = {}  # workflow -> pool -> slots handed over

    def stop(self) -> None:
        """No slot is taken or reserved from now on: the process is stopping, and the
        slots its ending runs give back must not start jobs in runs not yet told."""
        with self._lock:
            self._stopped = True

    def seat(self, name: str, limits: Mapping[str, int], wake: Callable[[], None]) -> Seat:
        """A run's seat: `limits` the pools it uses (slots each), `wake` called (from any
        thread) when a slot is reserved for it."""
        seat = Seat(self, name, wake)
        with self._lock:
            for pool, limit in limits.items():
                self._pools.setdefault(pool, _Pool()).limits[seat] = max(1, limit)
        return seat

    def in_use(self) -> dict[str, int]:
        """Slots held or reserved per pool, every pool seen (for /metrics)."""
        with self._lock:
            return {name: pool.busy for name, pool in self._pools.items()}

    def drop_carried(self, name: str) -> None:
        """Free the slots a handed-over run of workflow `name` left that no later run took
        back (called once the next run re-attached, and after every reconcile pass)."""
        woken: list[Seat] = []
        with self._lock:
            for pool, count in self._carried.pop(name, {}).items():
                if count > 0:
                    self._free(pool, count, woken)
        _wake(woken)

    def snapshot(self) -> dict[str, tuple[int, int | None, int]]:
        """Per pool: slots held or reserved, its limit now (None: no run seated at it), the
        runs waiting for a slot (for /metrics, from the server's threads)."""
        with self._lock:
            return {n: (p.busy, p.limit, len(p.queue)) for n, p in self._pools.items()}

    # -- for seats, under the lock -------------------------------------------------------

    def _take(self, seat: Seat, name: str) -> bool:
        pool = self._pools.setdefault(name, _Pool())
        if self._stopped:
            return False
        if seat.reserved.get(name, 0) > 0:
            seat.reserved[name] -= 1
        elif pool.queue or (pool.limit is not None and pool.busy >= pool.limit):
            if seat not in pool.queue:
                pool.queue.append(seat)
            return False
        else:
            pool.busy += 1
        seat.held[name] = seat.held.get(name, 0) + 1
        return True

    def _free(self, name: str, count: int, woken: list[Seat]) -> None:
        """`count` slots of the pool come free: each goes to the first seat queued."""
        pool = self._pools[name]
        pool.busy -= count
        while not self._stopped and pool.queue and (pool.limit is None or pool.busy < pool.limit):
            seat = pool.queue.popleft()
            seat.reserved[name] = seat.reserved.get(name, 0) + 1
            pool.busy += 1
            woken.append(seat)


class Seat:
    """One run's place at the ledger: what it holds, what is reserved for it."""

    def __init__(self, ledger: SlotLedger, name: str, wake: Callable[[], None]) -> None:
        self.ledger, self.name, self.wake = ledger, name, wake
        self.held: dict[str, int] = {}
        self.reserved: dict[str, int] = {}
        self.closed = False

    def take(self, pool: str) -> bool:
        """A slot of the pool, or False: the seat then queues for one (woken when it is
        reserved for it; `reserved` then names it)."""
        with self.ledger._lock:
            return not self.closed and self.ledger._take(self, pool)

    def hold(self, pool: str) -> None:
        """A slot taken whatever the limit: an attempt an earlier run launched (one its
        workflow's handed-over run carried over is taken back)."""
        with self.ledger._lock:
            carried = self.ledger._carried.get(self.name, {})
            if carried.get(pool, 0) > 0:
                carried[pool] -= 1
            else:
                self.ledger._pools.setdefault(pool, _Pool()).busy += 1
            self.held[pool] = self.held.get(pool, 0) + 1

    def give(self, pool: str) -> None:
        """A slot given back: its launch ended."""
        woken: list[Seat] = []
        with self.ledger._lock:
            if self.held.get(pool, 0) > 0:
                self.held[pool] -= 1
                self.ledger._free(pool, 1, woken)
        _wake(woken)

    def want(self, pool: str) -> None:
        """Queue for a slot of the pool (once), as a refused `take` does: jobs still wait."""
        woken: list[Seat] = []
        with self.ledger._lock:
            if self.closed or self.reserved.get(pool, 0) > 0:
                return
            found = self.ledger._pools.setdefault(pool, _Pool())
            if self not in found.queue:
                found.queue.append(self)
                self.ledger._free(pool, 0, woken)  # a slot free now is reserved at once
        _wake(woken)

    def granted(self) -> dict[str, int]:
        """Slots reserved for this seat and not taken yet, per pool."""
        with self.ledger._lock:
            return {p: n for p, n in self.reserved.items() if n > 0}

    def spare(self, seen: Mapping[str, int] | None = None) -> None:
        """Hand on the reservations no ready job took: of those `seen` (as `granted` said
        before the jobs were tried; one made since waits for the next try), or all."""
        woken: list[Seat] = []
        with self.ledger._lock:
            for pool, count in list(self.reserved.items()):
                spared = count if seen is None else min(count, seen.get(pool, 0))
                if spared > 0:
                    self.reserved[pool] = count - spared
                    self.ledger._free(pool, spared, woken)
        _wake(woken)

    def close(self, *, carry: bool = False) -> None:
        """Give back everything, leave every queue; later calls take nothing. Idempotent.
        `carry`: the run was handed over; the slots of its jobs go to its workflow's next run."""
        woken: list[Seat] = []
        with self.ledger._lock:
            if carry and not self.ledger._stopped:
                carried = self.ledger._carried.setdefault(self.name, {})
                for name, count in self.held.items():
                    carried[name] = carried.get(name, 0) + count
                self.held = {}
            self.closed = True
            for pool in self.ledger._pools.values():
                pool.limits.pop(self, None)
                if self in pool.queue:
                    pool.queue.remove(self)
            owned = [*self.held.items(), *self.reserved.items()]
            self.held, self.reserved = {}, {}
            for pool_name, count in owned:
                if count > 0:
                    self.ledger._free(pool_name, count, woken)
        _wake(woken)


def _wake(seats: list[Seat]) -> None:
    for seat in seats:  # outside the lock: a wake may take locks of its own
        seat.wake()
