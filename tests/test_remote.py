"""ssh and Slurm hosts, end to end through the CLI, against the real test services
(`.ci/services-up.sh`: sshd on 127.0.0.1:2222 and a single-node Slurm cluster).

Each test uses its own remote workdir, so tests may run side by side.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.services import TestServices, services, ssh
from tests.test_apply import ccspec, kill_runner, start, status, wait_for, write


@pytest.fixture
def svc() -> TestServices:
    return services()


@pytest.fixture
def remote_dir() -> str:
    """A fresh folder under the ccspec user's home for one test."""
    return f"~/t/{uuid.uuid4().hex[:12]}"


def ssh_host(svc: TestServices, workdir: str, **extra: object) -> str:
    fields = {
        "type": "ssh",
        "host": "127.0.0.1",
        "port": svc.ssh_port,
        "user": svc.ssh_user,
        "key": str(svc.ssh_key),
        "workdir": workdir,
        **extra,
    }
    return "{" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"


def slurm_host(svc: TestServices, workdir: Path | str, **extra: object) -> str:
    fields = {"type": "slurm", "partition": svc.slurm_partition, "workdir": str(workdir), **extra}
    return "{" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"


def remote_pid(run_dir: str) -> str:
    """The pid of the job in an ssh host's run folder: in its launch claim (launch.ID.TIME),
    or in the file `pid` when the wrapper wrote one ("" while there is none)."""
    return ssh(
        f"cat {run_dir}/pid 2>/dev/null || cat {run_dir}/launch.* 2>/dev/null"
    ).stdout.strip()


def start_and_wait(repo: Path, remote_dir: str, job: str) -> tuple[subprocess.Popen[str], str]:
    """`ccspec apply` in the background, once `job`'s first attempt has its pid on the host."""
    proc = start(repo, "apply", "flow.yaml")
    run_dir = f"{remote_dir}/.ccspec/runs/flow/{job}.1"
    wait_for(lambda: remote_pid(run_dir) != "")
    return proc, run_dir


def start_remote_job(
    repo: Path, svc: TestServices, remote_dir: str, job: str, run: str
) -> tuple[subprocess.Popen[str], str]:
    """`apply` of one job (`run`, YAML-quoted) on the ssh host, once it runs there; returns
    the runner and the job's run folder on the host."""
    write(
        repo,
        f"""
        version: 1
        hosts: {{box: {ssh_host(svc, remote_dir)}}}
        jobs:
          {job}: {{host: box, run: {run}}}
    """,
    )
    return start_and_wait(repo, remote_dir, job)


def start_long_remote_job(
    repo: Path, svc: TestServices, remote_dir: str
) -> tuple[subprocess.Popen[str], str]:
    """`apply` of one 200 s job on the ssh host, once it runs there; returns the runner and
    the job's pid on the host."""
    proc, run_dir = start_remote_job(repo, svc, remote_dir, "long", '"sleep 200"')
    return proc, remote_pid(run_dir)


def wait_gone(pid: str) -> None:
    """Until the process is gone from the host (a zombie awaiting a late reaper counts as gone)."""
    wait_for(lambda: ssh(f"ps -o stat= -p {pid} | grep -qv Z").returncode != 0, timeout=10)


def remote_text(path: str) -> str:
    result = ssh(f"cat {path}")
    assert result.returncode == 0, result.stderr
    return result.stdout


def sacct_names(job_name: str) -> list[str]:
    """States of the Slurm jobs named `job_name` in the completion log."""
    out = subprocess.run(
        ["sacct", "-c", "-n", "-P", "-o", "JobID,JobName,State"], capture_output=True, text=True
    ).stdout
    return [line.split("|")[2] for line in out.splitlines() if line.split("|")[1:2] == [job_name]]


def test_one_workflow_across_local_ssh_and_slurm(
    repo: Path, svc: TestServices, remote_dir: str
) -> None:
    (repo / "scripts").mkdir()
    (repo / "scripts" / "count.py").write_text(
        "import os, sys\n"
        "print('# ccspec progress=50 message=\"half\"')\n"
        "print('args', sys.argv[1:], 'job', os.environ['CCSPEC_JOB'])\n"
        "print('# ccspec output lines=' + str(len(open('data/in.txt').read().split())))\n"
    )
    (repo / "data").mkdir()
    (repo / "data" / "in.txt").write_text("a\nb\nc\n")
    write(
        repo,
        f"""
        version: 1
        hosts:
          box: {ssh_host(svc, remote_dir)}
          hpc: {slurm_host(svc, repo / "slurm-work")}
        jobs:
          here: {{run: 'echo "# ccspec output word=hello"'}}
          count:
            host: box
            script: scripts/count.py
            args: ["{{{{ jobs.here.outputs.word }}}}"]
            inputs: [data/in.txt]
            needs: [here]
          batch:
            host: hpc
            run: 'echo "slurm job $SLURM_JOB_ID"; echo "# ccspec output total={{{{ jobs.count.outputs.lines * 2 }}}}"'
            resources: {{cpus: 1, mem: 100M, time: 5m}}
            needs: [count]
          back:
            run: echo {{{{ jobs.batch.outputs.total }}}} > back.out
            needs: [batch]
    """,
    )
    result = ccspec(repo, "apply", "flow.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = status(repo)
    assert {k: v["state"] for k, v in doc["jobs"].items()} == dict.fromkeys(
        ("here", "count", "batch", "back"), "succeeded"
    )
    assert doc["jobs"]["count"]["host"] == "box" and doc["jobs"]["count"]["outputs"] == {"lines": 3}
    assert (repo / "back.out").read_text().strip() == "6"
    # logs of remote jobs are mirrored locally, for `ccspec logs` and progress
    logs = ccspec(repo, "logs", "flow", "count")
    assert "args ['hello'] job count" in logs.stdout
    assert re.search(r"slurm job \d+", ccspec(repo, "logs", "flow", "batch").stdout)
    # the sbatch script was rendered with the resources and the job's ccspec key
    sbatch = (
        repo / "slurm-work" / ".ccspec" / "runs" / "flow" / "batch.1" / "job.sbatch"
    ).read_text()
    for line in (
        "--cpus-per-task=1",
        "--mem=100M",
        "--time=0-00:05:00",
        "--partition=debug",
        "--comment=ccspec:flow/batch/1",
        "--job-name=ccspec.flow.batch",
    ):
        assert f"#SBATCH {line}" in sbatch
    # nothing changed: nothing runs
    again = ccspec(repo, "apply", "flow.yaml")
    assert again.returncode == 0 and "started" not in again.stdout and "queued" not in again.stdout


def test_files_are_shipped_once_per_content(repo: Path, svc: TestServices, remote_dir: str) -> None:
    (repo / "job.sh").write_text("echo shipped $1\n")
    write(
        repo,
        f"""
        version: 1
        vars: {{n: 1}}
        hosts: {{box: {ssh_host(svc, remote_dir)}}}
        jobs:
          a: {{host: box, script: job.sh, args: ["{{{{ vars.n }}}}"]}}
    """,
    )
    assert ccspec(repo, "apply", "flow.yaml").returncode == 0
    blobs = f"{remote_dir}/.ccspec/blobs"
    listing = ssh(f"ls -l --time-style=+%s.%N {blobs}").stdout
    assert ccspec(repo, "apply", "flow.yaml", "--var", "n=2").returncode == 0
    assert ssh(f"ls -l --time-style=+%s.%N {blobs}").stdout == listing  # nothing sent again
    assert "shipped 2" in ccspec(repo, "logs", "flow", "a").stdout
    (repo / "job.sh").write_text("echo changed $1\n")
    assert ccspec(repo, "apply", "flow.yaml").returncode == 0
    # the new content only
    assert len(ssh(f"ls {blobs}").stdout.split()) == len(listing.splitlines()[1:]) + 1
    assert "changed 1" in ccspec(repo, "logs", "flow", "a").stdout


def test_remote_failure_timeout_and_lost_process(
    repo: Path, svc: TestServices, remote_dir: str
) -> None:
    # sleeps only this test starts
    slow, lost = (f"{n}.{uuid.uuid4().int % 10**6}" for n in (300, 301))
    write(
        repo,
        f"""
        version: 1
        hosts: {{box: {ssh_host(svc, remote_dir)}}}
        jobs:
          fails: {{host: box, run: "echo about to fail; exit 7"}}
          after: {{host: box, run: "echo never", needs: [fails]}}
          slow: {{host: box, run: "sleep {slow} & sleep {slow}; echo never", timeout: 1s}}
          killed: {{host: box, run: "echo $$ > ../killed.pid; sleep {lost}"}}
    """,
    )
    proc = start(repo, "apply", "flow.yaml")
    pidfile = f"{remote_dir}/flow/../killed.pid"
    wait_for(lambda: ssh(f"test -s {pidfile}").returncode == 0, timeout=30)
    ssh(f"kill -9 $(cat {pidfile})")  # gone without an exit code: lost, not hanging
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    jobs = status(repo)["jobs"]
    assert jobs["fails"]["state"] == "failed" and jobs["fails"]["exit_code"] == 7
    assert jobs["after"]["state"] == "skipped"
    assert jobs["slow"]["state"] == "timed_out"
    assert jobs["killed"]["state"] == "lost" and "left no exit code" in jobs["killed"]["reason"]
    # the timed-out job's whole process group is gone on the host
    assert ssh(f"pgrep -u ccspec -f 'sleep {slow}'").stdout.strip() == ""
    ssh(f"pkill -u ccspec -f 'sleep {lost}'")  # the lost job's orphan


def test_unreachable_host_fails_its_own_jobs_only(
    repo: Path, svc: TestServices, remote_dir: str
) -> None:
    port = _free_port()
    write(
        repo,
        f"""
        version: 1
        hosts:
          down: {{type: ssh, host: 127.0.0.1, port: {port}, user: ccspec, key: {svc.ssh_key}}}
          box: {ssh_host(svc, remote_dir)}
        jobs:
          there: {{host: down, run: "echo never"}}
          elsewhere: {{host: box, run: "echo fine"}}
          here: {{run: "echo fine"}}
    """,
    )
    result = ccspec(repo, "apply", "flow.yaml")
    assert result.returncode == 1
    jobs = status(repo)["jobs"]
    assert jobs["there"]["state"] == "failed"
    assert f"connection refused: 127.0.0.1:{port}" in jobs["there"]["reason"]
    assert jobs["elsewhere"]["state"] == "succeeded" and jobs["here"]["state"] == "succeeded"


def test_ssh_config_alias_and_proxy_jump(repo: Path, svc: TestServices, remote_dir: str) -> None:
    write(
        repo,
        f"""
        version: 1
        hosts:
          alias: {{type: ssh, host: {svc.ssh_host}, workdir: "{remote_dir}/a"}}
          jumped: {ssh_host(svc, remote_dir + "/j", proxy_jump=f"{svc.ssh_user}@127.0.0.1:{svc.ssh_port}")}
        jobs:
          one: {{host: alias, run: 'echo "# ccspec output me=$(whoami)"'}}
          two: {{host: jumped, run: 'echo "# ccspec output me=$(whoami)"'}}
    """,
    )
    env = {**os.environ, "CCSPEC_SSH_CONFIG": str(svc.ssh_config)}
    result = subprocess.run(
        [*_ccspec_argv(), "apply", "flow.yaml"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = status(repo)["jobs"]
    assert jobs["one"]["outputs"] == {"me": "ccspec"} and jobs["two"]["outputs"] == {"me": "ccspec"}


def test_proxy_jump_from_the_ssh_config(repo: Path, svc: TestServices, remote_dir: str) -> None:
    """`ProxyJump` in ~/.ssh/config (here: the file in $CCSPEC_SSH_CONFIG) is honoured: the
    jump host sits behind a forwarder that counts the connections through it."""
    proxy = _Proxy(("127.0.0.1", svc.ssh_port))
    try:
        config = repo / "ssh_config"
        config.write_text(
            textwrap.dedent(f"""
            Host jump
                HostName 127.0.0.1
                Port {proxy.port}
                User {svc.ssh_user}
                IdentityFile {svc.ssh_key}
            Host behind-jump
                HostName 127.0.0.1
                Port {svc.ssh_port}
                User {svc.ssh_user}
                IdentityFile {svc.ssh_key}
                ProxyJump jump
        """)
        )
        write(
            repo,
            f"""
            version: 1
            hosts: {{far: {{type: ssh, host: behind-jump, workdir: "{remote_dir}"}}}}
            jobs:
              one: {{host: far, run: 'echo "# ccspec output me=$(whoami)"'}}
        """,
        )
        env = {**os.environ, "CCSPEC_SSH_CONFIG": str(config)}
        result = subprocess.run(
            [*_ccspec_argv(), "apply", "flow.yaml"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        proxy.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert status(repo)["jobs"]["one"]["outputs"] == {"me": "ccspec"}
    assert proxy.accepted >= 1  # the connection went through the jump host


def test_a_dropped_connection_makes_the_state_unknown_then_reconnects(
    repo: Path, svc: TestServices, remote_dir: str
) -> None:
    proxy = _Proxy(("127.0.0.1", svc.ssh_port))
    try:
        write(
            repo,
            f"""
            version: 1
            hosts:
              box: {{type: ssh, host: 127.0.0.1, port: {proxy.port}, user: ccspec, key: {svc.ssh_key}, workdir: "{remote_dir}"}}
            jobs:
              long: {{host: box, run: "sleep 5; echo done"}}
        """,
        )
        proc = start(repo, "apply", "flow.yaml")
        wait_for(lambda: remote_pid(f"{remote_dir}/.ccspec/runs/flow/long.1") != "")
        proxy.stop()  # every connection through it drops, and new ones are refused
        time.sleep(2.5)
        proxy.start()
        out, err = proc.communicate(timeout=60)
    finally:
        proxy.stop()
    assert proc.returncode == 0, out + err
    assert "state unknown" in out and "connection" in out
    assert status(repo)["jobs"]["long"]["state"] == "succeeded"
    assert "done" in ccspec(repo, "logs", "flow", "long").stdout


def test_killed_runner_reattaches_to_ssh_and_slurm_jobs(
    repo: Path, svc: TestServices, remote_dir: str
) -> None:
    marker = f"m{uuid.uuid4().hex[:8]}"
    write(
        repo,
        f"""
        version: 1
        hosts:
          box: {ssh_host(svc, remote_dir)}
          hpc: {slurm_host(svc, repo / "slurm-work")}
        jobs:
          remote: {{host: box, run: "echo start >> ../trace; sleep 3; echo end >> ../trace; echo '# ccspec output r=1'"}}
          batch: {{host: hpc, run: "echo {marker} >> {repo}/slurm-trace; sleep 3; echo '# ccspec output b=2'"}}
          after: {{run: "echo {{{{ jobs.remote.outputs.r + jobs.batch.outputs.b }}}} > after.out", needs: [remote, batch]}}
    """,
    )
    proc = start(repo, "apply", "flow.yaml")
    wait_for(
        lambda: (
            (repo / "slurm-trace").exists() and ssh(f"test -s {remote_dir}/trace").returncode == 0
        ),
        timeout=60,
    )
    kill_runner(proc)
    # `status` with nobody running collects what finished meanwhile
    time.sleep(0.5)
    result = ccspec(repo, "apply", "flow.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "attached" in result.stdout
    assert (repo / "after.out").read_text().strip() == "3"
    assert remote_text(f"{remote_dir}/trace").split() == ["start", "end"]  # launched once
    assert (repo / "slurm-trace").read_text().split() == [marker]
    assert sacct_names("ccspec.flow.batch").count("COMPLETED") >= 1
    jobs = status(repo)["jobs"]
    assert jobs["remote"]["attempt"] == 1 and jobs["batch"]["attempt"] == 1


def test_status_collects_remote_jobs_after_the_runner_died(
    repo: Path, svc: TestServices, remote_dir: str
) -> None:
    proc, run_dir = start_remote_job(
        repo, svc, remote_dir, "remote", "\"sleep 1; echo '# ccspec output r=5'\""
    )
    kill_runner(proc)
    wait_for(lambda: ssh(f"test -s {run_dir}/exit_code").returncode == 0)
    result = ccspec(repo, "status", "flow.yaml", "--json")
    assert result.returncode == 0, result.stderr
    assert '"succeeded"' in result.stdout and '"r": 5' in result.stdout
    assert "= remote" in ccspec(repo, "plan", "flow.yaml").stdout  # up to date: not run again


def test_slurm_submit_error_and_cancel(repo: Path, svc: TestServices) -> None:
    write(
        repo,
        f"""
        version: 1
        hosts:
          bad: {slurm_host(svc, repo / "w1", partition="no-such-partition")}
          hpc: {slurm_host(svc, repo / "w2")}
        jobs:
          refused: {{host: bad, run: "echo never"}}
          long: {{host: hpc, run: "sleep 120", timeout: 2s}}
    """,
    )
    result = ccspec(repo, "apply", "flow.yaml")
    assert result.returncode == 1
    jobs = status(repo)["jobs"]
    assert (
        jobs["refused"]["state"] == "failed"
        and "invalid partition" in jobs["refused"]["reason"].lower()
    )
    assert jobs["long"]["state"] == "timed_out"
    job_id = (repo / "w2" / ".ccspec" / "runs" / "flow" / "long.1" / "slurm_id").read_text().strip()
    # scancel'ed
    wait_for(
        lambda: (
            subprocess.run(
                ["squeue", "-h", "-j", job_id, "-t", "PD,R,CG"], capture_output=True, text=True
            ).stdout.strip()
            == ""
        ),
        timeout=30,
    )


def test_slurm_pending_reason_is_shown(repo: Path, svc: TestServices) -> None:
    write(
        repo,
        f"""
        version: 1
        hosts: {{hpc: {slurm_host(svc, repo / "w")}}}
        jobs:
          big: {{host: hpc, run: "sleep 2", resources: {{cpus: 4}}}}
          also: {{host: hpc, run: "sleep 1", resources: {{cpus: 4}}}}
    """,
    )
    result = ccspec(repo, "apply", "flow.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"(queued|pending).*(Resources|Priority)", result.stdout), result.stdout


def test_wsl_host_through_a_fake_wsl_exe(repo: Path) -> None:
    """FAKE: there is no Windows here. `fake-wsl.exe` checks the arguments ccspec passes
    (`-d DISTRO -- bash -lc SCRIPT`, or `-ls` with the script on stdin), records them, and
    runs the script with bash."""
    fake = repo / "fake-wsl.exe"
    fake.write_text(
        "#!/bin/bash\n"
        "# FAKE wsl.exe for tests: wsl.exe -d DISTRO [-u USER] -- bash -lc SCRIPT\n"
        f'echo "$1 $2 $3 $4 $5" >> {repo}/wsl-calls\n'
        '[ "$1" = -d ] && [ "$2" = Ubuntu ] && [ "$3" = -- ] && [ "$4" = bash ] || exit 99\n'
        'case "$5" in -lc) exec bash -lc "$6";; -ls) exec bash -ls;; *) exit 99;; esac\n'
    )
    fake.chmod(0o755)
    write(
        repo,
        f"""
        version: 1
        hosts: {{win: {{type: wsl, distro: Ubuntu, wsl_exe: {fake}, workdir: {repo / "wsl-home"}}}}}
        jobs:
          inside: {{host: win, run: 'echo "# ccspec output where=$CCSPEC_JOB"'}}
    """,
    )
    result = ccspec(repo, "apply", "flow.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert status(repo)["jobs"]["inside"]["outputs"] == {"where": "inside"}
    assert "-d Ubuntu -- bash -lc" in (repo / "wsl-calls").read_text()


def test_interrupt_cancels_remote_jobs(repo: Path, svc: TestServices, remote_dir: str) -> None:
    proc, pid = start_long_remote_job(repo, svc, remote_dir)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert status(repo)["jobs"]["long"]["state"] == "cancelled"
    wait_gone(pid)


def test_cancel_command_stops_a_remote_job_nobody_watches(
    repo: Path, svc: TestServices, remote_dir: str
) -> None:
    proc, pid = start_long_remote_job(repo, svc, remote_dir)
    kill_runner(proc)
    result = ccspec(repo, "cancel", "flow", "long")
    assert result.returncode == 0 and "cancelled 1 job" in result.stdout, (
        result.stdout + result.stderr
    )
    wait_gone(pid)
    assert '"cancelled"' in ccspec(repo, "status", "flow.yaml", "--json").stdout


def test_the_hybrid_spec_runs_across_local_ssh_and_slurm(repo: Path, svc: TestServices) -> None:
    """specs/hybrid.yaml as the README runs it against the test services."""
    import shutil

    from tests.conftest import REPO

    specs = repo / "specs"
    specs.mkdir()
    shutil.copy(REPO / "specs" / "hybrid.yaml", specs)
    shutil.copytree(REPO / "specs" / "hybrid", specs / "hybrid")
    text = (
        (specs / "hybrid.yaml")
        .read_text()
        .replace("workdir: ~/ccspec", f"workdir: ~/t/{uuid.uuid4().hex[:12]}")
    )
    (specs / "hybrid.yaml").write_text(text)
    env = {**os.environ, "CCSPEC_SSH_CONFIG": str(svc.ssh_config)}
    result = subprocess.run(
        [*_ccspec_argv(), "apply", "specs/hybrid.yaml", "--var", "remote=true"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    doc = status(repo / "specs", "hybrid")
    hosts = {k: v["host"] for k, v in doc["jobs"].items()}
    assert hosts == {
        "seeds": "local",
        "reference": "box",
        "verdict": "local",
        **{f"chunk-{s}": "hpc" for s in (11, 23, 37, 41)},
    }
    assert doc["jobs"]["reference"]["outputs"]["user"] == "ccspec"  # ran as the ssh user
    assert all(doc["jobs"][f"chunk-{s}"]["outputs"]["where"] == "slurm" for s in (11, 23, 37, 41))
    assert doc["jobs"]["verdict"]["outputs"]["within_3_sigma"] is True


def test_notebook_on_an_ssh_host_with_parameters(
    repo: Path, svc: TestServices, remote_dir: str
) -> None:
    import json

    from tests.services import read_env

    python = read_env(svc.keydir / "env.sh")["CCSPEC_TEST_NOTEBOOK_PYTHON"]
    cells = [
        {
            "cell_type": "code",
            "metadata": {"tags": ["parameters"]},
            "source": "factor = 1\n",
            "outputs": [],
            "execution_count": None,
        },
        {
            "cell_type": "code",
            "metadata": {},
            "source": "print(f'# ccspec output doubled={factor * 2}')\n",
            "outputs": [],
            "execution_count": None,
        },
    ]
    notebook = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (repo / "double.ipynb").write_text(json.dumps(notebook))
    write(
        repo,
        f"""
        version: 1
        hosts: {{box: {ssh_host(svc, remote_dir, python=python)}}}
        jobs:
          nb: {{host: box, notebook: double.ipynb, parameters: {{factor: 21}}}}
    """,
    )
    result = ccspec(repo, "apply", "flow.yaml", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert status(repo)["jobs"]["nb"]["outputs"] == {"doubled": 42}
    executed = json.loads((repo / ".ccspec" / "logs" / "flow" / "nb" / "1.ipynb").read_text())
    # brought back
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])


def test_long_scripts_reach_the_host_whole(svc: TestServices) -> None:
    """A batch of hundreds of launches is longer than one exec argument may be (128 KiB)."""
    from ccspec.targets.shells import LocalShell, SshShell

    script = "\n".join(f"echo {i} > /dev/null" for i in range(30_000)) + "\necho last line\n"
    assert len(script) > 300_000
    shell = SshShell("127.0.0.1", user=svc.ssh_user, port=svc.ssh_port, key=str(svc.ssh_key))
    try:
        assert shell.run(script).text == "last line\n"
        assert shell.run("cat", stdin=b"data").out == b"data"
    finally:
        shell.close()
    assert LocalShell().run(script).text == "last line\n"


# -- helpers -------------------------------------------------------------------------------


def _ccspec_argv() -> list[str]:
    import sys

    return [sys.executable, "-m", "ccspec"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Proxy:
    """A TCP forwarder in front of the test sshd: stopping it drops every connection through
    it and refuses new ones, like a network outage."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = _free_port()
        self._sockets: list[socket.socket] = []
        self._server: socket.socket | None = None
        self.accepted = 0
        self.start()

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._sockets.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            self.accepted += 1
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
