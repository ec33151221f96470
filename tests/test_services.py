"""The ssh and Slurm test services (.ci/services-up.sh) work: they fail here, not in later tests."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.conftest import REPO
from tests.services import services, ssh

STATE_DIR = Path("/run/ccspec-test")


def test_ssh_runs_a_command_as_the_test_user() -> None:
    found = services()
    result = ssh("echo hello from $(id -un); cd ccspec && test -w . && python3 -c 'print(6 * 7)'")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == [f"hello from {found.ssh_user}", "42"]
    assert ssh("exit 7").returncode == 7


def test_failed_slurm_job_is_recorded_with_its_exit_code() -> None:
    submitted = ssh(
        f"sbatch --parsable -p {services().slurm_partition} -J ccspec-test-fail"
        " -o /dev/null --wrap 'exit 3'"
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().split(";")[0]
    assert job_id.isdigit(), submitted.stdout

    record = ""
    deadline = time.monotonic() + 30
    while not record and time.monotonic() < deadline:
        polled = ssh(f"sacct -c -P -n -j {job_id} --format=JobID,State,ExitCode")
        assert polled.returncode == 0, polled.stderr
        record = polled.stdout.strip()
        if not record:
            time.sleep(0.2)
    assert record == f"{job_id}|FAILED|3:0"


def test_services_up_again_is_idempotent_and_fast() -> None:
    found = services()
    before = {
        name: (STATE_DIR / f"{name}.pid").read_text().strip()
        for name in ("sshd", "slurmctld", "slurmd")
    }
    started = time.monotonic()
    rerun = subprocess.run(
        ["bash", str(REPO / ".ci" / "services-up.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "CCSPEC_TEST_KEYDIR": str(found.keydir)},
    )
    elapsed = time.monotonic() - started
    assert rerun.returncode == 0, rerun.stderr
    assert "sshd already running" in rerun.stderr
    after = {name: (STATE_DIR / f"{name}.pid").read_text().strip() for name in before}
    assert after == before
    assert elapsed < 30, f"services-up.sh with everything running took {elapsed:.1f} s"
