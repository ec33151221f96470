"""Slurm packing (`pack:` on a matrix job), end to end through the CLI against the real test
Slurm (`.ci/services-up.sh`, one node of 4 CPUs): members sent together run inside one Slurm
job, each with its own log, state and retries; a member is cancelled alone; a killed runner
re-attaches and never submits a member twice; `ccspec validate` explains misuse.

Each test names its job uniquely, so the Slurm jobs it counts are its own.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.services import TestServices, services
from tests.test_apply import ccspec, kill_runner, start, status, wait_for, write
from tests.test_remote import slurm_host
from tests.test_slurm_array import (
    attach_and_release,
    attempts,
    forget_ids,
    ledger,
    run_dir,
    slurm_ids,
    submit_held,
)


@pytest.fixture
def svc() -> TestServices:
    return services()


@pytest.fixture
def name() -> str:
    """The matrix job's name, unique to the test."""
    return f"p{uuid.uuid4().hex[:8]}"


def handles(workdir: Path, name: str, members: int) -> list[str]:
    return [
        run_dir(workdir, f"{name}-{n}").joinpath("slurm_id").read_text().strip()
        for n in range(1, members + 1)
    ]


def test_validate_explains_pack_misuse(repo: Path) -> None:
    write(
        repo,
        """
        version: 1
        hosts:
          hpc: {type: slurm}
        jobs:
          lone: {host: hpc, pack: 4, run: "echo 1"}
          here: {pack: 4, matrix: {n: [1, 2]}, run: "echo {{ matrix.n }}"}
          both: {host: hpc, pack: 4, array: true, matrix: {n: [1, 2]}, run: "echo {{ matrix.n }}"}
          one: {host: hpc, pack: 1, matrix: {n: [1, 2]}, run: "echo {{ matrix.n }}"}
          fine: {host: hpc, pack: 2, matrix: {n: [1, 2]}, run: "echo {{ matrix.n }}"}
        """,
    )
    result = ccspec(repo, "validate", "flow.yaml")
    assert result.returncode != 0
    lines = result.stdout.splitlines()

    def has(line_no: int, *words: str) -> bool:
        return any(
            line.startswith(f"flow.yaml:{line_no}:") and all(w in line for w in words)
            for line in lines
        )

    assert has(6, "'lone' has `pack` but no `matrix`", "add a `matrix`, or remove `pack`"), lines
    assert has(7, "runs on host 'local' (local)", "host of type slurm"), lines
    assert has(8, "both `array` and `pack`", "keep one of the two"), lines
    assert has(9, "`pack` must be", "from 2 to 1000"), lines
    assert not any("'fine'" in line for line in lines), lines
    assert "Traceback" not in result.stdout + result.stderr


def test_a_pack_runs_its_members_in_one_job_and_retries_a_failed_one_alone(
    repo: Path, svc: TestServices, name: str
) -> None:
    workdir = repo / "w"
    write(
        repo,
        f"""
        version: 1
        hosts: {{hpc: {slurm_host(svc, workdir)}}}
        jobs:
          {name}:
            host: hpc
            pack: 3
            retries: 1
            resources: {{cpus: 2, mem: 50M, time: 2m}}
            matrix: {{n: [1, 2, 3]}}
            run: >-
              echo "member {{{{ matrix.n }}}} in $SLURM_JOB_ID";
              if [ {{{{ matrix.n }}}} = 2 ] && [ ! -e {repo}/failed ]; then touch {repo}/failed; exit 4; fi;
              echo "# ccspec output n={{{{ matrix.n }}}}"
        """,
    )
    plan = ccspec(repo, "plan", "flow.yaml").stdout
    assert (
        f"sbatch pack {name} #1: {name}-1, {name}-2, {name}-3 (L = min(3, a node's CPUs / 2)"
        in plan
    )
    assert "asks L x 2 CPUs, L x 50M memory, ceil(3/L) x 120s time" in plan
    result = ccspec(repo, "apply", "flow.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = status(repo)["jobs"]
    first = handles(workdir, name, 3)
    pack = first[0].split("+")[0]
    assert first == [f"{pack}+0", f"{pack}+1", f"{pack}+2"]
    for n in (1, 2, 3):
        member = f"{name}-{n}"
        assert jobs[member]["state"] == "succeeded" and jobs[member]["outputs"] == {"n": n}
        log = ccspec(repo, "logs", "flow", member).stdout
        assert f"member {n} in" in log
        assert not any(f"member {m} " in log for m in (1, 2, 3) if m != n)  # its own log
    assert f"member 1 in {pack}" in ccspec(repo, "logs", "flow", f"{name}-1").stdout
    retry = run_dir(workdir, f"{name}-2", 2).joinpath("slurm_id").read_text().strip()
    assert retry.isdigit()  # the failed member went again alone, as a plain job
    assert attempts(repo, f"{name}-2") == [(1, "failed"), (2, "succeeded")]
    assert attempts(repo, f"{name}-3") == [(1, "succeeded")]
    assert slurm_ids(f"ccspec.flow.{name}") == [pack]  # one Slurm job for the pack
    # the node has 4 CPUs: 2 members at once, each with 2; the pack asked for both lanes
    shown = subprocess.run(["scontrol", "show", "job", pack], capture_output=True, text=True)
    assert "NumCPUs=4" in shown.stdout and "TimeLimit=00:04:00" in shown.stdout, shown.stdout


def test_a_member_is_cancelled_alone_and_the_others_finish(
    repo: Path, svc: TestServices, name: str
) -> None:
    workdir = repo / "w"
    write(
        repo,
        f"""
        version: 1
        hosts: {{hpc: {slurm_host(svc, workdir)}}}
        jobs:
          {name}:
            host: hpc
            pack: 2
            timeout: 3s
            matrix: {{n: [1, 60]}}
            run: "sleep {{{{ matrix.n }}}}; echo '# ccspec output n={{{{ matrix.n }}}}'"
        """,
    )
    began = time.monotonic()
    result = ccspec(repo, "apply", "flow.yaml")
    took = time.monotonic() - began
    assert result.returncode == 1, result.stdout + result.stderr
    jobs = status(repo)["jobs"]
    assert jobs[f"{name}-1"]["state"] == "succeeded", result.stdout + result.stderr
    assert jobs[f"{name}-60"]["state"] == "timed_out"
    assert took < 30, f"the apply took {took:.0f}s: the member was not stopped"
    pack = handles(workdir, name, 1)[0].split("+")[0]
    # the pack itself ends once its members did
    wait_for(lambda: slurm_state(pack) == "COMPLETED", timeout=20)


def slurm_state(job: str) -> str:
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"], capture_output=True, text=True
    ).stdout
    return out.strip()


def test_a_killed_runner_reattaches_to_a_running_pack(
    repo: Path, svc: TestServices, name: str
) -> None:
    write(
        repo,
        f"""
        version: 1
        hosts: {{hpc: {slurm_host(svc, repo / "w")}}}
        jobs:
          {name}:
            host: hpc
            pack: 3
            matrix: {{n: [1, 2, 3]}}
            run: "echo {{{{ matrix.n }}}} >> {repo}/LEDGER; sleep 3; echo '# ccspec output n={{{{ matrix.n }}}}'"
        """,
    )
    proc = start(repo, "apply", "flow.yaml")
    wait_for(lambda: len(ledger(repo)) == 3, timeout=60)  # every member runs
    kill_runner(proc)
    result = ccspec(repo, "apply", "flow.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "attached" in result.stdout
    assert ledger(repo) == ["1", "2", "3"]  # each member ran once
    for n in (1, 2, 3):
        assert attempts(repo, f"{name}-{n}") == [(1, "succeeded")]
    assert len(slurm_ids(f"ccspec.flow.{name}")) == 1  # one pack, submitted once


def test_interrupting_apply_cancels_a_running_pack_whole(
    repo: Path, svc: TestServices, name: str
) -> None:
    write(
        repo,
        f"""
        version: 1
        hosts: {{hpc: {slurm_host(svc, repo / "w")}}}
        jobs:
          {name}:
            host: hpc
            pack: 2
            matrix: {{n: [1, 2]}}
            run: "echo {{{{ matrix.n }}}} >> {repo}/LEDGER; sleep 60"
        """,
    )
    proc = start(repo, "apply", "flow.yaml")
    wait_for(lambda: len(ledger(repo)) == 2, timeout=60)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    jobs = status(repo)["jobs"]
    assert {jobs[f"{name}-{n}"]["state"] for n in (1, 2)} == {"cancelled"}
    (pack,) = slurm_ids(f"ccspec.flow.{name}")
    wait_for(lambda: slurm_state(pack) == "CANCELLED", timeout=20)  # scancel'ed whole


def test_a_pack_submitted_before_its_ids_were_kept_is_followed_not_repeated(
    repo: Path, svc: TestServices, name: str
) -> None:
    """sbatch of the pack ran, but neither the members' handles nor the pack's id reached the
    runner or the run folders: the next apply finds the pack by its comment on squeue. The
    pack is held until the apply found it."""
    workdir = repo / "w"
    got = submit_held(repo, svc, workdir, name, "pack: 2", pack=2)
    pack = got[0].split("+")[0]
    assert got == [f"{pack}+0", f"{pack}+1"], got
    forget_ids(workdir, name, "packs")
    attach_and_release(repo, name, pack, lambda: all(p.exists() for p in ids_files(workdir, name)))
    assert handles(workdir, name, 2) == got
    assert slurm_ids(f"ccspec.flow.{name}") == [pack]


def ids_files(workdir: Path, name: str) -> list[Path]:
    return [run_dir(workdir, f"{name}-{n}") / "slurm_id" for n in (1, 2)]
