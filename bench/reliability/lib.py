"""Shared parts of the reliability trials: a scratch workspace, running `ccspec` as a real
subprocess (reaped with its peak RSS), a ledger of side effects, a sampler that parses the
status YAML while it is being rewritten, the SQLite integrity check, and the result record.

Used by crash.py, concurrency.py, faults.py and hostile.py; run.py and
tests/test_reliability.py only see `TrialResult`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # tests.services, when run as a script
    sys.path.insert(0, str(REPO_ROOT))

from tests.services import TestServices, services, ssh  # noqa: E402

__all__ = [
    "REPO_ROOT",
    "SLURM_RESOURCES",
    "Finished",
    "Ledger",
    "Measured",
    "Running",
    "StatusSampler",
    "TestServices",
    "TrialResult",
    "Workspace",
    "ccspec_argv",
    "check_settled",
    "child_env",
    "converge",
    "count_outcome",
    "finish",
    "integrity",
    "internal_error",
    "job_states",
    "note_failures",
    "run",
    "run_measured",
    "sampling",
    "services",
    "slurm_host",
    "ssh",
    "ssh_host",
    "start",
]

Fact = str | int | float | bool


@dataclass
class TrialResult:
    """What one trial did and what it found; one row of docs/RELIABILITY.md."""

    name: str
    kind: str  # crash | concurrency | fault | hostile
    runs: int = 0  # ccspec commands started
    faults: int = 0  # kills, outages, full disks injected
    inputs: int = 0  # jobs (or commands, or test cases) tried
    lost: int = 0  # jobs whose side effect never happened, or not succeeded at the end
    duplicated: int = 0  # side effects beyond the first
    exit_codes: dict[str, int] = field(default_factory=dict)  # "code" -> how many times
    errors: list[str] = field(default_factory=list)  # internal errors, corruption, missed targets
    facts: dict[str, Fact] = field(default_factory=dict)  # integrity, samples, RSS, ...
    notes: list[str] = field(default_factory=list)  # observations that are not failures
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """The issue's targets: nothing lost, nothing twice, no error seen."""
        return self.lost == 0 and self.duplicated == 0 and not self.errors

    def count_exit(self, code: int) -> None:
        self.exit_codes[str(code)] = self.exit_codes.get(str(code), 0) + 1

    def error(self, text: str) -> None:
        """Record an error (the same message from many rounds is kept once)."""
        text = " ".join(text.split())[:300]
        if text not in self.errors:
            self.errors.append(text)

    def note(self, text: str) -> None:
        """Record an observation that does not fail the trial (the first few are kept)."""
        text = " ".join(text.split())[:300]
        if text not in self.notes and len(self.notes) < 8:
            self.notes.append(text)

    def summary(self) -> str:
        """One paragraph for an assertion message: the counts, the exit codes, what went wrong."""
        seen = "; ".join(self.errors) or "no errors"
        return (
            f"{self.name}: lost {self.lost}, duplicated {self.duplicated}, exit codes {self.exit_codes}, "
            f"facts {self.facts}: {seen}"
        )

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


def ccspec_argv() -> list[str]:
    """ccspec of this interpreter (the worktree's venv), as the tests start it."""
    return [sys.executable, "-m", "ccspec"]


def child_env() -> dict[str, str]:
    """The caller's environment without PYTHONDONTWRITEBYTECODE (users do not set it)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


@dataclass
class Finished:
    """A reaped ccspec command."""

    argv: list[str]
    code: int  # exit code, or -SIGNAL
    out: str
    err: str
    max_rss_mb: float
    seconds: float
    timed_out: bool = False  # killed by `finish` for taking too long

    @property
    def text(self) -> str:
        return self.out + self.err


class Workspace:
    """A scratch repository with a `specs/` folder, a world-writable ledger (the ssh test user
    is a different user on this same machine, so jobs on every host append to one file), and
    a fresh remote workdir name on the ssh host."""

    def __init__(self, label: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"ccspec-rel-{label}-"))
        self.root.chmod(0o755)
        (self.root / ".git").mkdir()  # marks the repository root for ccspec's path rules
        self.specs = self.root / "specs"
        self.specs.mkdir()
        self.out = self.root / "out"
        self.out.mkdir()
        shared = self.root / "shared"
        shared.mkdir()
        shared.chmod(0o777)
        self.ledger = Ledger(shared / "ledger")
        self.remote_workdir = f"~/rel/{label}-{uuid.uuid4().hex[:10]}"
        self._started = 0

    @property
    def state(self) -> Path:
        return self.root / ".ccspec"

    def spec_path(self, name: str) -> Path:
        return self.specs / f"{name}.yaml"

    def status_path(self, name: str) -> Path:
        return self.specs / f"{name}.status.yaml"

    def write_spec(self, name: str, doc: Mapping[str, object]) -> Path:
        """Write a spec atomically (a temporary file, then a rename), as an editor that saves
        safely does: a watcher never reads half a file."""
        path = self.spec_path(name)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(yaml.safe_dump(dict(doc), sort_keys=False, width=1000))
        tmp.replace(path)
        return path

    def output_files(self) -> tuple[Path, Path]:
        self._started += 1
        return self.out / f"{self._started}.out", self.out / f"{self._started}.err"

    def close(self) -> None:
        """Remove the local folder and the remote workdir (best effort); kept when
        $CCSPEC_RELIABILITY_KEEP is set, to look into a failed trial."""
        if os.environ.get("CCSPEC_RELIABILITY_KEEP"):
            print(f"kept {self.root} and {self.remote_workdir} on the ssh host", file=sys.stderr)
            return
        shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(Exception):
            ssh(f"rm -rf {self.remote_workdir}", timeout=30)


@dataclass
class Running:
    """A ccspec command started by `start`, not reaped yet."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    started_at: float

    @property
    def pid(self) -> int:
        return self.proc.pid


def start(ws: Workspace, *args: str, discard: bool = False) -> Running:
    """Start `ccspec ARGS` in the workspace; its output goes to files (never a full pipe),
    its standard output to /dev/null when `discard`."""
    out, err = ws.output_files()
    with out.open("wb") as fout, err.open("wb") as ferr:
        proc = subprocess.Popen(
            [*ccspec_argv(), *args],
            cwd=ws.root,
            stdout=subprocess.DEVNULL if discard else fout,
            stderr=ferr,
            stdin=subprocess.DEVNULL,
            env=child_env(),
        )
    return Running(proc, out, err, time.monotonic())


def finish(running: Running, timeout: float = 300.0) -> Finished:
    """Reap the command with os.wait4; SIGKILL it after `timeout` seconds. Its max_rss_mb
    counts this process's size too (see _MEASURE): measure memory with `run_measured`."""
    deadline = time.monotonic() + timeout
    timed_out = False
    while True:
        pid, status, usage = os.wait4(running.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline and not timed_out:
            running.proc.send_signal(signal.SIGKILL)
            timed_out = True
        time.sleep(0.02)
    code = os.waitstatus_to_exitcode(status)
    running.proc.returncode = code  # reaped here, not by Popen
    return Finished(
        argv=[str(a) for a in running.proc.args] if isinstance(running.proc.args, list) else [],
        code=code,
        out=running.out.read_text(errors="replace"),
        err=running.err.read_text(errors="replace"),
        max_rss_mb=usage.ru_maxrss / 1024,
        seconds=time.monotonic() - running.started_at,
        timed_out=timed_out,
    )


def run(ws: Workspace, *args: str, timeout: float = 300.0) -> Finished:
    """`ccspec ARGS` to the end."""
    return finish(start(ws, *args), timeout)


def internal_error(done: Finished) -> str | None:
    """The first line that shows ccspec crashed (exit 3, "this is a bug", a traceback), or
    that it hung (killed by `finish` after its timeout)."""
    if done.timed_out:
        return f"did not finish within {done.seconds:.0f} s (hung? killed)"
    for line in done.text.splitlines():
        if "this is a bug" in line or "Traceback (most recent call last)" in line:
            return line.strip()
    if done.code == 3:
        return f"exit 3: {done.err.strip()[-200:]}"
    return None


class Ledger:
    """A file every job appends one unique line to (`echo KEY >> LEDGER`): the count of a
    key is how many times that side effect happened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()
        path.chmod(0o666)

    def append_command(self, key: str) -> str:
        return f"echo {key} >> {self.path}"

    def counts(self) -> Counter[str]:
        return Counter(self.path.read_text().split())

    def lost_and_duplicated(self, keys: Iterable[str]) -> tuple[list[str], dict[str, int]]:
        """Which of `keys` were never written, and which more than once (with their counts)."""
        counts = self.counts()
        lost = [k for k in keys if counts[k] == 0]
        duplicated = {k: counts[k] for k in keys if counts[k] > 1}
        return lost, duplicated


class StatusSampler(threading.Thread):
    """Reads a status YAML every few milliseconds while ccspec rewrites it and parses each
    read: a reader must never see half a file. A missing file is counted apart (before the
    first write, it is expected)."""

    def __init__(self, path: Path, every: float = 0.005) -> None:
        super().__init__(name=f"sampler:{path.name}", daemon=True)
        self.path = path
        self.every = every
        self.samples = 0
        self.absent = 0
        self.vanished = 0  # absent after it had been there: not replaced atomically
        self.bad: list[str] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        while not self._stop_event.is_set():
            try:
                text = self.path.read_text()
            except FileNotFoundError:
                self.absent += 1
                if self.samples:
                    self.vanished += 1
            else:
                self.samples += 1
                try:
                    doc = yaml.load(text, Loader=loader)
                    if not isinstance(doc, dict) or "jobs" not in doc:
                        raise ValueError(f"not a status document: {text[:80]!r}")
                except (yaml.YAMLError, ValueError) as exc:
                    self.bad.append(f"{type(exc).__name__}: {str(exc)[:120]}")
            self._stop_event.wait(self.every)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


@contextlib.contextmanager
def sampling(path: Path) -> Iterator[StatusSampler]:
    """A running StatusSampler of `path` for the `with` block."""
    sampler = StatusSampler(path)
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop()


def integrity(state: Path) -> str:
    """`PRAGMA integrity_check` of the state database ("ok" when sound)."""
    db = state / "state.db"
    if not db.exists():
        return "ok"  # nothing written yet is not corruption
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.Error as exc:
        return f"{type(exc).__name__}: {exc}"
    return "; ".join(str(r[0]) for r in rows)


def job_states(status_file: Path) -> dict[str, str]:
    """Job id -> state in a status YAML ({} when it is absent or unreadable)."""
    try:
        doc = yaml.safe_load(status_file.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    jobs = doc.get("jobs") if isinstance(doc, dict) else None
    return {str(k): str(v.get("state")) for k, v in (jobs or {}).items() if isinstance(v, dict)}


# Runs a command from a fresh, small Python process, guards it and reports its peak RSS. A
# child's ru_maxrss also counts the memory of the process that forked it (up to its exec): a
# command started by the harness (or by a pytest worker of a few hundred MB) would report the
# starter's size, so the starter here is this small process. It polls the command's resident
# set every 20 ms and SIGKILLs it past the guard (a leak must not take the shared machine
# down), then prints {"code", "peak_mb", "guarded"} as JSON on its own stdout.
_MEASURE = r"""
import json, os, signal, subprocess, sys, time
guard_mb, out, err = float(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(out, "wb") as fout, open(err, "wb") as ferr:
    proc = subprocess.Popen(sys.argv[4:], stdout=fout, stderr=ferr, stdin=subprocess.DEVNULL)
guarded = False
while True:
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if pid:
        break
    try:
        with open(f"/proc/{proc.pid}/status") as fh:
            rss = next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
    except OSError:
        rss = 0
    if rss / 1024 > guard_mb and not guarded:
        guarded = True
        os.kill(proc.pid, signal.SIGKILL)
    time.sleep(0.02)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "peak_mb": usage.ru_maxrss / 1024,
                  "guarded": guarded}))
"""


@dataclass
class Measured:
    """A ccspec command run by `run_measured`: how it ended, its peak RSS, whether the guard
    killed it."""

    done: Finished
    guarded: bool


def run_measured(
    ws: Workspace, *args: str, guard_mb: float, timeout: float = 900.0, discard: bool = False
) -> Measured:
    """`ccspec ARGS` to the end, its peak RSS measured from a small starter process (see
    _MEASURE); its standard output to /dev/null when `discard`."""
    out, err = ws.output_files()
    started = time.monotonic()
    argv = [*ccspec_argv(), *args]
    report = subprocess.run(
        [
            sys.executable,
            "-c",
            _MEASURE,
            str(guard_mb),
            os.devnull if discard else str(out),
            str(err),
            *argv,
        ],
        cwd=ws.root,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    found = json.loads(report.stdout)
    done = Finished(
        argv=argv,
        code=int(found["code"]),
        out="" if discard else out.read_text(errors="replace"),
        err=err.read_text(errors="replace"),
        max_rss_mb=float(found["peak_mb"]),
        seconds=time.monotonic() - started,
    )
    return Measured(done, bool(found["guarded"]))


def ssh_host(svc: TestServices, workdir: str) -> dict[str, object]:
    """A spec's `hosts:` entry for the test sshd (as tests/test_remote.py writes it)."""
    return {
        "type": "ssh",
        "host": "127.0.0.1",
        "port": svc.ssh_port,
        "user": svc.ssh_user,
        "key": str(svc.ssh_key),
        "workdir": workdir,
    }


def slurm_host(svc: TestServices, workdir: Path) -> dict[str, object]:
    """A spec's `hosts:` entry for the test Slurm cluster (jobs are submitted from here)."""
    return {"type": "slurm", "partition": svc.slurm_partition, "workdir": str(workdir)}


SLURM_RESOURCES: dict[str, object] = {"cpus": 1, "mem": "50M", "time": "10m"}


def converge(
    ws: Workspace,
    spec: Path,
    result: TrialResult,
    *extra: str,
    tries: int = 3,
    timeout: float = 300.0,
) -> bool:
    """Run `apply SPEC EXTRA...` again until it exits 0 (at most `tries` times); every run's
    exit code and internal errors go into `result`. True when the workflow converged."""
    for _ in range(tries):
        done = run(ws, "apply", str(spec.relative_to(ws.root)), *extra, timeout=timeout)
        result.runs += 1
        result.count_exit(done.code)
        if bug := internal_error(done):
            result.error(f"apply after the fault: {bug}")
        note_failures(done, "apply after the fault", result)
        if done.code == 0:
            return True
    return False


def check_settled(ws: Workspace, spec: Path, result: TrialResult, *extra: str) -> None:
    """After convergence `plan --detailed-exitcode` must find nothing left to run (exit 0)."""
    done = run(ws, "plan", "--detailed-exitcode", str(spec.relative_to(ws.root)), *extra)
    result.runs += 1
    result.count_exit(done.code)
    if done.code != 0:
        result.error(f"plan after convergence exited {done.code}: {done.out.strip()[-300:]}")


def note_failures(done: Finished, label: str, result: TrialResult) -> None:
    """Count the jobs an apply reported lost, failed or skipped (fact `jobs_reported_STATE`:
    after a fault ccspec should recover them, not report them) and note the first lines."""
    for line in done.text.splitlines():
        for state in ("lost", "failed", "skipped"):
            if f" {state} after " in line or f" {state}: " in line:
                fact = f"jobs_reported_{state}"
                result.facts[fact] = int(result.facts.get(fact, 0)) + 1
                result.note(f"{label} (exit {done.code}): {line.strip()}")


def count_outcome(ws: Workspace, name: str, keys: list[str], result: TrialResult) -> None:
    """Lost and duplicated side effects of workflow `name` (jobs `keys`), into `result`: a
    job is lost when its ledger line is missing or its final state is not succeeded."""
    lost, duplicated = ws.ledger.lost_and_duplicated(keys)
    states = job_states(ws.status_path(name))
    not_succeeded = [k for k in keys if states.get(k.rsplit("/", 1)[-1]) != "succeeded"]
    missing = sorted(set(lost) | set(not_succeeded))
    result.lost += len(missing)
    result.duplicated += sum(n - 1 for n in duplicated.values())
    if missing:
        result.error(f"{name}: lost or not succeeded: {', '.join(missing[:8])}")
    if duplicated:
        shown = ", ".join(f"{k} x{n}" for k, n in list(duplicated.items())[:8])
        result.error(f"{name}: side effects more than once: {shown}")
