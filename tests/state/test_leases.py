"""Workflow leases in the state store: one runner per workflow, on a real SQLite file.

The store reads the wall clock itself (it takes no clock), so expiry is reached without
waiting: a lease taken or renewed with a TTL of -1 s has expired when it is written, which is
what a runner that stopped renewing leaves behind. Tests of held leases, expired takeovers and
dead holders in one process are in tests/test_store.py; these cover what they leave out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from ccspec.errors import LeaseHeld, LeaseLost
from ccspec.state.store import StateStore
from tests.state.records import OpenStore, launch

EXPIRED = -1.0  # a TTL that ends before the lease is written
HOUR = 3600.0


def held(store: StateStore, workflow: str = "w") -> bool:
    """Whether another runner (a new token) is refused the lease now."""
    try:
        token = store.acquire_lease(workflow, HOUR)
    except LeaseHeld:
        return True
    store.release_lease(workflow, token)
    return False


def test_each_workflow_has_its_own_lease(store: StateStore, open_store: OpenStore) -> None:
    other = open_store()
    store.acquire_lease("w", HOUR)
    token = other.acquire_lease("v", HOUR)  # another workflow: free
    assert held(other, "w") and held(store, "v")
    other.release_lease("v", token)
    assert not held(store, "v") and held(other, "w")


def test_renewing_moves_the_expiry_forward_and_back(
    store: StateStore, open_store: OpenStore
) -> None:
    other = open_store()
    token = store.acquire_lease("w", EXPIRED)
    assert other.lease_holder("w") is None  # expired: nobody holds it
    # late, but nobody took it over: the renewal holds it again
    assert store.renew_lease("w", token, HOUR)
    holder = other.lease_holder("w")
    assert holder is not None and holder[0] == os.getpid() and held(other)
    assert store.renew_lease("w", token, EXPIRED)
    assert other.lease_holder("w") is None and not held(other)


def test_a_holder_takes_its_own_lease_again_with_its_token(
    store: StateStore, open_store: OpenStore
) -> None:
    other = open_store()
    token = store.acquire_lease("w", HOUR)
    assert store.acquire_lease("w", HOUR, token=token) == token  # not refused: it is the holder
    assert held(other)
    store.acquire_lease("w", EXPIRED, token=token)  # and the TTL given now counts
    assert not held(other)


def test_only_the_holder_releases_a_lease(store: StateStore, open_store: OpenStore) -> None:
    other = open_store()
    token = store.acquire_lease("w", HOUR)
    other.release_lease("w", "not-the-token")
    assert held(other)
    store.release_lease("w", token)
    assert not held(other)


def test_a_runner_taken_over_cannot_renew_release_or_launch_with_its_old_token(
    store: StateStore, open_store: OpenStore
) -> None:
    stalled, new = store, open_store()
    old = stalled.acquire_lease("w", EXPIRED)
    token = new.acquire_lease("w", HOUR)
    # a stalled runner finishing up: none of its calls touches the new holder's lease
    assert not stalled.renew_lease("w", old, HOUR)
    stalled.release_lease("w", old)
    assert held(stalled)
    with pytest.raises(LeaseLost) as lost:
        launch(stalled, lease=old)
    holder = lost.value.taken_by
    assert holder is not None and holder[0] == os.getpid()
    assert launch(new, lease=token).number == 1


def test_a_released_lease_no_longer_lets_its_token_launch(store: StateStore) -> None:
    token = store.acquire_lease("w", HOUR)
    assert launch(store, lease=token).number == 1
    store.release_lease("w", token)
    with pytest.raises(LeaseLost) as lost:
        launch(store, lease=token)
    assert lost.value.taken_by is None  # nobody holds it now
    assert [a.number for a in store.attempts("w")] == [1]


HOLD = """
import sys
from pathlib import Path
from ccspec.state.store import StateStore
StateStore(Path(sys.argv[1])).acquire_lease("w", 3600)
print("held", flush=True)
sys.stdin.read()  # hold it until killed
"""


def test_a_live_holder_in_another_process_is_refused_until_it_is_killed(
    store: StateStore,
) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(store.folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            with pytest.raises(LeaseHeld) as refused:
                store.acquire_lease("w", HOUR)
            assert refused.value.pid == holder.pid
            current = store.lease_holder("w")
            assert current is not None and current[0] == holder.pid
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
    # its lease had most of an hour left: a dead holder on this host holds nothing
    assert store.lease_holder("w") is None
    token = store.acquire_lease("w", HOUR)
    assert launch(store, lease=token).number == 1
