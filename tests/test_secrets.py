"""Secrets stay secret: a canary secret that jobs print in outputs and progress messages is
found in none of what ccspec stores or prints (state.db and its WAL, the status file, the
picture, `status`, `plan`, `apply`'s output), the state folder is private to its user
(folders 0700, files 0600) while jobs keep their own umask, and a secret never becomes part
of a job id. Real processes, a real state store, the real sshd for the remote workdir."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.test_apply import kill_runner, status, wait_for, write

CANARY = "sk-live-CANARY-1234567890"
SHAPES = (CANARY.encode(), CANARY.lower().encode())  # as written, and as a job id would show it

LEAKY = f"""
    version: 1
    vars: {{token: {CANARY}, rows: 3}}
    secrets: [token]
    jobs:
      leak:
        run: |
          echo "# ccspec output key={{{{ vars.token }}}}"
          echo "# ccspec output url=https://user:{{{{ vars.token }}}}@example.org"
          echo "# ccspec progress=50 message=\\"using {{{{ vars.token }}}}\\""
          touch made-by-a-run-job
      tool:
        script: tool.py
        args: ["{{{{ vars.token }}}}"]
      use:
        needs: [leak]
        run: echo "{{{{ jobs.leak.outputs.url }}}}" > used.txt
"""

TOOL = """\
import sys
print("# ccspec output arg=" + sys.argv[1])
print('# ccspec progress=20 message="tool has ' + sys.argv[1] + '"')
open("made-by-a-script-job", "w").close()
"""


def run(repo: Path, *args: str, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    """ccspec under a known umask (the jobs' files must keep it)."""
    return subprocess.run(
        [sys.executable, "-m", "ccspec", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        umask=umask,
    )


def leaks(data: bytes | str) -> bool:
    raw = data.encode() if isinstance(data, str) else data
    return any(shape in raw for shape in SHAPES)


def stored(repo: Path) -> dict[str, bytes]:
    """The bytes of the state database (and its WAL, when there is one) and the files
    written beside the spec."""
    names = [".ccspec/state.db", ".ccspec/state.db-wal", "flow.status.yaml", "flow.svg"]
    return {name: (repo / name).read_bytes() for name in names if (repo / name).exists()}


def modes(folder: Path) -> dict[str, int]:
    """Permission bits of the folder and of everything under it."""
    found = {".": stat.S_IMODE(os.stat(folder).st_mode)}
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            path = Path(root, name)
            found[str(path.relative_to(folder))] = stat.S_IMODE(os.lstat(path).st_mode)
    return found


def test_a_canary_secret_is_found_in_nothing_ccspec_stores_or_prints(repo: Path) -> None:
    (repo / "tool.py").write_text(TOOL)
    write(repo, LEAKY)
    applied = run(repo, "apply", "flow.yaml")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    # during the run a job that needs an output gets its real value
    assert (repo / "used.txt").read_text().strip() == f"https://user:{CANARY}@example.org"
    files = stored(repo)
    assert {".ccspec/state.db", "flow.status.yaml", "flow.svg"} <= set(files)
    assert [name for name, data in files.items() if leaks(data)] == []
    printed = {
        args: run(repo, *args.split())
        for args in (
            "status flow.yaml",
            "status --json flow.yaml",
            "plan flow.yaml",
            "plan --json flow.yaml",
        )
    }
    assert all(r.returncode == 0 for r in printed.values()), {
        a: r.stderr for a, r in printed.items()
    }
    assert [args for args, r in printed.items() if leaks(r.stdout + r.stderr)] == []
    assert not leaks(applied.stdout + applied.stderr)
    # masked, not dropped: what was recorded is there with *** in place of the secret
    jobs = {
        j: doc
        for wf in json.loads(printed["status --json flow.yaml"].stdout)["workflows"]
        for j, doc in wf["jobs"].items()
    }
    assert jobs["leak"]["outputs"] == {"key": "***", "url": "https://user:***@example.org"}
    assert jobs["leak"]["message"] == "using ***" and jobs["tool"]["outputs"] == {"arg": "***"}
    with sqlite3.connect(repo / ".ccspec" / "state.db") as db:
        messages = {
            job: message for job, message in db.execute("SELECT job, message FROM attempts")
        }
    assert messages["leak"] == "using ***" and messages["tool"] == "tool has ***"
    assert status(repo)["jobs"]["leak"]["outputs"]["url"] == "https://user:***@example.org"
    # A later run reads the recorded outputs, masked: a job that needs the secret itself
    # must take it from vars (README: secrets).
    again = run(repo, "apply", "flow.yaml", "--replace", "use")
    assert again.returncode == 0, again.stdout + again.stderr
    assert (repo / "used.txt").read_text().strip() == "https://user:***@example.org"


def test_the_state_folder_is_private_and_jobs_keep_their_umask(repo: Path) -> None:
    (repo / "tool.py").write_text(TOOL)
    write(repo, LEAKY)
    applied = run(repo, "apply", "flow.yaml", umask=0o022)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    found = modes(repo / ".ccspec")
    assert {
        "state.db",
        "logs/flow/leak/1.log",
        "logs/flow/leak/1/pid",
        "logs/flow/leak/1/exit_code",
        "logs/flow/tool/1.log",
        "logs/flow/tool/1/exit_code",
    } <= set(found)
    loose = {
        path: oct(mode)
        for path, mode in found.items()
        if mode != (0o700 if (repo / ".ccspec" / path).is_dir() else 0o600)
    }
    assert loose == {}
    # the jobs' own files keep the umask ccspec was started with
    for made in ("made-by-a-run-job", "made-by-a-script-job"):
        assert stat.S_IMODE(os.stat(repo / made).st_mode) == 0o644, made


def test_a_readable_state_folder_is_tightened_when_opened(repo: Path) -> None:
    """A state folder an older ccspec left world-readable (0755, files 0644)."""
    write(repo, "version: 1\njobs:\n  a: {run: echo a}\n")
    folder = repo / ".ccspec"
    (folder / "logs" / "flow" / "a" / "1").mkdir(parents=True)
    sqlite3.connect(folder / "state.db").close()
    (folder / "logs" / "flow" / "a" / "1.log").write_text(f"printed {CANARY}\n")
    (folder / "logs" / "flow" / "a" / "1" / "exit_code").write_text("0\n")
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    result = run(repo, "status", "flow.yaml")
    assert result.returncode == 0, result.stderr
    found = modes(folder)
    assert {"logs/flow/a/1.log", "logs/flow/a/1/exit_code", "state.db", "state.db-wal"} <= set(
        found
    )
    assert {
        path: oct(mode)
        for path, mode in found.items()
        if mode != (0o700 if (folder / path).is_dir() else 0o600)
    } == {}


def test_results_settled_by_status_are_masked(repo: Path) -> None:
    """The runner is killed; the job ends with nobody watching; `ccspec status` collects
    its outputs and message from the log and records them masked."""
    write(
        repo,
        f"""
        version: 1
        vars: {{token: {CANARY}}}
        secrets: [token]
        jobs:
          slow:
            run: |
              while [ ! -f gate ]; do sleep 0.05; done
              echo "# ccspec output key={{{{ vars.token }}}}"
              echo "# ccspec progress=80 message=\\"done with {{{{ vars.token }}}}\\""
    """,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccspec", "apply", "flow.yaml"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run_dir = repo / ".ccspec" / "logs" / "flow" / "slow" / "1"
    wait_for(lambda: (run_dir / "pid").exists())
    kill_runner(proc)
    (repo / "gate").touch()
    wait_for(lambda: (run_dir / "exit_code").exists())
    shown = run(repo, "status", "--json", "flow.yaml")
    assert shown.returncode == 0, shown.stderr
    job = json.loads(shown.stdout)["workflows"][0]["jobs"]["slow"]
    assert (
        job["state"] == "succeeded"
        and job["outputs"] == {"key": "***"}
        and job["message"] == "done with ***"
    )
    assert not leaks(shown.stdout)
    assert [name for name, data in stored(repo).items() if leaks(data)] == []


def test_a_fanout_over_a_secret_output_fails_at_launch(repo: Path) -> None:
    """Validate refuses a matrix over a secret var (the corpus case); a matrix taken from an
    upstream output that holds the secret is refused at launch, with the same reason."""
    write(
        repo,
        f"""
        version: 1
        vars: {{token: {CANARY}}}
        secrets: [token]
        jobs:
          up:
            run: echo '# ccspec output names=["{{{{ vars.token }}}}", "plain"]'
          fan:
            needs: [up]
            matrix: {{key: "{{{{ jobs.up.outputs.names }}}}"}}
            run: echo {{{{ matrix.key | q }}}}
    """,
    )
    applied = run(repo, "apply", "flow.yaml")
    assert applied.returncode == 1, applied.stdout + applied.stderr
    jobs = status(repo)["jobs"]
    assert set(jobs) == {"up", "fan"} and jobs["fan"]["state"] == "failed"
    assert "takes the value of secret var 'token'" in jobs["fan"]["reason"]
    assert [name for name, data in stored(repo).items() if leaks(data)] == []
    assert not leaks(applied.stdout + applied.stderr)


def test_validate_refuses_a_secret_in_job_ids(repo: Path) -> None:
    write(
        repo,
        f"""
        version: 1
        vars: {{token: {CANARY}, other: [a, b]}}
        secrets: [token]
        jobs:
          fan:
            matrix:
              key: "{{{{ [vars.token] }}}}"
              n: "{{{{ vars.other }}}}"
            run: echo {{{{ matrix.n }}}}
          fine:
            matrix: {{n: "{{{{ vars.other }}}}"}}
            run: echo {{{{ matrix.n }}}}
    """,
    )
    result = run(repo, "validate", "flow.yaml")
    assert result.returncode == 1
    assert "flow.yaml:8:" in result.stdout and "[secret-in-job-id]" in result.stdout
    assert result.stdout.count("secret-in-job-id") == 1 and not leaks(result.stdout + result.stderr)


def test_remote_workdirs_keep_their_state_private(repo: Path) -> None:
    """ssh (a run: job and a script under the job wrapper) and Slurm: the workdir's .ccspec is
    0700, the logs, pids and exit codes 0600; the jobs' own files keep the host's umask."""
    from tests.services import services, ssh
    from tests.test_remote import slurm_host, ssh_host

    svc = services()
    workdir = f"~/t/{uuid.uuid4().hex[:12]}"
    (repo / "far.sh").write_text("echo script ran; touch far-script-file\n")
    write(
        repo,
        f"""
        version: 1
        vars: {{token: {CANARY}}}
        secrets: [token]
        hosts: {{box: {ssh_host(svc, workdir)}, hpc: {slurm_host(svc, repo / "slurm-work")}}}
        jobs:
          far: {{host: box, run: 'echo "# ccspec output key={{{{ vars.token }}}}"; touch far-file'}}
          script: {{host: box, script: far.sh}}
          batch: {{host: hpc, run: 'echo "# ccspec output key={{{{ vars.token }}}}"'}}
    """,
    )
    applied = run(repo, "apply", "flow.yaml")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    runs = ".ccspec/runs/flow"
    names = [
        ".ccspec",
        *(f"{runs}/{job}.1/{f}" for job in ("far", "script") for f in ("log", "exit_code")),
    ]
    remote = ssh(
        f"cd {workdir} && stat -c '%a %n' {' '.join(names)} flow/far-file flow/far-script-file"
    )
    assert remote.returncode == 0, remote.stderr
    shown = dict(reversed(line.split(" ", 1)) for line in remote.stdout.splitlines())
    assert {name: shown[name] for name in names} == {
        name: "700" if name == ".ccspec" else "600" for name in names
    }
    assert shown["flow/far-file"] == shown["flow/far-script-file"] != "600"  # the host's umask
    slurm = repo / "slurm-work"
    found = {
        p: stat.S_IMODE(os.stat(slurm / p).st_mode) for p in (".ccspec", f"{runs}/batch.1/log")
    }
    assert found == {".ccspec": 0o700, f"{runs}/batch.1/log": 0o600}
    for job in ("far", "script", "batch"):
        assert (
            stat.S_IMODE(os.stat(repo / ".ccspec" / "logs" / "flow" / job / "1.log").st_mode)
            == 0o600
        )
    assert [name for name, data in stored(repo).items() if leaks(data)] == []
    outputs = yaml.safe_load((repo / "flow.status.yaml").read_text())["jobs"]
    assert outputs["far"]["outputs"] == outputs["batch"]["outputs"] == {"key": "***"}


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_the_run_wrapper_gives_a_job_its_umask(repo: Path, umask: int) -> None:
    write(repo, "version: 1\njobs:\n  a: {run: umask > seen}\n  b: {script: s.sh}\n")
    (repo / "s.sh").write_text("umask > seen-by-script\n")
    applied = run(repo, "apply", "flow.yaml", umask=umask)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert int((repo / "seen").read_text(), 8) == umask
    assert int((repo / "seen-by-script").read_text(), 8) == umask


def test_messages_about_an_invalid_spec_mask_its_secrets(repo: Path) -> None:
    """A message may quote a value (here a host named by a secret var): validate's output in
    every format, apply's error and the status file written for the invalid spec mask it,
    a value given with --var too."""
    write(
        repo,
        f"""
        version: 1
        vars: {{token: {CANARY}}}
        secrets: [token]
        jobs:
          a: {{run: echo a, host: "{{{{ vars.token }}}}"}}
    """,
    )
    shown = [
        run(repo, "validate", "--format", fmt, "flow.yaml") for fmt in ("text", "json", "github")
    ]
    assert [r.returncode for r in shown] == [1, 1, 1]
    assert all("unknown host '***'" in r.stdout for r in shown) and not any(
        leaks(r.stdout + r.stderr) for r in shown
    )
    applied = run(repo, "apply", "flow.yaml")
    assert applied.returncode == 2 and "unknown host '***'" in applied.stderr
    assert not leaks(applied.stdout + applied.stderr)
    assert status(repo)["errors"] == [
        "flow.yaml:6:26: unknown host '***'; define it under `hosts:` (local always exists)"
    ]
    other = run(repo, "validate", "flow.yaml", "--var", "token=given-on-the-command-line")
    assert "unknown host '***'" in other.stdout and "given-on-the-command-line" not in other.stdout


def test_the_status_api_and_dashboard_show_no_canary(tmp_path: Path) -> None:
    """Over the state a real apply wrote: every read endpoint, the event backlog and the
    pages (the server masks as it reads; this guards the whole path end to end)."""
    from tests.serving import make_repo, start_server

    repo = make_repo(tmp_path, flow=LEAKY)
    (repo / "specs" / "tool.py").write_text(TOOL)
    applied = run(repo, "apply", "specs/flow.yaml")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    server = start_server(repo)
    try:
        with server.client() as client:
            paths = [
                "/api/workflows",
                "/api/workflows/flow",
                "/api/workflows/flow/jobs/leak",
                "/api/workflows/flow/jobs/tool",
                "/api/workflows/flow/spec",
                "/api/workflows/flow/graph.svg",
                "/api/workflows/flow/jobs/leak/log",
                "/api/events?follow=false",
                "/",
                "/workflows/flow",
                "/workflows/flow/jobs/leak",
            ]
            answers = {path: client.get(path) for path in paths}
    finally:
        server.stop()
    assert {p: a.status_code for p, a in answers.items() if a.status_code != 200} == {}
    assert [p for p, a in answers.items() if leaks(a.content)] == []
    assert b"using ***" in answers["/api/workflows/flow/jobs/leak"].content
