"""Jobs that leave the spec while they run, and `ccspec cancel` of jobs that are not running
or do not exist (ccspec.engine, ccspec.planner, ccspec.cli), on real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.test_apply import wait_for


def ccspec(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccspec", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )


def start(repo: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ccspec", *args],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def write(repo: Path, text: str) -> None:
    (repo / "flow.yaml").write_text(textwrap.dedent(text))


def status_jobs(repo: Path) -> dict[str, Any]:
    result = ccspec(repo, "status", "--json", "flow.yaml")
    assert result.returncode == 0, result.stderr
    jobs: dict[str, Any] = json.loads(result.stdout)["workflows"][0]["jobs"]
    return jobs


def status_file(repo: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load((repo / "flow.status.yaml").read_text())
    except OSError:
        return {}
    return doc if isinstance(doc, dict) else {}


REASON = "removed from the spec; still running"


def follow_removed(
    repo: Path,
    spec: str,
    without: str,
    job: str,
    started: Callable[[], bool],
    release: Callable[[], object],
) -> None:
    """Apply `spec` until `job` has started, kill that runner, apply `without` (the spec
    minus `job`), and check, while `job` still runs, that the apply follows it and shows
    it removed; then let `job` end (`release`) and check that the apply ends with it."""
    write(repo, spec)
    first = start(repo, "apply", "flow.yaml")
    second: subprocess.Popen[str] | None = None
    try:
        wait_for(started)
        first.kill()  # the runner dies; the job runs on, detached
        first.communicate()
        write(repo, without)
        plan = json.loads(ccspec(repo, "plan", "--json", "flow.yaml").stdout)["workflows"][0][
            "jobs"
        ]
        assert {j["id"]: (j["action"], j["reason_code"]) for j in plan}[job] == (
            "removed",
            "removed_running",
        )

        second = start(repo, "apply", "flow.yaml")
        wait_for(lambda: status_file(repo).get("jobs", {}).get(job, {}).get("reason") == REASON)
        assert status_file(repo)["jobs"][job]["state"] == "running"
        shown = status_jobs(repo)[job]
        assert shown["state"] == "running" and shown["reason"] == REASON
        assert second.poll() is None  # the apply that noticed follows it
    except BaseException:  # leave no job or runner behind
        release()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()
        raise
    release()
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, out + err
    # ended, then forgotten
    assert job not in status_jobs(repo) and job not in status_file(repo)["jobs"]


def test_a_job_removed_while_it_runs_is_shown_and_followed_until_it_ends(repo: Path) -> None:
    keep = 'keep: {run: "echo keep >> ledger"}'
    long = 'long: {run: "touch started; while [ ! -f release ]; do sleep 0.05; done; echo long >> ledger"}'
    follow_removed(
        repo,
        f"version: 1\njobs:\n  {keep}\n  {long}\n",
        f"version: 1\njobs:\n  {keep}\n",
        "long",
        lambda: (repo / "started").exists(),
        lambda: (repo / "release").touch(),
    )
    assert (repo / "ledger").read_text().split().count(
        "long"
    ) == 1  # ran once, never launched again
    plan = json.loads(ccspec(repo, "plan", "--json", "flow.yaml").stdout)["workflows"][0]["jobs"]
    assert [j["id"] for j in plan] == ["keep"]


def test_a_job_removed_while_it_runs_on_an_ssh_host_is_followed_until_it_ends(repo: Path) -> None:
    from tests.services import services, ssh
    from tests.test_remote import ssh_host

    remote = f"~/t/{uuid.uuid4().hex[:12]}"
    hosts = f"hosts: {{box: {ssh_host(services(), remote)}}}"
    far = f'far: {{host: box, run: "echo start >> {remote}/trace; until [ -f {remote}/go ]; do sleep 0.05; done; echo end >> {remote}/trace"}}'
    follow_removed(
        repo,
        f"version: 1\n{hosts}\njobs:\n  keep: {{run: 'true'}}\n  {far}\n",
        f"version: 1\n{hosts}\njobs:\n  keep: {{run: 'true'}}\n",
        "far",
        lambda: ssh(f"test -s {remote}/trace").returncode == 0,
        lambda: ssh(f"mkdir -p {remote} && touch {remote}/go"),
    )
    # launched once, followed to its end
    assert ssh(f"cat {remote}/trace").stdout.split() == [
        "start",
        "end",
    ]


def test_cancel_names_a_job_that_does_not_exist_and_says_when_one_is_not_running(
    repo: Path,
) -> None:
    write(repo, "version: 1\njobs:\n  quick: {run: 'true'}\n")
    assert ccspec(repo, "apply", "flow.yaml").returncode == 0

    unknown = ccspec(repo, "cancel", "flow", "nosuchjob")
    assert unknown.returncode == 2 and "no job 'nosuchjob' in workflow 'flow'" in unknown.stderr
    typo = ccspec(repo, "cancel", "flow", "quik")
    assert typo.returncode == 2 and "(did you mean 'quick'?)" in typo.stderr
    assert ccspec(repo, "cancel", "nosuchflow").returncode == 2

    idle = ccspec(repo, "cancel", "flow", "quick")
    assert idle.returncode == 0, idle.stderr
    assert "quick of 'flow' is not running (succeeded); nothing to cancel" in idle.stdout
