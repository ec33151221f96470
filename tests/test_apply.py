"""`ccspec apply` end to end on real processes: incremental reruns, failures, timeouts,
retries, cancellation, a runner killed mid-run, outputs, fan-out and the lease."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from ccspec.processes import pid_alive


def ccspec(repo: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccspec", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(repo: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ccspec", *args],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def write(repo: Path, text: str, name: str = "flow.yaml") -> Path:
    path = repo / name
    path.write_text(textwrap.dedent(text))
    return path


def status(repo: Path, name: str = "flow") -> dict:
    return yaml.safe_load((repo / f"{name}.status.yaml").read_text())


def plan_json(repo: Path, *args: str) -> dict[str, str]:
    result = ccspec(repo, "plan", "--json", "flow.yaml", *args)
    assert result.returncode == 0, result.stderr
    return {j["id"]: j["action"] for j in json.loads(result.stdout)["workflows"][0]["jobs"]}


def kill_runner(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the runner (no clean-up at all) and reap it; its jobs run on, detached."""
    proc.kill()
    proc.communicate()


def wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


CHAIN = """
    version: 1
    vars: {greeting: hello}
    jobs:
      a: {run: "echo a >> trace; echo {{ vars.greeting | q }} > a.out"}
      b: {run: "echo b >> trace; cat a.out > b.out", needs: [a]}
      c: {run: "echo c >> trace", needs: [b]}
      side: {run: "echo side >> trace"}
"""


def trace(repo: Path) -> list[str]:
    path = repo / "trace"
    return path.read_text().split() if path.exists() else []


def test_incremental_rules(repo: Path) -> None:
    write(repo, CHAIN)
    first = ccspec(repo, "apply", "flow.yaml", "-j", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(trace(repo)) == ["a", "b", "c", "side"]
    assert status(repo)["phase"] == "succeeded" and (repo / "flow.svg").read_bytes().startswith(
        b"<?xml"
    )

    written = {
        p: (p.read_bytes(), p.stat().st_mtime_ns)
        for p in (repo / "flow.status.yaml", repo / "flow.svg")
    }
    again = ccspec(repo, "apply", "flow.yaml")
    assert again.returncode == 0 and sorted(trace(repo)) == ["a", "b", "c", "side"]  # nothing ran
    # unchanged content: not rewritten, git stays quiet
    for path, (
        content,
        mtime,
    ) in written.items():
        assert path.read_bytes() == content and path.stat().st_mtime_ns == mtime, path
    (
        repo / "flow.status.yaml"
    ).unlink()  # a deleted (or edited) file is written again, though nothing runs
    assert ccspec(repo, "apply", "flow.yaml").returncode == 0
    assert (repo / "flow.status.yaml").read_bytes() == written[repo / "flow.status.yaml"][0]
    assert ccspec(repo, "plan", "--detailed-exitcode", "flow.yaml").returncode == 0

    assert plan_json(repo, "--var", "greeting=bye") == {
        "a": "rerun",
        "b": "rerun",
        "c": "rerun",
        "side": "up_to_date",
    }
    assert (
        ccspec(repo, "plan", "--detailed-exitcode", "flow.yaml", "--var", "greeting=bye").returncode
        == 2
    )
    (repo / "trace").unlink()
    assert ccspec(repo, "apply", "flow.yaml", "--var", "greeting=bye").returncode == 0
    assert trace(repo) == ["a", "b", "c"]
    assert (repo / "b.out").read_text() == "bye\n"


def test_failure_skips_descendants_and_a_fix_reruns_them(repo: Path) -> None:
    write(repo, CHAIN.replace('cat a.out > b.out"', 'exit 3"'))
    result = ccspec(repo, "apply", "flow.yaml", "-j", "1")
    assert result.returncode == 1
    doc = status(repo)
    assert doc["phase"] == "failed"
    assert doc["jobs"]["b"]["state"] == "failed" and doc["jobs"]["b"]["exit_code"] == 3
    assert doc["jobs"]["c"]["state"] == "skipped" and doc["jobs"]["side"]["state"] == "succeeded"
    assert "b failed" in result.stdout and "exit code 3" in result.stdout
    write(repo, CHAIN)
    assert plan_json(repo) == {"a": "up_to_date", "b": "rerun", "c": "retry", "side": "up_to_date"}
    (repo / "trace").unlink()
    assert ccspec(repo, "apply", "flow.yaml").returncode == 0
    assert trace(repo) == ["b", "c"]


def test_timeout_kills_the_process_group(repo: Path) -> None:
    write(
        repo,
        """
        version: 1
        jobs:
          slow: {run: "sleep 60 & echo $! > child.pid; wait", timeout: 1s}
    """,
    )
    started = time.monotonic()
    result = ccspec(repo, "apply", "flow.yaml")
    assert result.returncode == 1 and time.monotonic() - started < 20
    assert status(repo)["jobs"]["slow"]["state"] == "timed_out"
    child = int((repo / "child.pid").read_text())
    wait_for(lambda: not pid_alive(child), 10)


def test_retries(repo: Path) -> None:
    write(
        repo,
        """
        version: 1
        jobs:
          flaky: {run: "echo x >> tries; test $(wc -l < tries) -ge 3", retries: 2}
          never: {run: "exit 1", retries: 1}
    """,
    )
    result = ccspec(repo, "apply", "flow.yaml")
    assert result.returncode == 1
    doc = status(repo)
    assert doc["jobs"]["flaky"]["state"] == "succeeded" and doc["jobs"]["flaky"]["attempt"] == 3
    assert doc["jobs"]["never"]["state"] == "failed" and doc["jobs"]["never"]["attempt"] == 2
    assert (repo / "tries").read_text().count("x") == 3


def test_sigint_cancels_running_jobs(repo: Path) -> None:
    write(
        repo,
        """
        version: 1
        jobs:
          long: {run: "echo $$ > long.pid; sleep 60"}
          later: {run: "echo never > later.out", needs: [long]}
    """,
    )
    proc = start(repo, "apply", "flow.yaml")
    wait_for(lambda: (repo / "long.pid").exists() and (repo / "long.pid").read_text().strip() != "")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    doc = status(repo)
    assert (
        doc["jobs"]["long"]["state"] == "cancelled" and doc["jobs"]["later"]["state"] == "cancelled"
    )
    wait_for(lambda: not pid_alive(int((repo / "long.pid").read_text())), 10)
    assert not (repo / "later.out").exists()


def test_runner_killed_mid_run_then_apply_runs_everything_exactly_once(repo: Path) -> None:
    write(
        repo,
        """
        version: 1
        jobs:
          one: {run: "echo one >> trace"}
          two: {run: "echo two-start >> trace; sleep 2; echo two >> trace", needs: [one]}
          three: {run: "echo three >> trace", needs: [two]}
    """,
    )
    proc = start(repo, "apply", "flow.yaml")
    wait_for(lambda: "two-start" in trace(repo))
    kill_runner(proc)
    result = ccspec(repo, "apply", "flow.yaml")  # re-attaches to `two`, then runs `three`
    assert result.returncode == 0, result.stdout + result.stderr
    assert "two attached" in result.stdout
    assert trace(repo) == ["one", "two-start", "two", "three"]
    assert status(repo)["jobs"]["two"]["attempt"] == 1
    assert ccspec(repo, "apply", "flow.yaml").returncode == 0 and trace(repo) == [
        "one",
        "two-start",
        "two",
        "three",
    ]


def test_a_reattached_job_keeps_its_timeout_from_its_start(repo: Path) -> None:
    """The runner is killed while a job with `timeout: 30s` runs; the job's start is then set
    a minute back in the state: the next apply re-attaches to it and times it out at once,
    rather than giving it another 30 s."""
    import sqlite3

    write(
        repo,
        """
        version: 1
        jobs:
          slow: {run: "echo started >> trace; sleep 120", timeout: 30s}
    """,
    )
    proc = start(repo, "apply", "flow.yaml")
    wait_for(lambda: "started" in trace(repo))
    kill_runner(proc)
    with sqlite3.connect(repo / ".ccspec" / "state.db") as db:
        db.execute("UPDATE attempts SET started = started - 60, created = created - 60")
    result = ccspec(repo, "apply", "flow.yaml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "slow attached" in result.stdout
    assert status(repo)["jobs"]["slow"]["state"] == "timed_out"
    assert trace(repo) == ["started"]  # not launched again


def test_a_launch_recorded_but_never_started_is_run_once_by_the_next_apply(repo: Path) -> None:
    """The runner was killed between recording a launch and starting it: the intent is in
    the state, and the attempt's run folder (made right before a launch) is not there."""
    from ccspec.state.store import StateStore

    write(
        repo,
        """
        version: 1
        jobs:
          one: {run: "echo one >> trace"}
          two: {run: "echo two >> trace", needs: [one]}
    """,
    )
    store = StateStore(repo / ".ccspec")
    logs = repo / ".ccspec" / "logs" / "flow" / "one"
    store.begin_attempt(
        "flow",
        "one",
        "one",
        host="local",
        fingerprint="sha256:" + "0" * 64,
        parts={},
        run_dir=logs / "1",
        log_path=logs / "1.log",
    )
    store.close()
    result = ccspec(repo, "apply", "flow.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert trace(repo) == ["one", "two"]
    store = StateStore(repo / ".ccspec")
    try:
        attempts = store.attempts("flow", "one")
    finally:
        store.close()
    assert [(a.number, a.state.value) for a in attempts] == [(1, "lost"), (2, "succeeded")]
    assert attempts[0].reason == "the launch was recorded but the job never started"
    assert status(repo)["jobs"]["one"]["state"] == "succeeded"


def test_lease_contention(repo: Path) -> None:
    write(
        repo,
        """
        version: 1
        jobs:
          hold: {run: "touch started; sleep 3"}
    """,
    )
    proc = start(repo, "apply", "flow.yaml")
    wait_for(lambda: (repo / "started").exists())
    second = ccspec(repo, "apply", "flow.yaml")
    assert second.returncode == 1
    assert f"is being applied by pid {proc.pid}" in second.stderr
    waited = ccspec(repo, "apply", "flow.yaml", "--wait")
    assert waited.returncode == 0
    proc.communicate(timeout=30)


def test_outputs_feed_downstream_and_fan_out_on_the_fly(repo: Path) -> None:
    (repo / "count.py").write_text(
        textwrap.dedent("""
        import sys
        from ccspec import job
        job.output("total", sum(int(a) for a in sys.argv[1:]))
    """)
    )
    write(
        repo,
        """
        version: 1
        jobs:
          split:
            run: |
              echo '# ccspec output parts=[{"part": 1}, {"part": 2}, {"part": 3}]'
              echo '# ccspec progress=100 message="split done"'
          work:
            matrix: "{{ jobs.split.outputs.parts }}"
            run: "echo {{ matrix.part * 10 }} > work-{{ matrix.part }}.out; echo '# ccspec output value={{ matrix.part * 10 }}'"
            needs: [split]
          total:
            script: count.py
            args: ["{{ jobs.work.outputs | map(attribute='value') | list }}"]
            needs: [work]
    """,
    )
    assert plan_json(repo) == {"split": "create", "work": "create", "total": "create"}
    result = ccspec(repo, "apply", "flow.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = status(repo)
    assert [k for k in doc["jobs"] if k.startswith("work-")] == ["work-1", "work-2", "work-3"]
    assert doc["jobs"]["total"]["outputs"] == {"total": 60}
    assert doc["jobs"]["split"]["message"] == "split done"
    # next time the fan-out is known from the recorded outputs: every member is up to date
    assert plan_json(repo) == {
        "split": "up_to_date",
        "work-1": "up_to_date",
        "work-2": "up_to_date",
        "work-3": "up_to_date",
        "total": "up_to_date",
    }


@pytest.mark.parametrize("bad", ["version: 1\njobs: {a: {run: x, needs: [zz]}}\n"])
def test_invalid_spec_launches_nothing_and_records_the_errors(repo: Path, bad: str) -> None:
    (repo / "flow.yaml").write_text(bad)
    planned = ccspec(repo, "plan", "flow.yaml")
    assert planned.returncode == 2 and not (repo / "flow.status.yaml").exists()  # plan only reads
    result = ccspec(repo, "apply", "flow.yaml")
    assert result.returncode == 2 and "unknown job 'zz'" in result.stderr
    assert status(repo)["phase"] == "invalid" and status(repo)["errors"]
    assert not (repo / ".ccspec" / "logs").exists()


def test_status_collects_a_detached_job_that_finished_after_the_runner_died(repo: Path) -> None:
    write(
        repo,
        """
        version: 1
        jobs:
          bg: {run: "touch started; sleep 1; echo '# ccspec output answer=42'"}
    """,
    )
    proc = start(repo, "apply", "flow.yaml")
    wait_for(lambda: (repo / "started").exists())
    kill_runner(proc)
    time.sleep(2)  # the job finishes on its own, with nobody watching
    result = ccspec(repo, "status", "--json", "flow.yaml")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)["workflows"][0]["jobs"]["bg"]
    assert (
        job["state"] == "succeeded" and job["exit_code"] == 0 and job["outputs"] == {"answer": 42}
    )
    assert plan_json(repo) == {"bg": "up_to_date"}


def test_logs_graph_and_cancel_commands(repo: Path) -> None:
    write(
        repo,
        """
        version: 1
        jobs:
          hello: {run: "echo hello from the job"}
          wait: {run: "touch started; sleep 60", needs: [hello]}
    """,
    )
    proc = start(repo, "apply", "flow.yaml")
    wait_for(lambda: (repo / "started").exists())
    logs = ccspec(repo, "logs", "flow", "hello")
    assert logs.returncode == 0 and logs.stdout == "hello from the job\n"
    assert ccspec(repo, "logs", "flow", "nope").returncode == 2
    dot = ccspec(repo, "graph", "flow.yaml")
    assert dot.returncode == 0 and '"hello" -> "wait"' in dot.stdout.replace(
        "hello -> wait", '"hello" -> "wait"'
    )
    assert ccspec(repo, "graph", "flow", "-o", "dag.svg").returncode == 0
    assert (repo / "dag.svg").read_bytes().startswith(b"<?xml")
    cancelled = ccspec(repo, "cancel", "flow")
    assert cancelled.returncode == 0 and f"pid {proc.pid}" in cancelled.stdout
    proc.communicate(timeout=30)
    assert proc.returncode == 130 and status(repo)["jobs"]["wait"]["state"] == "cancelled"


def test_job_environment_and_kinds(repo: Path) -> None:
    (repo / "show.sh").write_text('echo "args=$*"\n')
    (repo / "show.py").write_text(
        "import os, sys\nprint('py', sys.argv[1:], os.environ['CCSPEC_JOB'], os.environ['EXTRA'])\n"
    )
    write(
        repo,
        """
        version: 1
        defaults: {env: {EXTRA: from-defaults}}
        jobs:
          env:
            run: 'echo "$CCSPEC_WORKFLOW $CCSPEC_JOB $CCSPEC_ATTEMPT $EXTRA" > env.out; test -d "$CCSPEC_RUN_DIR"'
            env: {EXTRA: 42}
          sh: {script: show.sh, args: ["a b", "$HOME"]}
          py: {script: show.py, args: ["--x", "{{ 1 + 1 }}"]}
          dash: {run: 'echo "$0" > shell.out', shell: sh}
    """,
    )
    result = ccspec(repo, "apply", "flow.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (repo / "env.out").read_text() == "flow env 1 42\n"
    logs = repo / ".ccspec" / "logs" / "flow"
    assert (
        logs / "sh" / "1.log"
    ).read_text() == "args=a b $HOME\n"  # argv, no shell: nothing expanded
    assert (logs / "py" / "1.log").read_text() == "py ['--x', '2'] py from-defaults\n"
    assert (repo / "shell.out").read_text() == "sh\n"


def test_second_interrupt_kills_at_once(repo: Path) -> None:
    write(
        repo,
        """
        version: 1
        jobs:
          stubborn: {run: "trap '' TERM; touch started; sleep 60"}
    """,
    )
    proc = start(repo, "apply", "flow.yaml")
    wait_for(lambda: (repo / "started").exists())
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.monotonic() - began < 4  # no 5 s grace: killed at once
    assert status(repo)["jobs"]["stubborn"]["state"] == "cancelled"


def test_live_table_on_a_terminal(repo: Path) -> None:
    import pty

    write(
        repo,
        """
        version: 1
        jobs:
          tty: {run: "echo '# ccspec progress=50 message=\\"half way\\"'; sleep 1"}
    """,
    )
    pid, fd = pty.fork()
    if pid == 0:  # the child: ccspec on a pseudo-terminal
        os.chdir(repo)
        os.execv(sys.executable, [sys.executable, "-m", "ccspec", "apply", "flow.yaml"])
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    _, code = os.waitpid(pid, 0)
    os.close(fd)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(code) == 0
    # a drawn table, not event lines
    assert "└" in screen and "succeeded" in screen and "half way" in screen
    assert "tty started" not in screen


def test_logs_follow_streams_until_the_job_ends(repo: Path) -> None:
    write(
        repo,
        """
        version: 1
        jobs:
          talk: {run: "for i in 1 2 3; do echo line $i; sleep 0.4; done"}
    """,
    )
    proc = start(repo, "apply", "flow.yaml")
    wait_for(lambda: (repo / ".ccspec" / "logs" / "flow" / "talk" / "1.log").exists())
    follow = ccspec(repo, "logs", "flow", "talk", "--follow", timeout=30)
    assert follow.returncode == 0 and follow.stdout == "line 1\nline 2\nline 3\n"
    proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_apply_collects_a_job_that_finished_while_no_runner_watched_then_goes_on(
    repo: Path,
) -> None:
    write(
        repo,
        """
        version: 1
        jobs:
          one: {run: "echo one >> trace; sleep 1; echo one-done >> trace"}
          two: {run: "echo two >> trace", needs: [one]}
          other: {run: "echo other >> trace", needs: [one]}
    """,
    )
    proc = start(repo, "apply", "flow.yaml", "-j", "1")
    wait_for(lambda: "one" in trace(repo))
    kill_runner(proc)
    wait_for(lambda: "one-done" in trace(repo))  # `one` ends with nobody watching
    time.sleep(0.2)
    result = ccspec(repo, "apply", "flow.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    # one ran once; the rest ran after it
    assert sorted(trace(repo)) == [
        "one",
        "one-done",
        "other",
        "two",
    ]
    jobs = status(repo)["jobs"]
    assert jobs["one"]["attempt"] == 1 and all(
        jobs[j]["state"] == "succeeded" for j in ("one", "two", "other")
    )


def test_secrets_never_reach_the_status_file(repo: Path) -> None:
    write(
        repo,
        """
        version: 1
        vars: {password: hunter2-very-secret}
        secrets: [password]
        jobs:
          leak:
            run: |
              echo "# ccspec progress=50 message=\\"using {{ vars.password }}\\""
              echo "# ccspec output token=$API_TOKEN"
              echo "# ccspec output pw={{ vars.password }}"
    """,
    )
    env = {**os.environ, "API_TOKEN": "env-secret-0123456789"}
    result = subprocess.run(
        [sys.executable, "-m", "ccspec", "apply", "flow.yaml"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = (repo / "flow.status.yaml").read_text()
    assert "hunter2-very-secret" not in text and "env-secret-0123456789" not in text
    job = status(repo)["jobs"]["leak"]
    assert job["outputs"] == {"token": "***", "pw": "***"} and job["message"] == "using ***"
