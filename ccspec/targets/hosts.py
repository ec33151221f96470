"""Which target serves a host of the spec, and how many of its jobs may run at once."""

from __future__ import annotations

import re

from ccspec.spec.models import Host, SlurmHost, SshHost, WslHost
from ccspec.targets.base import RemoteLaunch, Target
from ccspec.targets.detached import DetachedBackend
from ccspec.targets.shells import LocalShell, SshShell, WslShell
from ccspec.targets.slurm import SlurmBackend

__all__ = ["DEFAULT_WORKDIR", "backend_for", "job_slots", "poll_intervals", "wsl_path"]

DEFAULT_WORKDIR = "~/ccspec"
# Jobs at once when a host does not say (`max_jobs`): the local machine uses -j; an ssh
# host runs detached jobs side by side; a scheduler queues what it cannot start yet.
DEFAULT_SLOTS = {"ssh": 32, "wsl": 8, "slurm": 1000}


def backend_for(host: Host) -> Target[RemoteLaunch]:
    """The target serving a remote host of the spec (ssh, Slurm, WSL)."""
    if isinstance(host, SshHost):
        shell = SshShell(
            host.host, user=host.user, port=host.port, key=host.key, proxy_jump=host.proxy_jump
        )
        return DetachedBackend(shell, host.workdir or DEFAULT_WORKDIR, host.python)
    if isinstance(host, SlurmHost):
        login = (
            SshShell(
                host.ssh, user=host.user, port=host.port, key=host.key, proxy_jump=host.proxy_jump
            )
            if host.ssh
            else LocalShell()
        )
        return SlurmBackend(login, host, host.workdir or DEFAULT_WORKDIR)
    if isinstance(host, WslHost):
        wsl = WslShell(host.distro, host.user, host.wsl_exe)
        return DetachedBackend(wsl, wsl_path(host.workdir) if host.workdir else DEFAULT_WORKDIR)
    raise ValueError(f"no remote backend for a host of type {host.type!r}")


def job_slots(host: Host, local_limit: int) -> int:
    if host.max_jobs is not None:
        return host.max_jobs
    return DEFAULT_SLOTS.get(host.type, local_limit)


def poll_intervals(host: Host) -> tuple[float, float]:
    """(shortest, longest) seconds between polls: a scheduler is asked less often. On ssh and
    WSL the shortest is brief: a batch's launch command reports the jobs that ended at once
    (ccspec.targets.launch_report), so the poll right after it usually asks the host nothing, and
    a poll that does ask costs the host the same few processes whatever its number of jobs."""
    return (0.5, 10.0) if host.type == "slurm" else (0.02, 2.0)


_DRIVE = re.compile(r"^([A-Za-z]):[\\/](.*)$")


def wsl_path(path: str) -> str:
    r"""A Windows path as WSL sees it: C:\Users\me -> /mnt/c/Users/me; others unchanged."""
    match = _DRIVE.match(path)
    if match is None:
        return path.replace("\\", "/") if "\\" in path and not path.startswith("\\\\") else path
    drive, rest = match.groups()
    return f"/mnt/{drive.lower()}/{rest.replace(chr(92), '/')}".rstrip("/")
