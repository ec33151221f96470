"""Commands run at the same time on one workflow and one state folder, as real processes:
two `apply --wait` run a changed job once, an apply that loses its lease mid-run stops
(exit 4) without running anything twice, and commands racing on a fresh state folder never
crash."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from ccspec.state.store import StateStore
from tests.test_apply import wait_for


def run(repo: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ccspec", *args],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


def write(repo: Path, text: str, name: str = "w.yaml") -> None:
    (repo / name).write_text(textwrap.dedent(text))


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def attempt_numbers(repo: Path, workflow: str, job: str) -> list[int]:
    store = StateStore(repo / ".ccspec")
    try:
        return [a.number for a in store.attempts(workflow, job)]
    finally:
        store.close()


def test_two_waiting_applies_after_an_edit_run_the_changed_job_once(repo: Path) -> None:
    spec = 'version: 1\njobs:\n  a: {run: "echo %s >> ledger; sleep 1"}\n'
    (repo / "w.yaml").write_text(spec % "v0")
    first = run(repo, "apply", "w.yaml")
    assert finish(first)[0] == 0
    for round_ in range(1, 4):
        (repo / "w.yaml").write_text(spec % f"v{round_}")
        both = [run(repo, "apply", "--wait", "w.yaml") for _ in range(2)]
        results = [finish(p) for p in both]
        assert [code for code, _ in results] == [0, 0], results
        # one new line a round
        assert lines(repo / "ledger") == [f"v{n}" for n in range(round_ + 1)], results
        assert sum(out.count("waiting for workflow 'w'") for _, out in results) <= 1, results
        # planned under the lease
        assert any("0 to run, 1 up to date" in out for _, out in results), results
    assert attempt_numbers(repo, "w", "a") == [1, 2, 3, 4]


def test_an_apply_that_lost_its_lease_launches_nothing_more_and_exits_4(repo: Path) -> None:
    """The first apply stops (SIGSTOP) past its lease's expiry; a second apply takes the
    workflow over, follows the running job and runs the next. The first, resumed, must not
    run that next job again."""
    write(
        repo,
        """
        version: 1
        jobs:
          a: {run: "touch started; sleep 2"}
          b: {run: "echo b >> ledger", needs: [a]}
    """,
    )
    first = run(repo, "apply", "w.yaml")
    wait_for(lambda: (repo / "started").exists())
    os.kill(first.pid, signal.SIGSTOP)
    try:
        db = sqlite3.connect(repo / ".ccspec" / "state.db", timeout=30)
        with db:  # what 15 s without a renewal does: the lease has expired
            db.execute("UPDATE leases SET expires = 0 WHERE workflow = 'w'")
        second = run(repo, "apply", "--wait", "w.yaml")
        wait_for(
            lambda: (
                db.execute("SELECT pid FROM leases WHERE workflow = 'w'").fetchone()
                == (second.pid,)
            )
        )
        db.close()
    finally:
        os.kill(first.pid, signal.SIGCONT)
    code, out = finish(first)
    assert code == 4, out
    assert f"workflow 'w' was taken over by pid {second.pid}" in out
    code, out = finish(second)
    assert code == 0, out
    assert lines(repo / "ledger") == ["b"]
    assert attempt_numbers(repo, "w", "a") == [1] and attempt_numbers(repo, "w", "b") == [1]
    jobs = yaml.safe_load((repo / "w.status.yaml").read_text())["jobs"]
    assert jobs["a"]["state"] == jobs["b"]["state"] == "succeeded"


def test_an_apply_that_finds_its_lease_taken_when_renewing_it_exits_4(repo: Path) -> None:
    """As above, with nothing left to launch: the next renewal (every 5 s) finds the lease
    taken; the job it launched runs on and is followed by the new holder."""
    write(
        repo,
        """
        version: 1
        jobs:
          a: {run: "touch started; while [ ! -e release ]; do sleep 0.05; done; echo a >> ledger"}
    """,
    )
    first = run(repo, "apply", "w.yaml")
    wait_for(lambda: (repo / "started").exists())
    os.kill(first.pid, signal.SIGSTOP)
    try:
        db = sqlite3.connect(repo / ".ccspec" / "state.db", timeout=30)
        with db:
            db.execute("UPDATE leases SET expires = 0 WHERE workflow = 'w'")
        second = run(repo, "apply", "--wait", "w.yaml")
        wait_for(
            lambda: (
                db.execute("SELECT pid FROM leases WHERE workflow = 'w'").fetchone()
                == (second.pid,)
            )
        )
        db.close()
    finally:
        os.kill(first.pid, signal.SIGCONT)
    try:
        code, out = finish(first, timeout=60)
        assert code == 4, out
        assert f"workflow 'w' was taken over by pid {second.pid}" in out
    finally:
        (repo / "release").touch()  # the job ends, whatever happened
        if first.poll() is None:
            first.kill()
            first.communicate()
    code, out = finish(second)
    assert code == 0 and "w/a attached" in out, out
    assert lines(repo / "ledger") == ["a"] and attempt_numbers(repo, "w", "a") == [1]


def test_commands_racing_on_a_fresh_state_folder_never_crash(repo: Path) -> None:
    write(
        repo,
        """
        version: 1
        jobs:
          a: {run: "true"}
    """,
    )
    failures = []
    for _ in range(10):
        state = repo / ".ccspec"
        if state.exists():
            subprocess.run(["rm", "-rf", str(state)], check=True)
        procs = [
            run(repo, *args, "w.yaml")
            for args in (("status",), ("plan",), ("apply",), ("plan", "--json"))
        ]
        for proc in procs:
            code, out = finish(proc)
            if code == 3 or "internal error" in out:
                failures.append(out)
    assert failures == []


def test_a_job_removed_then_added_back_gets_the_next_attempt_number(repo: Path) -> None:
    both = 'version: 1\njobs:\n  a: {run: "echo a >> ledger"}\n  b: {run: "true"}\n'
    (repo / "w.yaml").write_text(both)
    assert finish(run(repo, "apply", "w.yaml"))[0] == 0
    (repo / "w.yaml").write_text('version: 1\njobs:\n  b: {run: "true"}\n')
    assert finish(run(repo, "apply", "w.yaml"))[0] == 0  # forgets `a`; its attempt stays on record
    (repo / "w.yaml").write_text(both)
    code, out = finish(run(repo, "apply", "w.yaml"))
    assert code == 0, out
    assert "w/a started (attempt 2 on local)" in out
    assert attempt_numbers(repo, "w", "a") == [1, 2] and lines(repo / "ledger") == ["a", "a"]
    assert (repo / ".ccspec" / "logs" / "w" / "a" / "2.log").exists()


def test_a_waiting_apply_says_once_whom_it_waits_for(repo: Path, tmp_path: Path) -> None:
    write(
        repo,
        """
        version: 1
        jobs:
          a: {run: "touch started; while [ ! -e release ]; do sleep 0.05; done"}
    """,
    )
    first = run(repo, "apply", "w.yaml")
    wait_for(lambda: (repo / "started").exists())
    err = tmp_path / "second.err"
    with err.open("w") as sink:
        second = subprocess.Popen(
            [sys.executable, "-m", "ccspec", "apply", "--wait", "w.yaml"],
            cwd=repo,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            text=True,
        )
    wait_for(lambda: "waiting for" in err.read_text())
    (repo / "release").touch()
    assert finish(first)[0] == 0 and second.wait(timeout=60) == 0
    said = err.read_text()
    assert said.count("waiting for") == 1, said
    assert said.startswith(f"waiting for workflow 'w': being applied by pid {first.pid} on "), said


API_APPLY = "import sys, ccspec; sys.exit(0 if ccspec.apply(sys.argv[1], wait=True).ok else 1)"


def test_two_waiting_applies_through_the_python_api_run_the_changed_job_once(repo: Path) -> None:
    spec = 'version: 1\njobs:\n  a: {run: "echo %s >> ledger; sleep 1"}\n'
    (repo / "w.yaml").write_text(spec % "v0")
    assert finish(run(repo, "apply", "w.yaml"))[0] == 0
    (repo / "w.yaml").write_text(spec % "v1")
    both = [
        subprocess.Popen(
            [sys.executable, "-c", API_APPLY, "w.yaml"],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [finish(p) for p in both]
    assert [code for code, _ in results] == [0, 0], results
    assert lines(repo / "ledger") == ["v0", "v1"]
    assert attempt_numbers(repo, "w", "a") == [1, 2]
