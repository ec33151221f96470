"""The README's table of exit codes, row by row: every (command, code) it lists has a
scenario here that runs the real command line in a subprocess and gets that code, and
every scenario here is a row of the table.

The internal-error rows inject a bug into the real command (a library function replaced
in the subprocess before `ccspec.cli.run`), as the crash handler cannot be reached
otherwise. `cancel`'s exit 1 needs a host that cannot be reached while a job runs on it:
the job runs on the test sshd, then the spec points the host at a closed port."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.serving import free_port, start_server
from tests.test_apply import kill_runner, start, wait_for

README = Path(__file__).resolve().parents[1] / "README.md"
OK = "version: 1\nname: flow\njobs: {a: {run: 'true'}}\n"
INVALID = "version: 1\nname: flow\njobs: {a: {run: 'true', needs: [zz]}}\n"


def table() -> list[tuple[str, int]]:
    """(command, code) of every row of the README's exit-code table."""
    text = README.read_text()
    section = text[text.index("### Exit codes") :]
    rows = re.findall(r"^\| (`[^|]+`|any command) \| (\d+) \|", section, re.M)
    return [(command.strip("`"), int(code)) for command, code in rows]


def cli(
    repo: Path, *args: str, bug: str = "", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The console script's code path (`ccspec.cli.run`), after `bug` (Python) ran."""
    script = (
        f"{bug}\nimport sys, ccspec.cli\nsys.argv = ['ccspec', *sys.argv[1:]]\nccspec.cli.run()\n"
    )
    env = {**os.environ, "CCSPEC_CRASH_DIR": str(repo)}
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def spec(repo: Path, text: str, name: str = "flow.yaml") -> Path:
    path = repo / name
    path.write_text(textwrap.dedent(text))
    return path


def code_of(repo: Path, *args: str, bug: str = "") -> int:
    return cli(repo, *args, bug=bug).returncode


# -- validate, plan, status, init, schema: one run each ------------------------------------


def validate_0(repo: Path) -> None:
    spec(repo, OK)
    assert code_of(repo, "validate", "flow.yaml") == 0


def validate_1(repo: Path) -> None:
    spec(repo, INVALID)
    assert code_of(repo, "validate", "flow.yaml") == 1


def validate_2(repo: Path) -> None:
    spec(repo, OK)
    assert code_of(repo, "validate", "missing.yaml") == 2
    assert code_of(repo, "validate", "flow.yaml", "--var", "nope=1") == 2
    assert code_of(repo, "validate", "flow.yaml", "--no-such-option") == 2


def plan_0(repo: Path) -> None:
    spec(repo, OK)
    assert code_of(repo, "plan", "flow.yaml") == 0  # something would run: still 0


def plan_2(repo: Path) -> None:
    spec(repo, INVALID)
    assert code_of(repo, "plan", "flow.yaml") == 2
    assert code_of(repo, "plan", "missing.yaml") == 2
    assert code_of(repo, "plan", "flow.yaml", "--no-such-option") == 2


def detailed_0(repo: Path) -> None:
    spec(repo, OK)
    assert code_of(repo, "apply", "flow.yaml") == 0
    assert code_of(repo, "plan", "flow.yaml", "--detailed-exitcode") == 0


def detailed_1(repo: Path) -> None:
    spec(repo, INVALID, "bad.yaml")
    spec(repo, OK)
    assert code_of(repo, "plan", "bad.yaml", "--detailed-exitcode") == 1
    assert code_of(repo, "plan", "missing.yaml", "--detailed-exitcode") == 1
    assert code_of(repo, "plan", "--detailed-exitcode", "flow.yaml", "--var", "nope=1") == 1
    assert code_of(repo, "plan", "flow.yaml", "--detailed-exitcode", "--no-such-option") == 1
    bug = "import ccspec.runner\nccspec.runner.plan_workflow = lambda *a, **k: 1 / 0"
    crashed = cli(repo, "plan", "flow.yaml", "--detailed-exitcode", bug=bug)
    assert crashed.returncode == 1 and "internal error" in crashed.stderr


def detailed_2(repo: Path) -> None:
    spec(repo, OK)
    assert code_of(repo, "plan", "flow.yaml", "--detailed-exitcode") == 2


def status_0(repo: Path) -> None:
    spec(repo, OK)
    assert code_of(repo, "status", "flow.yaml") == 0


def status_2(repo: Path) -> None:
    spec(repo, INVALID)
    assert code_of(repo, "status", "flow.yaml") == 2
    assert code_of(repo, "status", "missing.yaml") == 2


def init_0(repo: Path) -> None:
    assert code_of(repo, "init") == 0 and (repo / "specs" / "hello.yaml").is_file()


def init_2(repo: Path) -> None:
    assert code_of(repo, "init") == 0
    assert code_of(repo, "init") == 2  # specs/hello.yaml exists
    assert code_of(repo, "init", "--name", "no such name") == 2


def schema_0(repo: Path) -> None:
    done = cli(repo, "schema")
    assert done.returncode == 0 and '"$schema"' in done.stdout


# -- apply ----------------------------------------------------------------------------------


def apply_0(repo: Path) -> None:
    spec(repo, OK)
    assert code_of(repo, "apply", "flow.yaml") == 0
    assert code_of(repo, "apply", "flow.yaml") == 0  # up to date


def apply_1(repo: Path) -> None:
    spec(repo, "version: 1\nname: flow\njobs: {a: {run: 'exit 3'}}\n")
    assert code_of(repo, "apply", "flow.yaml") == 1
    spec(repo, "version: 1\nname: held\njobs: {a: {run: 'touch started; sleep 30'}}\n", "held.yaml")
    first = start(repo, "apply", "held.yaml")
    try:
        wait_for(lambda: (repo / "started").exists())
        second = cli(repo, "apply", "held.yaml")
        assert second.returncode == 1 and "is being applied by pid" in second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)


def apply_2(repo: Path) -> None:
    spec(repo, INVALID)
    assert code_of(repo, "apply", "flow.yaml") == 2
    assert code_of(repo, "apply", "missing.yaml") == 2
    assert not (repo / ".ccspec" / "logs").exists()  # nothing launched


def apply_4(repo: Path) -> None:
    """The apply stops (SIGSTOP) past its lease's expiry; a second apply takes the workflow
    over; the first, resumed, finds the lease gone."""
    spec(
        repo,
        """
        version: 1
        name: flow
        jobs:
          a: {run: "touch started; while [ ! -e release ]; do sleep 0.05; done"}
          b: {run: "true", needs: [a]}
        """,
    )
    first = start(repo, "apply", "flow.yaml")
    wait_for(lambda: (repo / "started").exists())
    os.kill(first.pid, signal.SIGSTOP)
    try:
        with sqlite3.connect(repo / ".ccspec" / "state.db", timeout=30) as db:
            db.execute("UPDATE leases SET expires = 0 WHERE workflow = 'flow'")
        second = start(repo, "apply", "--wait", "flow.yaml")
        with sqlite3.connect(repo / ".ccspec" / "state.db", timeout=30) as db:
            held = "SELECT pid FROM leases WHERE workflow = 'flow'"
            wait_for(lambda: db.execute(held).fetchone() == (second.pid,))
    finally:
        os.kill(first.pid, signal.SIGCONT)
    (repo / "release").touch()
    _, err = first.communicate(timeout=60)
    assert first.returncode == 4, err
    second.communicate(timeout=60)
    assert second.returncode == 0


def apply_5(repo: Path) -> None:
    """On a real tmpfs (the tests run as root), remounted read-only after a first apply."""
    disk = repo / "state"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], check=True)
    try:
        spec(repo, OK)
        assert code_of(repo, "apply", "flow.yaml", "--state", str(disk)) == 0
        spec(repo, OK.replace("'true'", "'true '"))
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        done = cli(repo, "apply", "flow.yaml", "--state", str(disk))
        assert done.returncode == 5 and "is read-only" in done.stderr, done.stderr
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def apply_130(repo: Path) -> None:
    spec(repo, "version: 1\nname: flow\njobs: {a: {run: 'touch started; sleep 30'}}\n")
    for sig in (signal.SIGINT, signal.SIGTERM):
        (repo / "started").unlink(missing_ok=True)
        proc = start(repo, "apply", "flow.yaml", "--replace", "a")
        wait_for(lambda: (repo / "started").exists())
        proc.send_signal(sig)
        proc.communicate(timeout=60)
        assert proc.returncode == 130, sig


# -- logs, graph, cancel: on a workflow applied once ----------------------------------------


def logs_0(repo: Path) -> None:
    spec(repo, "version: 1\nname: flow\njobs: {a: {run: 'echo hello'}}\n")
    assert code_of(repo, "apply", "flow.yaml") == 0
    done = cli(repo, "logs", "flow", "a")
    assert done.returncode == 0 and "hello" in done.stdout


def logs_2(repo: Path) -> None:
    spec(repo, OK)
    assert code_of(repo, "logs", "flow", "a") == 2  # never applied
    assert code_of(repo, "apply", "flow.yaml") == 0
    assert code_of(repo, "logs", "flow", "a", "--attempt", "7") == 2


def graph_0(repo: Path) -> None:
    spec(repo, OK)
    assert code_of(repo, "graph", "flow.yaml") == 0
    assert code_of(repo, "apply", "flow.yaml") == 0
    assert code_of(repo, "graph", "flow", "-o", "g.dot") == 0 and (repo / "g.dot").is_file()


def graph_2(repo: Path) -> None:
    assert code_of(repo, "graph", "flow") == 2


def report_0(repo: Path) -> None:
    spec(repo, OK)
    assert code_of(repo, "apply", "flow.yaml") == 0
    assert code_of(repo, "report", "flow.yaml", "-o", "t.html") == 0
    assert "<svg" in (repo / "t.html").read_text()


def report_2(repo: Path) -> None:
    assert code_of(repo, "report", "nothing") == 2
    spec(repo, INVALID)
    assert code_of(repo, "report", "flow.yaml") == 2


def cancel_0(repo: Path) -> None:
    spec(repo, "version: 1\nname: flow\njobs: {a: {run: 'touch started; sleep 30'}}\n")
    runner = start(repo, "apply", "flow.yaml")
    wait_for(lambda: (repo / "started").exists())
    kill_runner(runner)  # the job runs on, detached
    done = cli(repo, "cancel", "flow")
    assert done.returncode == 0 and "cancelled 1 job(s)" in done.stdout, done.stderr
    assert code_of(repo, "cancel", "flow", "a") == 0  # not running: says so


def cancel_1(repo: Path) -> None:
    import uuid

    from tests.services import services
    from tests.test_remote import remote_pid, ssh_host

    svc = services()
    workdir = f"~/t/{uuid.uuid4().hex[:12]}"
    job = (
        "version: 1\nname: flow\nhosts: {{box: {}}}\njobs: {{a: {{host: box, run: 'sleep 60'}}}}\n"
    )
    spec(repo, job.format(ssh_host(svc, workdir)))
    runner = start(repo, "apply", "flow.yaml")
    wait_for(lambda: remote_pid(f"{workdir}/.ccspec/runs/flow/a.1") != "")
    kill_runner(runner)
    spec(
        repo,
        job.format(ssh_host(svc, workdir).replace(f"port: {svc.ssh_port}", f"port: {free_port()}")),
    )
    done = cli(repo, "cancel", "flow")
    assert done.returncode == 1 and "could not cancel a on box" in done.stderr, done.stderr
    spec(repo, job.format(ssh_host(svc, workdir)))
    assert code_of(repo, "cancel", "flow") == 0


def cancel_2(repo: Path) -> None:
    spec(repo, OK)
    assert code_of(repo, "cancel", "flow") == 2
    assert code_of(repo, "apply", "flow.yaml") == 0
    assert code_of(repo, "cancel", "flow", "nosuchjob") == 2


# -- watch, serve: long-running ---------------------------------------------------------


def watch_0(repo: Path) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        # a job that differs each time: watch runs it once it is under way
        spec(repo, f"version: 1\nname: flow\njobs: {{a: {{run: 'touch ran-{sig.name}'}}}}\n")
        proc = start(repo, "watch", "flow.yaml", "--interval", "1h")
        ran = repo / f"ran-{sig.name}"
        wait_for(ran.exists)
        proc.send_signal(sig)
        proc.communicate(timeout=60)
        assert proc.returncode == 0, sig


def watch_2(repo: Path) -> None:
    spec(repo, OK)
    assert code_of(repo, "watch", "missing.yaml") == 2
    assert code_of(repo, "watch", "flow.yaml", "--interval", "soon") == 2


def serve_130(repo: Path) -> None:
    server = start_server(repo)
    server.proc.send_signal(signal.SIGINT)
    server.proc.communicate(timeout=30)
    assert server.proc.returncode == 130


def serve_2(repo: Path) -> None:
    (repo / "one").mkdir()
    (repo / "two").mkdir()
    assert code_of(repo, "serve", "missing") == 2
    assert code_of(repo, "serve", "one", "two") == 2
    assert code_of(repo, "serve", "--max-upload", "lots") == 2


def serve_143(repo: Path) -> None:
    server = start_server(repo)
    server.proc.send_signal(signal.SIGTERM)
    server.proc.communicate(timeout=30)
    assert server.proc.returncode == -signal.SIGTERM  # a shell shows 128 + 15


# -- any command ------------------------------------------------------------------------


def any_3(repo: Path) -> None:
    spec(repo, OK)
    bug = "import ccspec.spec.validate as v\nv.validate_paths = lambda *a, **k: 1 / 0"
    done = cli(repo, "validate", "flow.yaml", bug=bug)
    assert done.returncode == 3 and "this is a bug in ccspec" in done.stderr
    assert "Traceback" not in done.stderr and list(repo.glob("ccspec-crash-*.txt"))


def any_130(repo: Path) -> None:
    """Ctrl-C while a command works (validation made to wait for a file that never comes)."""
    spec(repo, OK)
    wait = (
        "import os, time, ccspec.spec.validate as v\n"
        "def slow(*a, **k):\n"
        "    open('waiting', 'w').close()\n"
        "    while True: time.sleep(0.05)\n"
        "v.validate_paths = slow"
    )
    script = f"{wait}\nimport sys, ccspec.cli\nsys.argv = ['ccspec', 'validate', 'flow.yaml']\nccspec.cli.run()\n"
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=repo, stderr=subprocess.PIPE)
    wait_for(lambda: (repo / "waiting").exists())
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130


def any_5(repo: Path) -> None:
    """A fresh state folder on a read-only tmpfs: every command that opens the state says so."""
    disk = repo / "state"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,ro", "tmpfs", str(disk)], check=True)
    try:
        spec(repo, OK)
        for command in ("plan", "status", "apply"):
            done = cli(repo, command, "flow.yaml", "--state", str(disk))
            assert done.returncode == 5 and "is read-only" in done.stderr, (command, done.stderr)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


SCENARIOS: dict[tuple[str, int], Callable[[Path], None]] = {
    ("validate", 0): validate_0,
    ("validate", 1): validate_1,
    ("validate", 2): validate_2,
    ("plan", 0): plan_0,
    ("plan", 2): plan_2,
    ("plan --detailed-exitcode", 0): detailed_0,
    ("plan --detailed-exitcode", 1): detailed_1,
    ("plan --detailed-exitcode", 2): detailed_2,
    ("apply", 0): apply_0,
    ("apply", 1): apply_1,
    ("apply", 2): apply_2,
    ("apply", 4): apply_4,
    ("apply", 5): apply_5,
    ("apply", 130): apply_130,
    ("status", 0): status_0,
    ("status", 2): status_2,
    ("logs", 0): logs_0,
    ("logs", 2): logs_2,
    ("graph", 0): graph_0,
    ("graph", 2): graph_2,
    ("report", 0): report_0,
    ("report", 2): report_2,
    ("cancel", 0): cancel_0,
    ("cancel", 1): cancel_1,
    ("cancel", 2): cancel_2,
    ("watch", 0): watch_0,
    ("watch", 2): watch_2,
    ("serve", 2): serve_2,
    ("serve", 130): serve_130,
    ("serve", 143): serve_143,
    ("init", 0): init_0,
    ("init", 2): init_2,
    ("schema", 0): schema_0,
    ("any command", 3): any_3,
    ("any command", 5): any_5,
    ("any command", 130): any_130,
}


def test_the_table_and_the_scenarios_are_the_same_rows() -> None:
    rows = table()
    assert len(rows) == len(set(rows)), "a row is listed twice"
    assert set(rows) == set(SCENARIOS)


@pytest.mark.parametrize(("command", "code"), table(), ids=lambda v: str(v).replace(" ", "_"))
def test_each_row_of_the_readme_table(repo: Path, command: str, code: int) -> None:
    SCENARIOS[(command, code)](repo)
