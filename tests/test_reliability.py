"""The reliability proof suite, reduced for CI (the full trials: bench/reliability/run.py).

Real processes against the real test services: `ccspec apply` SIGKILLed at random moments
of a local+ssh+Slurm workflow, two `apply --wait` and a `watch` on one spec, commands racing
on a fresh state folder, the state folder on a full 2 MB tmpfs (needs root), a job printing
200 MiB. Each asserts the targets: no job lost, none run twice, no internal error, the state
database intact, the status file parseable at every sample, apply under 200 MB.

The sshd and slurmctld outages run only from run.py: they stop services that concurrently
running tests use.
"""

from __future__ import annotations

from bench.reliability import concurrency, crash, faults
from bench.reliability.lib import TrialResult

SEED = 20261204  # the kill moments; any seed must pass


def assert_targets(result: TrialResult) -> None:
    """0 lost, 0 duplicated, no error seen (internal error, corruption, unparseable status)."""
    assert (result.lost, result.duplicated, result.errors) == (0, 0, []), result.summary()


def test_apply_killed_at_random_moments_runs_every_job_exactly_once() -> None:
    result = crash.crash_trial(kills=3, n_jobs=12, seed=SEED)
    assert result.faults >= 1, result.summary()  # at least one kill hit a running apply
    assert int(result.facts["integrity_checks"]) >= result.faults  # checked after every kill
    assert int(result.facts["status_samples"]) > 100, result.summary()
    assert result.facts["status_unparseable"] == 0, result.summary()
    assert_targets(result)


def test_two_apply_wait_and_a_watch_run_each_edit_once() -> None:
    result = concurrency.wait_trial(rounds=3)
    # all 0: 2 waiters x 3 rounds, a final apply, the watch
    assert result.exit_codes == {"0": 8}, result.summary()
    assert_targets(result)


def test_commands_racing_on_a_fresh_state_folder_never_crash() -> None:
    result = concurrency.race_trial(rounds=20)  # the race shows in 1 to 8 rounds of 20
    assert result.facts["internal_errors"] == 0, result.summary()
    assert_targets(result)


def test_full_state_disk_is_a_clear_error_and_the_next_run_recovers() -> None:
    result = faults.full_disk_trial(size_mb=2, n_jobs=12, output_kb=300)
    # 5: the state folder cannot be written; 1: a job failed (its log could not be written)
    assert result.facts["exit_code_when_full"] in (1, 5), result.summary()
    assert "this is a bug" not in str(result.facts["message_when_full"])
    assert_targets(result)


def test_apply_memory_stays_bounded_when_a_job_prints_200_mib() -> None:
    result = faults.big_output_trial(mb=200, limit_mb=200)
    assert 0 < float(result.facts["apply_peak_rss_mb"]) < 200, result.summary()
    assert_targets(result)
