"""Usage of Slurm jobs from accounting, for attempts whose wrapper wrote none: a job killed
by KILL on the real test cluster still gets its wall time (this cluster has no slurmdbd, so
`sacct -c` knows only Elapsed); and the parsing of sacct's durations, sizes and steps."""

from __future__ import annotations

from pathlib import Path

from ccspec.targets.slurm_usage import parse_sacct_usage, slurm_seconds, slurm_size
from ccspec.usage import Usage
from tests.services import services
from tests.test_apply import ccspec
from tests.test_remote import slurm_host
from tests.test_usage_remote import last_attempts


def test_a_job_killed_before_its_wrapper_could_write_gets_its_wall_time_from_sacct(
    repo: Path,
) -> None:
    svc = services()
    (repo / "flow.yaml").write_text(
        f"""\
version: 1
name: flow
hosts:
  hpc: {slurm_host(svc, repo / "slurm-work")}
jobs:
  killed:
    host: hpc
    run: sleep 1; kill -KILL $$
"""
    )
    done = ccspec(repo, "apply", "flow.yaml")
    assert done.returncode == 1, done.stdout + done.stderr
    attempt = last_attempts(repo)["killed"]
    # killed before its wrapper could write the exit code and usage: accounting measured it
    assert not (repo / "slurm-work/.ccspec/runs/flow/killed.1/exit_code").exists()
    assert attempt.usage is not None and attempt.usage.wall is not None
    assert 1.0 <= attempt.usage.wall <= 60


def test_sacct_durations_sizes_and_steps() -> None:
    assert slurm_seconds("00:00:01") == 1.0
    assert slurm_seconds("01:02.500") == 62.5
    assert slurm_seconds("1-02:03:04") == 93784.0
    assert slurm_seconds("") is None and slurm_seconds("INVALID") is None
    assert slurm_size("51200K") == 51200 * 1024 and slurm_size("1.5G") == 3 << 29
    assert slurm_size("") is None
    text = "\n".join(
        [
            "71|00:01:40|01:20.250||",
            "71.batch|00:01:40|01:00.000|51200K",
            "71.0|00:01:00|00:20.250|102400K",
            "72|00:00:03|||",  # the completion log: Elapsed only
            "garbage",
        ]
    )
    assert parse_sacct_usage(text) == {
        "71": Usage(100.0, 80.25, 102400 * 1024),
        "72": Usage(3.0, None, None),
    }
