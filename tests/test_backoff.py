"""`ccspec.backoff.Backoff`: the retry rule, on a clock the test moves."""

from __future__ import annotations

import pytest

from ccspec.backoff import Backoff


def test_nothing_failed_means_no_retry_is_pending() -> None:
    backoff = Backoff()
    assert backoff.wait(100.0) is None
    assert backoff.delay() == 0.0


def test_delays_double_from_one_second_up_to_the_cap() -> None:
    backoff = Backoff(first=1.0, cap=30.0)
    now = 1000.0
    delays = []
    for _ in range(8):
        due = backoff.failed(now)
        delays.append(due - now)
        now = due  # each retry happens when it is due, and fails again
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_wait_counts_down_to_the_next_try_and_never_below_zero() -> None:
    backoff = Backoff(first=1.0, cap=30.0)
    backoff.failed(10.0)
    backoff.failed(11.0)  # second failure: 2 s later
    assert backoff.wait(11.5) == pytest.approx(1.5)
    assert backoff.wait(13.0) == 0.0
    assert backoff.wait(20.0) == 0.0


def test_a_success_starts_the_next_failures_from_the_first_delay() -> None:
    backoff = Backoff(first=1.0, cap=30.0)
    for t in (0.0, 1.0, 3.0, 7.0):
        backoff.failed(t)
    backoff.succeeded()
    assert backoff.wait(50.0) is None
    assert backoff.failed(50.0) == 51.0


def test_a_cap_below_the_first_delay_wins() -> None:
    backoff = Backoff(first=1.0, cap=0.25)  # `watch --interval 250ms`
    assert backoff.failed(0.0) == 0.25


def test_thousands_of_failures_stay_at_the_cap() -> None:
    backoff = Backoff(first=1.0, cap=60.0)
    for i in range(5000):
        backoff.failed(float(i))
    assert backoff.delay() == 60.0
    assert backoff.failures == 5000
