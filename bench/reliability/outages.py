"""Short outages of the shared test services, always restored.

The test sshd and slurmctld are started by `.ci/services-up.sh`, which records their pids in
/run/ccspec-test/NAME.pid and starts whatever is not running (in about a second when the rest
is up). An outage stops one daemon, waits a few seconds, and runs services-up.sh again, in a
`finally`: other test runs share these services, so outages stay short and never outlive the
trial. Called by faults.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bench.reliability.lib import REPO_ROOT

STATE_DIR = Path("/run/ccspec-test")  # services-up.sh's pid files
SERVICES_UP = REPO_ROOT / ".ci" / "services-up.sh"
SSH_PORT = 2222


def pid_of(name: str, comm: str) -> int | None:
    """The live pid recorded in STATE_DIR/NAME.pid, if its command is `comm`."""
    try:
        pid = int((STATE_DIR / f"{name}.pid").read_text().strip())
        if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
            return pid
    except (OSError, ValueError):
        pass
    return None


def wait_gone(pid: int, timeout: float = 15.0) -> bool:
    """Until `pid` has exited (a zombie counts as exited); False after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def descendants(pid: int) -> set[int]:
    """`pid` and every process below it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
    found = {pid}
    grew = True
    while grew:
        below = {child for child, parent in parents.items() if parent in found}
        grew = not below <= found
        found |= below
    return found


def sshd_sessions_of(clients: set[int]) -> set[int]:
    """The sshd processes serving the connections that processes `clients` hold to the
    test sshd (matched on the client's port in `ss -tnp`)."""
    lines = subprocess.run(
        ["ss", "-Htnp"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    client_ports = set()
    for line in lines:
        fields = line.split()
        if len(fields) >= 5 and fields[4].endswith(f":{SSH_PORT}"):
            pids = {int(p) for p in re.findall(r"pid=(\d+)", line)}
            if pids & clients:
                client_ports.add(fields[3].rsplit(":", 1)[1])
    sessions: set[int] = set()
    for line in lines:
        fields = line.split()
        if (
            len(fields) >= 5
            and fields[3].endswith(f":{SSH_PORT}")
            and fields[4].rsplit(":", 1)[1] in client_ports
        ):
            sessions |= {int(p) for p in re.findall(r"pid=(\d+)", line)}
    return sessions


def kill_sshd(client_pid: int) -> str:
    """SIGKILL the test sshd's listener (no new connections) and the sshd sessions of
    `client_pid`'s connections (they drop, as when the daemon host goes away)."""
    listener = pid_of("sshd", "sshd")
    sessions = sshd_sessions_of(descendants(client_pid))
    for pid in ([listener] if listener else []) + sorted(sessions):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return f"sshd listener {listener} and {len(sessions)} session process(es) killed"


def stop_slurmctld() -> str:
    """SIGTERM slurmctld and wait for it to exit (SIGKILL after 15 s), as services-down does."""
    pid = pid_of("slurmctld", "slurmctld")
    if pid is None:
        return "slurmctld was not running"
    os.kill(pid, signal.SIGTERM)
    if not wait_gone(pid):
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
    return f"slurmctld {pid} stopped"


def restore() -> str:
    """services-up.sh: starts the daemons that are down; raises when it cannot."""
    done = subprocess.run(
        ["bash", str(SERVICES_UP)],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{SERVICES_UP} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "services up"


def outage(stop: Callable[[], str], seconds: float) -> str:
    """Stop a service with `stop`, keep it down `seconds`, and restore it whatever happens;
    returns what was stopped and how long the outage really lasted."""
    started = time.monotonic()
    try:
        said = stop()
        time.sleep(seconds)  # the outage itself
    finally:
        restore()
    return f"{said}; back after {time.monotonic() - started:.1f}s"
