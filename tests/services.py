"""The real ssh and Slurm services that the integration tests run against.

`.ci/services-up.sh` (run by `bash .ci/bootstrap test` as root) starts an sshd on
127.0.0.1:2222 (user `ccspec`, alias `ccspec-test` in its own ssh_config) and a
single-node Slurm cluster (partition `debug`; finished jobs in `sacct -c`), and writes
`env.sh` into `$CCSPEC_TEST_KEYDIR` (default `~/.ccspec-test`).

`services()` describes them, or raises RuntimeError when they are not running: tests
that need them fail rather than skip. `ssh(cmd)` runs a shell command on the test host.
"""

from __future__ import annotations

import functools
import os
import shlex
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

NOT_RUNNING = "the ssh/Slurm test services are not running: run `bash .ci/services-up.sh` as root"
READY_NODE_STATES = frozenset({"idle", "mix", "alloc", "comp"})


@dataclass(frozen=True)
class TestServices:
    """Where the test services are and how to reach them."""

    __test__ = False  # not a test class, despite the name

    ssh_config: Path  # ssh_config with the host alias below
    ssh_host: str  # the alias: "ccspec-test"
    ssh_user: str
    ssh_port: int
    ssh_key: Path
    slurm_partition: str
    keydir: Path


def keydir() -> Path:
    """`$CCSPEC_TEST_KEYDIR`, or `~/.ccspec-test`."""
    return Path(os.environ.get("CCSPEC_TEST_KEYDIR") or Path.home() / ".ccspec-test")


def read_env(path: Path) -> dict[str, str]:
    """The `export NAME='value'` lines of services-up.sh's env.sh."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            env[name] = value
    return env


def _down(why: str) -> RuntimeError:
    return RuntimeError(f"{NOT_RUNNING} ({why})")


@functools.cache
def services() -> TestServices:
    """The running test services; RuntimeError when they are down or not set up."""
    env_file = keydir() / "env.sh"
    try:
        env = read_env(env_file)
        found = TestServices(
            ssh_config=Path(env["CCSPEC_TEST_SSH_CONFIG"]),
            ssh_host=env["CCSPEC_TEST_SSH_HOST"],
            ssh_user=env["CCSPEC_TEST_SSH_USER"],
            ssh_port=int(env["CCSPEC_TEST_SSH_PORT"]),
            ssh_key=Path(env["CCSPEC_TEST_SSH_KEY"]),
            slurm_partition=env["CCSPEC_TEST_SLURM_PARTITION"],
            keydir=Path(env["CCSPEC_TEST_KEYDIR"]),
        )
    except OSError as exc:
        raise _down(f"cannot read {env_file}: {exc.strerror or exc}") from exc
    except (KeyError, ValueError) as exc:
        raise _down(f"{env_file} is incomplete: {exc!r}") from exc

    try:
        with socket.create_connection(("127.0.0.1", found.ssh_port), timeout=5):
            pass
    except OSError as exc:
        raise _down(f"nothing accepts connections on 127.0.0.1:{found.ssh_port}: {exc}") from exc

    command = ["sinfo", "-h", "-p", found.slurm_partition, "-o", "%t"]
    try:
        sinfo = subprocess.run(
            command, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _down(f"{shlex.join(command)}: {exc}") from exc
    states = sinfo.stdout.split()
    if sinfo.returncode != 0 or not READY_NODE_STATES.intersection(states):
        said = (sinfo.stdout + sinfo.stderr).strip() or "nothing"
        raise _down(f"{shlex.join(command)} says {said!r}, want a node idle, mix, alloc or comp")
    return found


def ssh(cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the shell command `cmd` on the test host as the test user (not checked)."""
    found = services()
    return subprocess.run(
        ["ssh", "-F", str(found.ssh_config), found.ssh_host, cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
