"""Resource usage of jobs on the real test services: ssh and Slurm jobs that allocate ~40 MB
and burn ~0.5 s of CPU get it recorded, from the same wrappers as on this machine (`run:`
under run-wrapper.sh, `script:` under job-wrapper.sh; the usage line comes back with the
attempt's final state)."""

from __future__ import annotations

from pathlib import Path

from ccspec.state.store import Attempt, StateStore
from tests.services import services, ssh
from tests.test_apply import ccspec, kill_runner, start, wait_for
from tests.test_remote import remote_dir as remote_dir
from tests.test_remote import remote_pid, slurm_host, ssh_host

MB = 1024 * 1024
HUNGRY = """\
import time
block = bytearray(40 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
start = time.process_time()
while time.process_time() - start < 0.5:
    pass
"""

# an ssh job that asks for less memory than it uses
THERE = """\
  there:
    host: box
    run: python3 hungry.py
    inputs: [hungry.py]
    resources: {mem: 8M}
"""


def write_flow(repo: Path, hosts: str, jobs: str, hungry: str = HUNGRY) -> None:
    """flow.yaml with these hosts and jobs (YAML lines), and the script hungry.py."""
    (repo / "hungry.py").write_text(hungry)
    (repo / "flow.yaml").write_text(f"version: 1\nname: flow\nhosts:\n{hosts}jobs:\n{jobs}")


def last_attempts(repo: Path) -> dict[str, Attempt]:
    """The last attempt of each job of the workflow `flow`, as recorded."""
    store = StateStore(repo / ".ccspec")
    try:
        return store.last_attempts("flow")
    finally:
        store.close()


def test_ssh_and_slurm_jobs_record_their_usage(repo: Path, remote_dir: str) -> None:
    svc = services()
    hosts = f"  box: {ssh_host(svc, remote_dir)}\n  hpc: {slurm_host(svc, repo / 'slurm-work')}\n"
    jobs = """\
  script:
    host: box
    script: hungry.py
    interpreter: python3
  queued:
    host: hpc
    script: hungry.py
    interpreter: python3
"""
    write_flow(repo, hosts, THERE + jobs)
    done = ccspec(repo, "apply", "flow.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    last = last_attempts(repo)
    for job in ("there", "script", "queued"):
        used = last[job].usage
        assert used is not None and used.cpu is not None and used.max_rss is not None, job
        assert 0.45 <= used.cpu <= 10, (job, used)
        assert 40 * MB <= used.max_rss <= 400 * MB, (job, used)
        assert used.wall is not None and used.wall >= 0.45, (job, used)
    assert "over the 8M asked" in (last["there"].usage_warning or "")


def test_an_attempt_that_ended_unwatched_gets_its_usage_and_warning(
    repo: Path, remote_dir: str
) -> None:
    """ccspec killed while an ssh job runs; the job ends with nobody watching; `ccspec
    status` collects it: its usage, and the warning that it used more than it asked."""
    hosts = f"  box: {ssh_host(services(), remote_dir)}\n"
    # it ends once the test says so: after its runner is gone
    write_flow(repo, hosts, THERE, HUNGRY + "while not __import__('os').path.exists('go'): pass\n")
    runner = start(repo, "apply", "flow.yaml")
    run_dir = f"{remote_dir}/.ccspec/runs/flow/there.1"
    wait_for(lambda: remote_pid(run_dir) != "")
    kill_runner(runner)
    assert ssh(f"touch {remote_dir}/flow/go").returncode == 0
    wait_for(lambda: ssh(f"test -s {run_dir}/exit_code").returncode == 0)
    shown = ccspec(repo, "status", "flow.yaml")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    last = last_attempts(repo)["there"]
    assert last.state.value == "succeeded", last
    assert last.usage is not None and last.usage.max_rss is not None
    assert last.usage.max_rss >= 40 * MB
    assert "over the 8M asked" in (last.usage_warning or "")
