"""Slurm job arrays (`array:` on a matrix job), end to end through the CLI against the real
test Slurm (`.ci/services-up.sh`): members ready together go as one `sbatch --array`, each
with its own log, state and retries; a killed runner re-attaches and never submits a member
twice; `ccspec validate` explains misuse.

Each test names its job uniquely, so the Slurm jobs it counts are its own.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from ccspec.spec.models import SlurmHost
from ccspec.spec.resolved import ResolvedJob
from ccspec.state.store import Attempt, StateStore
from ccspec.targets.base import RemoteLaunch
from ccspec.targets.claims import launch_claim
from ccspec.targets.hosts import backend_for
from tests.services import TestServices, services
from tests.test_apply import ccspec, kill_runner, start, status, wait_for, write
from tests.test_remote import slurm_host


@pytest.fixture
def svc() -> TestServices:
    return services()


@pytest.fixture
def name() -> str:
    """The matrix job's name, unique to the test."""
    return f"s{uuid.uuid4().hex[:8]}"


def slurm_ids(job_name: str) -> list[str]:
    """Every Slurm job (array task) named `job_name` that slurmctld still knows (finished
    ones included): what was submitted."""
    out = subprocess.run(
        ["squeue", "-h", "-r", "-t", "all", f"--name={job_name}", "-o", "%i"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(out.split())


def run_dir(workdir: Path, member: str, number: int = 1) -> Path:
    return workdir / ".ccspec" / "runs" / "flow" / f"{member}.{number}"


def attempts(repo: Path, member: str) -> list[tuple[int, str]]:
    store = StateStore(repo / ".ccspec")
    try:
        return [(a.number, a.state.value) for a in store.attempts("flow", member)]
    finally:
        store.close()


def ledger(repo: Path) -> list[str]:
    path = repo / "LEDGER"
    return sorted(path.read_text().split()) if path.exists() else []


def test_validate_explains_array_misuse(repo: Path) -> None:
    write(
        repo,
        """
        version: 1
        hosts:
          box: {type: ssh, host: example.org}
          hpc: {type: slurm}
        jobs:
          lone: {host: hpc, array: true, run: "echo 1"}
          remote: {host: box, array: 4, matrix: {n: [1, 2]}, run: "echo {{ matrix.n }}"}
          zero: {host: hpc, array: 0, matrix: {n: [1, 2]}, run: "echo {{ matrix.n }}"}
          fine: {host: hpc, array: 2, matrix: {n: [1, 2]}, run: "echo {{ matrix.n }}"}
        """,
    )
    result = ccspec(repo, "validate", "flow.yaml")
    assert result.returncode != 0
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("flow.yaml:7:")
        and "'lone' has `array` but no `matrix`" in line
        and "add a `matrix`, or remove `array`" in line
        for line in lines
    ), result.stdout
    assert any(
        line.startswith("flow.yaml:8:")
        and "runs on host 'box' (ssh)" in line
        and "host of type slurm" in line
        for line in lines
    ), result.stdout
    assert any(line.startswith("flow.yaml:9:") and "(1 to 1000)" in line for line in lines), (
        result.stdout
    )
    assert not any("'fine'" in line for line in lines), result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_an_array_runs_each_member_apart_and_retries_a_failed_one_alone(
    repo: Path, svc: TestServices, name: str
) -> None:
    workdir = repo / "w"
    write(
        repo,
        f"""
        version: 1
        hosts: {{hpc: {slurm_host(svc, workdir, max_jobs=3)}}}
        jobs:
          {name}:
            host: hpc
            array: true
            retries: 1
            matrix: {{n: [1, 2, 3]}}
            run: >-
              echo "member {{{{ matrix.n }}}} task $SLURM_ARRAY_TASK_ID";
              if [ {{{{ matrix.n }}}} = 2 ] && [ ! -e {repo}/failed ]; then touch {repo}/failed; exit 4; fi;
              echo "# ccspec output n={{{{ matrix.n }}}}"
        """,
    )
    plan = ccspec(repo, "plan", "flow.yaml").stdout
    assert f"sbatch --array {name} #1: {name}-1, {name}-2, {name}-3" in plan
    result = ccspec(repo, "apply", "flow.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = status(repo)["jobs"]
    for n in (1, 2, 3):
        member = f"{name}-{n}"
        assert jobs[member]["state"] == "succeeded" and jobs[member]["outputs"] == {"n": n}
        log = ccspec(repo, "logs", "flow", member).stdout
        assert f"member {n} task" in log
        assert not any(f"member {m} " in log for m in (1, 2, 3) if m != n)  # its own log
    # the first attempts went as one array (throttled by max_jobs), the failed member alone
    first = [
        run_dir(workdir, f"{name}-{n}").joinpath("slurm_id").read_text().strip() for n in (1, 2, 3)
    ]
    array_id = first[0].split("_")[0]
    assert first == [f"{array_id}_0", f"{array_id}_1", f"{array_id}_2"]
    retry = run_dir(workdir, f"{name}-2", 2).joinpath("slurm_id").read_text().strip()
    assert retry.isdigit()
    assert attempts(repo, f"{name}-2") == [(1, "failed"), (2, "succeeded")]
    assert attempts(repo, f"{name}-1") == [(1, "succeeded")]
    assert slurm_ids(f"ccspec.flow.{name}") == first  # the array, named after the job
    assert slurm_ids(f"ccspec.flow.{name}-2") == [retry]  # a plain job, named after the member
    shown = subprocess.run(
        ["scontrol", "show", "job", first[0]], capture_output=True, text=True
    ).stdout
    assert "ArrayTaskThrottle=3" in shown


def test_a_killed_runner_reattaches_to_a_running_array(
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
            array: true
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
    ids = slurm_ids(f"ccspec.flow.{name}")
    assert len(ids) == 3 and len({i.split("_")[0] for i in ids}) == 1  # one array, submitted once


def record_unanswered(repo: Path, member: str) -> Attempt:
    """What a runner killed between recording a launch and the host's answer leaves."""
    store = StateStore(repo / ".ccspec")
    try:
        return store.begin_attempt(
            "flow",
            member,
            member.rsplit("-", 1)[0],
            host="hpc",
            fingerprint="sha256:" + "0" * 64,
            parts={},
            run_dir=Path(".ccspec", "runs", "flow", f"{member}.1"),
            log_path=repo / ".ccspec" / "logs" / "flow" / member / "1.log",
        )
    finally:
        store.close()


def test_an_array_submitted_before_its_ids_were_kept_is_followed_not_repeated(
    repo: Path, svc: TestServices, name: str
) -> None:
    """sbatch --array ran, but neither the members' task ids nor the array's id reached the
    runner or the run folders: the next apply finds the array by its comment on squeue. The
    array is held until the apply found it."""
    workdir = repo / "w"
    handles = submit_held(repo, svc, workdir, name, "array: true", array=1000)
    array_id = handles[0].split("_")[0]
    assert handles == [f"{array_id}_0", f"{array_id}_1"], handles
    forget_ids(workdir, name, "arrays")
    ids = [run_dir(workdir, f"{name}-{n}") / "slurm_id" for n in (1, 2)]
    attach_and_release(repo, name, array_id, lambda: all(p.exists() for p in ids))
    assert slurm_ids(f"ccspec.flow.{name}") == handles


def forget_ids(workdir: Path, name: str, kind: str) -> None:
    """As if the Slurm ids of the two members and of their array or pack (`kind`: arrays,
    packs) never reached a file."""
    for n in (1, 2):
        run_dir(workdir, f"{name}-{n}").joinpath("slurm_id").unlink()
    for found in (workdir / ".ccspec" / kind).rglob("slurm_id"):
        found.unlink()


def attach_and_release(repo: Path, name: str, held: str, found: Callable[[], bool]) -> None:
    """`apply` again; once it `found` the held Slurm job `held` (its ids written back),
    release it: the apply re-attached, and each of the two members ran once."""
    proc = start(repo, "apply", "flow.yaml")
    try:
        wait_for(found)
        subprocess.run(["scontrol", "release", held], check=True)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        subprocess.run(["scancel", held], check=False)  # no held job left behind
    assert proc.returncode == 0, out + err
    assert "attached" in out
    assert ledger(repo) == ["1", "2"]
    for n in (1, 2):
        assert attempts(repo, f"{name}-{n}") == [(1, "succeeded")]


def submit_held(
    repo: Path, svc: TestServices, workdir: Path, name: str, key: str, **job_keys: int
) -> list[str]:
    """Write a two-member matrix job with `key` (`array: true`, `pack: 2`) on the test
    cluster, record both attempts as a runner killed before any answer would, and submit
    them held (`sbatch --hold`) as that runner did: the members' handles."""
    run = f"echo {{n}} >> {repo}/LEDGER; echo '# ccspec output n={{n}}'"
    write(
        repo,
        f"""
        version: 1
        hosts: {{hpc: {slurm_host(svc, workdir)}}}
        jobs:
          {name}: {{host: hpc, {key}, matrix: {{n: [1, 2]}}, run: "{run.format(n="{{ matrix.n }}")}"}}
        """,
    )
    recorded = [record_unanswered(repo, f"{name}-{n}") for n in (1, 2)]
    held = SlurmHost(
        type="slurm", partition=svc.slurm_partition, workdir=str(workdir), sbatch={"hold": True}
    )
    launches = [
        RemoteLaunch(
            a.id,
            "flow",
            ResolvedJob(
                f"{name}-{n}", name, "run", "hpc", {"n": n}, run=run.format(n=n), **job_keys
            ),
            1,
            repo,
            str(a.run_dir),
            Path(str(a.log_path)),
            {},
            claim=launch_claim(a.id, a.created or 0.0),
        )
        for n, a in zip((1, 2), recorded, strict=True)
    ]
    backend = backend_for(held)
    try:
        answers = backend.submit(launches)
    finally:
        backend.close()
    return [a.handle or "" for a in answers]
