"""Deferred writes in the state store (`soon=True`, as the engine records handles and
outcomes on its hot path): kept back until `flush`, the next transaction, a read of the same
store or `close`, then written in the order they were asked for. Another connection -- a
`ccspec status` or `serve` reading the database -- sees them only then."""

from __future__ import annotations

from ccspec.state.store import StateStore
from ccspec.states import JobState
from tests.state.records import OpenStore, finish, launch


def states(store: StateStore) -> dict[str, JobState]:
    return {job_id: job.state for job_id, job in store.recorded_jobs("w").items()}


def test_deferred_writes_wait_for_flush(store: StateStore, open_store: OpenStore) -> None:
    other = open_store()
    attempt = launch(store)
    assert store.pending_age() is None
    store.set_handle(attempt.id, "4242", workflow="w", job="a", soon=True)
    finish(store, attempt, soon=True)
    age = store.pending_age()
    assert age is not None and age >= 0
    assert states(other) == {"a": JobState.LAUNCHING}
    assert [a.handle for a in other.attempts("w")] == [None]
    store.flush()
    assert store.pending_age() is None
    assert states(other) == {"a": JobState.SUCCEEDED}
    [written] = other.attempts("w")
    assert (written.handle, written.state, written.exit_code) == ("4242", JobState.SUCCEEDED, 0)
    assert [e["kind"] for e in other.events("w")] == ["launching", "running", "succeeded"]


def test_the_next_transaction_carries_the_deferred_writes_before_its_own(
    store: StateStore, open_store: OpenStore
) -> None:
    other = open_store()
    first = launch(store, "a")
    store.set_handle(first.id, "1", workflow="w", job="a", soon=True)
    launch(store, "b")  # its own transaction, which writes a's handle first
    assert store.pending_age() is None
    assert states(other) == {"a": JobState.RUNNING, "b": JobState.LAUNCHING}
    finish(store, first, soon=True)
    store.set_job_state("w", "c", "c", JobState.SKIPPED, "a failed")  # not deferred
    assert states(other)["a"] is JobState.SUCCEEDED
    events = [(e["job"], e["kind"]) for e in other.events("w")]
    assert events == [
        ("a", "launching"),
        ("a", "running"),
        ("b", "launching"),
        ("a", "succeeded"),
        ("c", "state"),
    ]


def test_a_read_of_the_same_store_writes_them_first(
    store: StateStore, open_store: OpenStore
) -> None:
    other = open_store()
    attempt = launch(store)
    finish(store, attempt, JobState.FAILED, exit_code=1, soon=True)
    assert states(store) == {"a": JobState.FAILED}  # its own reads see its writes
    assert states(other) == {"a": JobState.FAILED}  # because they were written


def test_closing_a_store_writes_them(open_store: OpenStore) -> None:
    store = open_store()
    attempt = launch(store)
    finish(store, attempt, soon=True)
    store.close()
    assert states(open_store()) == {"a": JobState.SUCCEEDED}
