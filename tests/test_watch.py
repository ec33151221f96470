"""`ccspec watch`: the reconciler, as a user runs it, on real processes and files."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from ccspec.reconcile import specs_touched
from tests.test_apply import wait_for


class Watch:
    """`ccspec watch` in the background, its output collected line by line."""

    def __init__(self, repo: Path, *args: str) -> None:
        self.repo = repo
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ccspec", "watch", "specs/", *args],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def saw(self, text: str, count: int = 1) -> bool:
        return sum(text in line for line in self.lines) >= count

    def wait(self, text: str, count: int = 1, timeout: float = 30) -> None:
        try:
            wait_for(lambda: self.saw(text, count), timeout=timeout)
        except AssertionError:
            raise AssertionError(
                f"never saw {text!r} x{count} in:\n" + "\n".join(self.lines)
            ) from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # say what it printed before it got stuck
                self.kill()
                raise AssertionError(
                    "watch did not stop within 30 s of SIGINT; it printed:\n"
                    + "\n".join(self.lines)
                ) from None
        self._close()

    def _close(self) -> None:
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._close()


@pytest.fixture
def specs(repo: Path) -> Path:
    folder = repo / "specs"
    folder.mkdir()
    return folder


def put(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text))


def doc(specs: Path, name: str) -> dict:
    return yaml.safe_load((specs / f"{name}.status.yaml").read_text())


def test_specs_touched_is_what_changed_and_the_specs_above_other_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "sub" / "b.yaml"
    assert specs_touched([a], [a, b]) == {a}
    assert specs_touched([tmp_path / "sub" / "run.py"], [a, b]) == {a, b}  # both folders hold it
    assert specs_touched([tmp_path / "run.py"], [a, b]) == {a}
    assert (
        specs_touched(
            [tmp_path / "a.status.yaml", tmp_path / "a.svg", tmp_path / ".ccspec" / "x"], [a, b]
        )
        == set()
    )


def test_watch_runs_saved_changes_and_ignores_its_own_writes(repo: Path, specs: Path) -> None:
    put(
        specs / "flow.yaml",
        """
        version: 1
        jobs:
          one: {run: "echo one >> ../trace"}
          two: {run: "echo two >> ../trace", needs: [one]}
    """,
    )
    watch = Watch(repo, "--interval", "1h")
    try:
        watch.wait("flow: done")
        time.sleep(1.5)  # its own status and picture writes must not start another pass
        assert sum("flow: done" in line for line in watch.lines) == 1, watch.lines
        text = (specs / "flow.yaml").read_text().replace("echo two", "echo TWO")
        began = time.monotonic()
        (specs / "flow.yaml").write_text(text)
        watch.wait("flow/two succeeded", count=2)
        assert time.monotonic() - began < 10
        # only the changed job ran
        assert (repo / "trace").read_text().split() == [
            "one",
            "two",
            "TWO",
        ]
        # a new spec is picked up, a deleted one leaves its records alone
        put(
            specs / "other.yaml",
            """
            version: 1
            jobs: {x: {run: "echo x >> ../trace"}}
        """,
        )
        watch.wait("other/x succeeded")
        (specs / "other.yaml").unlink()
        watch.wait("other: spec other.yaml deleted")
    finally:
        watch.stop()
    assert watch.proc.returncode == 0
    assert doc(specs, "flow")["jobs"]["two"]["attempt"] == 2


def test_an_invalid_spec_gets_its_errors_and_launches_nothing_while_earlier_jobs_are_followed(
    repo: Path, specs: Path
) -> None:
    put(
        specs / "flow.yaml",
        """
        version: 1
        jobs:
          slow: {run: "sleep 2; echo slow >> ../trace"}
          after: {run: "echo after >> ../trace", needs: [slow]}
    """,
    )
    watch = Watch(repo, "--interval", "1h")
    try:
        watch.wait("flow/slow started")
        (specs / "flow.yaml").write_text("version: 1\njobs:\n  slow: {run: 1, needs: [nope]}\n")
        watch.wait("flow: flow.yaml is invalid")
        wait_for(
            lambda: (
                (specs / "flow.status.yaml").exists() and bool(doc(specs, "flow").get("errors"))
            ),
            timeout=10,
        )
        wait_for(lambda: (repo / "trace").exists(), timeout=15)  # the running job went on...
        # ...and was followed to its end
        wait_for(lambda: _recorded_state(repo, "slow") == "succeeded", timeout=15)
        time.sleep(0.5)
        assert (repo / "trace").read_text().split() == ["slow"]  # nothing new launched
        errors = doc(specs, "flow")["errors"]
        assert any("flow.yaml:3" in e for e in errors), errors
    finally:
        watch.stop()


def test_editing_a_spec_while_it_runs_hands_over_without_launching_twice(
    repo: Path, specs: Path
) -> None:
    put(
        specs / "flow.yaml",
        """
        version: 1
        jobs:
          slow: {run: "echo start >> ../trace; sleep 2; echo end >> ../trace"}
    """,
    )
    watch = Watch(repo, "--interval", "1h")
    try:
        watch.wait("flow/slow started")
        put(
            specs / "flow.yaml",
            """
            version: 1
            jobs:
              slow: {run: "echo start >> ../trace; sleep 2; echo end >> ../trace"}
              quick: {run: "echo quick >> ../trace"}
        """,
        )
        watch.wait("flow/quick succeeded")
        watch.wait("flow/slow succeeded")
        # the handed-over job was the first engine's child: it is reaped, not left a zombie
        wait_for(
            lambda: (
                "Z"
                not in subprocess.run(
                    ["ps", "--ppid", str(watch.proc.pid), "-o", "stat="],
                    capture_output=True,
                    text=True,
                ).stdout
            ),
            timeout=5,
        )
    finally:
        watch.stop()
    # slow ran once
    assert sorted((repo / "trace").read_text().split()) == [
        "end",
        "quick",
        "start",
    ]
    assert watch.saw("flow/slow attached")


def test_a_job_edited_while_it_runs_runs_its_new_definition_once_the_old_one_ends(
    repo: Path, specs: Path
) -> None:
    # each version records itself, then waits for the gate file; with a resync of an hour,
    # only the reconciler's own next pass can start the new version
    job = "echo {v} >> ../trace; while [ ! -e ../gate ]; do sleep 0.05; done"
    flow = "version: 1\njobs:\n  a: {{run: '{run}'}}\n"
    put(specs / "flow.yaml", flow.format(run=job.format(v="v1")))
    watch = Watch(repo, "--interval", "1h")
    try:
        watch.wait("flow/a started")
        put(specs / "flow.yaml", flow.format(run=job.format(v="v2")))
        watch.wait("flow/a attached: definition changed while it was running")
        (repo / "gate").touch()  # v1 ends; never two attempts of a job at once
        wait_for(lambda: (repo / "trace").read_text().split() == ["v1", "v2"], timeout=30)
        watch.wait("flow/a succeeded", count=2)
    finally:
        watch.stop()


def test_a_killed_watch_restarts_and_reattaches(repo: Path, specs: Path) -> None:
    put(
        specs / "flow.yaml",
        """
        version: 1
        jobs:
          slow: {run: "echo start >> ../trace; sleep 2; echo end >> ../trace"}
          after: {run: "echo after >> ../trace", needs: [slow]}
    """,
    )
    first = Watch(repo, "--interval", "1h")
    first.wait("flow/slow started")
    first.kill()
    second = Watch(repo, "--interval", "1h")
    try:
        second.wait("flow/after succeeded")
    finally:
        second.stop()
    assert (repo / "trace").read_text().split() == ["start", "end", "after"]
    assert second.saw("flow/slow attached")


def test_the_resync_catches_changes_no_event_reported(repo: Path, specs: Path) -> None:
    """A script outside the watched folder changes: only the periodic resync sees it."""
    (repo / "tools").mkdir()
    (repo / "tools" / "job.sh").write_text("echo v1 >> trace\n")
    put(
        specs / "flow.yaml",
        """
        version: 1
        jobs:
          job: {script: ../tools/job.sh, workdir: ..}
    """,
    )
    watch = Watch(repo, "--interval", "1s")
    try:
        watch.wait("flow/job succeeded")
        (repo / "tools" / "job.sh").write_text("echo v2 >> trace\n")
        watch.wait("flow/job succeeded", count=2, timeout=15)
    finally:
        watch.stop()
    assert (repo / "trace").read_text().split() == ["v1", "v2"]


def test_prune_cancels_the_jobs_of_a_deleted_spec(repo: Path, specs: Path) -> None:
    put(
        specs / "flow.yaml",
        """
        version: 1
        jobs:
          long: {run: "sleep 60"}
    """,
    )
    watch = Watch(repo, "--interval", "1h", "--prune")
    try:
        watch.wait("flow/long started")
        (specs / "flow.yaml").unlink()
        watch.wait("cancelled 1 running job", timeout=20)
    finally:
        watch.stop()
    assert _recorded_state(repo, "long") == "cancelled"


def _recorded_state(repo: Path, job: str) -> str | None:
    from ccspec.state.store import StateStore

    store = StateStore(repo / ".ccspec")
    try:
        rec = store.recorded_jobs("flow").get(job)
        return rec.state.value if rec else None
    finally:
        store.close()


def test_watch_with_serve_runs_what_the_api_uploads_and_shows_it(repo: Path, specs: Path) -> None:
    """`watch --serve --allow-write`: a workflow uploaded through the API is written into the
    folder, the reconciler runs it, and the API shows the result."""
    import json
    import os
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CCSPEC_TOKEN": "t0ken-for-tests"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ccspec",
            "watch",
            "specs/",
            "--interval",
            "1h",
            "--serve",
            "--port",
            str(port),
            "--allow-write",
        ],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer t0ken-for-tests"}

    def get(path: str) -> dict:
        with urllib.request.urlopen(
            urllib.request.Request(base + path, headers=auth), timeout=5
        ) as response:
            return json.loads(response.read())

    try:
        wait_for(lambda: _answers(base + "/healthz"), timeout=30)
        body = b"version: 1\nname: uploaded\njobs:\n  hello: {run: \"echo '# ccspec output said=hi'\"}\n"
        request = urllib.request.Request(
            base + "/api/workflows",
            data=body,
            method="POST",
            headers={**auth, "Content-Type": "application/yaml"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
        assert (specs / "uploaded.yaml").exists()

        def done() -> bool:
            try:
                jobs = get("/api/workflows/uploaded")["jobs"]
            except OSError:
                return False
            return any(j.get("id") == "hello" and j.get("state") == "succeeded" for j in jobs)

        wait_for(done, timeout=30)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "uploaded/hello succeeded" in out


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_a_pass_that_fails_is_in_the_status_file_retried_with_backoff_and_cleared(
    repo: Path,
    specs: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A folder where the state database belongs: every pass of the workflow fails (SQLite cannot
    open it, whoever runs ccspec, root included) until the folder goes; then it converges."""
    crashes = tmp_path_factory.mktemp("crashes")
    monkeypatch.setenv("CCSPEC_CRASH_DIR", str(crashes))
    put(
        specs / "flow.yaml",
        """
        version: 1
        jobs:
          one: {run: "echo one >> ../trace"}
    """,
    )
    obstacle = repo / ".ccspec" / "state.db"
    obstacle.mkdir(parents=True)
    watch = Watch(repo, "--interval", "1h")  # no resync to bring it back: only the retry can
    try:
        watch.wait("flow: reconcile failed (OperationalError: unable to open database file)")
        wait_for(lambda: (specs / "flow.status.yaml").exists(), timeout=10)
        failing = doc(specs, "flow")
        assert failing["phase"] == "error"
        assert (
            len(failing["errors"]) == 1
            and "OperationalError: unable to open database file" in failing["errors"][0]
        )
        assert not (repo / "trace").exists()
        obstacle.rmdir()
        watch.wait("flow/one succeeded", timeout=15)  # the retry after 1 s, 2 s, 4 s ...
        watch.wait("flow: reconciled again after")
        wait_for(lambda: doc(specs, "flow")["phase"] == "succeeded", timeout=10)
    finally:
        watch.stop()
    assert doc(specs, "flow")["errors"] == []
    assert (repo / "trace").read_text().split() == ["one"]
    assert sum("reconcile failed" in line for line in watch.lines) == 1, watch.lines
    assert not any("Traceback" in line for line in watch.lines), watch.lines
    traces = list(crashes.glob("ccspec-reconcile-flow-*.txt"))
    assert len(traces) == 1 and "Traceback" in traces[0].read_text()
    assert watch.proc.returncode == 0


def test_watch_serve_counts_failed_passes_in_metrics_and_says_them_once(
    repo: Path,
    specs: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An invalid spec whose status file cannot be written (a folder holds its name): each
    pass fails, /metrics counts every one, the output says it once; the folder goes, the
    next retry writes the status file."""
    import socket

    monkeypatch.setenv("CCSPEC_CRASH_DIR", str(tmp_path_factory.mktemp("crashes")))
    put(specs / "flow.yaml", "version: 1\njobs:\n  a: {run: echo, needs: [nope]}\n")
    (specs / "flow.status.yaml").mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    watch = Watch(repo, "--interval", "1h", "--serve", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(base + "/healthz"), timeout=30)
        # the first try and a retry
        wait_for(lambda: _failed_passes(base + "/metrics") >= 2, timeout=20)
        (specs / "flow.status.yaml").rmdir()
        watch.wait("flow: reconciled again after")
        wait_for(lambda: (specs / "flow.status.yaml").is_file(), timeout=10)
        counted = _failed_passes(base + "/metrics")
    finally:
        watch.stop()
    assert counted >= 2
    assert sum("flow: reconcile failed (IsADirectoryError" in line for line in watch.lines) == 1, (
        watch.lines
    )
    recovered = doc(specs, "flow")
    assert recovered["phase"] == "invalid" and any("nope" in e for e in recovered["errors"])
    assert watch.proc.returncode == 0


def _failed_passes(url: str) -> int:
    """`ccspec_reconcile_errors_total` of workflow flow, as /metrics shows it (-1: not there)."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith('ccspec_reconcile_errors_total{workflow="flow"} '):
            return int(line.rsplit(" ", 1)[1])
    return -1


def test_a_pass_failing_with_an_error_ccspec_explains_says_it_without_a_traceback(
    repo: Path,
    specs: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A state database from a newer ccspec: the message says so (no traceback, it is no bug);
    once the file is moved away, the workflow converges."""
    import sqlite3

    crashes = tmp_path_factory.mktemp("crashes")
    monkeypatch.setenv("CCSPEC_CRASH_DIR", str(crashes))
    put(
        specs / "flow.yaml",
        """
        version: 1
        jobs:
          one: {run: "echo one >> ../trace"}
    """,
    )
    (repo / ".ccspec").mkdir()
    db = sqlite3.connect(repo / ".ccspec" / "state.db")
    db.execute("PRAGMA user_version=99")
    db.close()
    watch = Watch(repo, "--interval", "1h")
    try:
        watch.wait("was written by a newer ccspec (schema 99); upgrade ccspec")
        wait_for(
            lambda: (
                (specs / "flow.status.yaml").exists() and doc(specs, "flow")["phase"] == "error"
            ),
            timeout=10,
        )
        (repo / ".ccspec" / "state.db").rename(repo / "newer.db")
        watch.wait("flow/one succeeded", timeout=15)
        wait_for(lambda: doc(specs, "flow")["phase"] == "succeeded", timeout=10)
    finally:
        watch.stop()
    failed = [line for line in watch.lines if "reconcile failed" in line]
    assert len(failed) == 1 and "traceback" not in failed[0] and "CcspecError" not in failed[0], (
        watch.lines
    )
    assert list(crashes.iterdir()) == []


def test_the_status_file_of_an_invalid_spec_under_watch_masks_its_secrets(
    repo: Path, specs: Path
) -> None:
    """Watch writes an invalid spec's errors into its status file: a message quoting a
    secret value (a host named by a secret var) shows it masked."""
    canary = "sk-live-WATCHCANARY-0042"
    put(
        specs / "flow.yaml",
        f"""\
        version: 1
        vars: {{token: {canary}}}
        secrets: [token]
        jobs:
          a: {{run: echo a, host: "{{{{ vars.token }}}}"}}
        """,
    )
    watch = Watch(repo, "--interval", "1h")
    try:
        wait_for(lambda: (specs / "flow.status.yaml").exists())
        text = (specs / "flow.status.yaml").read_text()
    finally:
        watch.stop()
    assert "unknown host '***'" in text
    assert canary not in text and canary not in "\n".join(watch.lines)
