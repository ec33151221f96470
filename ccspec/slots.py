"""Job slots shared by every workflow a process runs: one ledger per process, one pool per
host, each workflow's run a `Seat` at it. `ccspec watch` makes one ledger for all its specs
(ccspec.reconcile), so does `ccspec apply` of several specs (ccspec.cli.apply_many); an
engine built without one (`apply` of one spec) keeps its limits in its own scheduler.

The scheduler (ccspec.scheduler) asks its seat for a slot of a shared pool before it sends
a launch and gives it back when the launch ends; `-j` bounds this machine's pool, a remote
host's `max_jobs` (or its default) bounds its pool.

Fair between workflows (a fair share, as Slurm's, of each run's use): a seat refused a slot
queues for that pool, once. A slot given back while seats queue goes to the one whose
workflow holds the fewest slots of the pool now and, among equals, whose run used the pool
least lately: its slot-seconds, decayed with a half-life (`HALF_LIFE`; Slurm decays usage
alike), then the one with the fewest jobs waiting for the pool (Slurm's favour-small: of runs
saved at the same moment, a one-job edit does not queue behind fifty-job runs), then the
one queued first. The slot is reserved for it (no other seat can take it)
and its engine is woken; it takes one slot that way and queues again if it wants more. So
the run of a spec just saved, which used nothing yet, gets the next free slot even while
large specs keep every slot busy; a large spec cannot starve the others, as each slot its
run holds counts against it, now and (decaying) later; and a run that waits while others
run sees its use decay as theirs grows, until it is first again. The use is the run's, not
the workflow's over its past runs: a spec saved again starts afresh, so an edit is not held
back by the runs before it. A reservation its scheduler finds no ready job for is handed on
(`spare`).

A closed seat gives back all it holds and is reserved, whatever ended its run (success,
failure, cancel, hand-over, a lost lease, an exception). A run handed over to the next run of its workflow (its spec was
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

import math
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ccspec.clock import Clock, SystemClock

if TYPE_CHECKING:
    from ccspec.spec.models import Host

__all__ = ["HALF_LIFE", "LOCAL_POOL", "Seat", "SlotLedger", "pool_key"]

LOCAL_POOL = "local"  # this machine: bounded by -j
# seconds after which a run's use of a pool weighs half on its turn: a reconciler's minute
# (a resync is 30 s), not Slurm's week, so a run that used much waits behind the others for
# a minute or two, not for hours
HALF_LIFE = 60.0


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


class _Use:
    """A run's use of one pool: the slots it holds now and its slot-seconds until `at`,
    decayed by half every `HALF_LIFE` seconds."""

    __slots__ = ("at", "held", "value")

    def __init__(self, now: float) -> None:
        self.value, self.at, self.held = 0.0, now, 0

    def seconds(self, now: float, half_life: float) -> float:
        """The decayed slot-seconds at `now`, the slots held since `at` included."""
        elapsed = max(0.0, now - self.at)
        kept = math.exp(-math.log(2) * elapsed / half_life)
        # the integral of held * 0.5 ** ((now - t) / half_life) from `at` to `now`
        return self.value * kept + self.held * half_life / math.log(2) * (1.0 - kept)

    def change(self, now: float, half_life: float, slots: int) -> None:
        self.value, self.at = self.seconds(now, half_life), now
        self.held += slots


class _Pool:
    def __init__(self) -> None:
        self.busy = 0  # slots held or reserved
        self.limits: dict[Seat, int] = {}  # the limit each seated run asks for
        self.queue: list[Seat] = []  # seats refused a slot, in the order they queued

    @property
    def limit(self) -> int | None:
        return min(self.limits.values()) if self.limits else None


class SlotLedger:
    """The shared pools of one process; thread-safe."""

    def __init__(self, clock: Clock | None = None, half_life: float = HALF_LIFE) -> None:
        """`clock`: what the fair share's decay is measured on (tests move a fake one)."""
        self._clock: Clock = clock or SystemClock()
        self._half_life = half_life
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
        self._used(seat, name, 1)
        return True

    def _used(self, seat: Seat, pool: str, slots: int) -> None:
        """The seat's run holds `slots` more (or fewer) slots of the pool from now on."""
        now = self._clock.monotonic()
        use = seat.use.get(pool)
        if use is None:
            use = seat.use[pool] = _Use(now)
        use.change(now, self._half_life, slots)

    def _free(self, name: str, count: int, woken: list[Seat]) -> None:
        """`count` slots of the pool come free: each goes to the fairest seat queued."""
        pool = self._pools[name]
        pool.busy -= count
        while not self._stopped and pool.queue and (pool.limit is None or pool.busy < pool.limit):
            seat = self._fairest(name, pool)
            pool.queue.remove(seat)
            seat.reserved[name] = seat.reserved.get(name, 0) + 1
            pool.busy += 1
            woken.append(seat)

    def _fairest(self, name: str, pool: _Pool) -> Seat:
        """The queued seat whose workflow holds the fewest of the pool's slots (reserved ones
        and those a handed-over run left count), then whose run used it least lately, then
        with the fewest jobs waiting, then the first queued."""
        now = self._clock.monotonic()

        def share(seat: Seat) -> tuple[int, float, int]:
            held = seat.held.get(name, 0) + seat.reserved.get(name, 0)
            held += self._carried.get(seat.name, {}).get(name, 0)
            use = seat.use.get(name)
            used = use.seconds(now, self._half_life) if use is not None else 0.0
            return held, used, seat.waiting.get(name, 1)

        return min(pool.queue, key=share)  # min keeps the first of equals: queue order


class Seat:
    """One run's place at the ledger: what it holds, what is reserved for it."""

    def __init__(self, ledger: SlotLedger, name: str, wake: Callable[[], None]) -> None:
        self.ledger, self.name, self.wake = ledger, name, wake
        self.held: dict[str, int] = {}
        self.reserved: dict[str, int] = {}
        self.use: dict[str, _Use] = {}  # per pool: what the fair share weighs
        self.waiting: dict[str, int] = {}  # per pool: its jobs waiting, as `want` last said
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
            self.ledger._used(self, pool, 1)
            self.held[pool] = self.held.get(pool, 0) + 1

    def give(self, pool: str) -> None:
        """A slot given back: its launch ended."""
        woken: list[Seat] = []
        with self.ledger._lock:
            if self.held.get(pool, 0) > 0:
                self.held[pool] -= 1
                self.ledger._used(self, pool, -1)
                self.ledger._free(pool, 1, woken)
        _wake(woken)

    def want(self, pool: str, waiting: int = 1) -> None:
        """Queue for a slot of the pool (once), as a refused `take` does: `waiting` jobs
        still wait for one."""
        woken: list[Seat] = []
        with self.ledger._lock:
            self.waiting[pool] = waiting
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
