"""An ssh host's effective client settings, read as OpenSSH reads them; called by `SshShell`
before it connects.

With an ssh client installed, `ssh -G HOST` prints the settings after the whole config is
applied (`Include`, `Match`, `CanonicalizeHostname`, the system-wide /etc/ssh/ssh_config),
so a host that `ssh HOST` reaches is reached by ccspec too. The spec's own `user` and `port`
go on its command line (`-l`, `-p`): as for ssh, they win over the config. Without an ssh
client the config is read by paramiko with its `Include` lines expanded first (paramiko does
not follow them).

The config read is `$CCSPEC_SSH_CONFIG` (as `ssh -F`) when set, else ssh's own
(~/.ssh/config and the system-wide file). Each host is resolved once per process: one
`ssh -G` per host, not per connection. A config ssh cannot read raises
`PermanentTargetError` quoting ssh's complaint (file and line).
"""

from __future__ import annotations

import getpass
import glob
import os
import re
import shlex
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from ccspec.errors import PermanentTargetError

__all__ = ["SshSettings", "config_override", "expand_includes", "resolve"]

RESOLVE_TIMEOUT = 15.0  # seconds `ssh -G` may take (Match exec and canonicalisation included)
MAX_INCLUDE_DEPTH = 16  # as OpenSSH: an Include loop is an error, not a hang


@dataclass(frozen=True)
class SshSettings:
    """What a connection to one host needs."""

    hostname: str
    user: str
    port: int
    identity_files: tuple[str, ...]  # existing files only, ~ and %-tokens expanded
    proxy_jump: str | None
    proxy_command: str | None
    connect_timeout: float | None


_cache: dict[tuple[str, str | None, int | None, str | None, bool], SshSettings] = {}
_lock = threading.Lock()


def config_override() -> Path | None:
    """`$CCSPEC_SSH_CONFIG`: the config file used instead of ssh's own, or None."""
    value = os.environ.get("CCSPEC_SSH_CONFIG")
    return Path(value).expanduser() if value else None


def resolve(host: str, user: str | None = None, port: int | None = None) -> SshSettings:
    """The effective settings of `host`, with the spec's user and port winning (cached)."""
    config = config_override()
    client = shutil.which("ssh")
    key = (host, user, port, str(config) if config else None, client is not None)
    with _lock:
        found = _cache.get(key)
        if found is None:
            found = (
                _from_ssh(client, host, user, port, config)
                if client
                else _from_paramiko(host, user, port, config)
            )
            _cache[key] = found
    return found


def _problem(host: str, what: str) -> PermanentTargetError:
    return PermanentTargetError(
        f"cannot read the ssh settings of {host}: {what} "
        "(fix the ssh config, or point $CCSPEC_SSH_CONFIG at a readable one)"
    )


def _from_ssh(
    client: str, host: str, user: str | None, port: int | None, config: Path | None
) -> SshSettings:
    argv = [client, "-G"]
    argv += ["-F", str(config)] if config else []
    argv += ["-l", user] if user else []
    argv += ["-p", str(port)] if port else []
    try:
        done = subprocess.run(
            [*argv, "--", host],
            capture_output=True,
            text=True,
            timeout=RESOLVE_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise _problem(host, f"`ssh -G` took more than {RESOLVE_TIMEOUT:g}s") from exc
    except OSError as exc:
        raise _problem(host, f"cannot run {client}: {exc.strerror or exc}") from exc
    if done.returncode != 0:
        said = "; ".join(line for line in done.stderr.strip().splitlines() if line.strip())
        raise _problem(host, said or f"`ssh -G` exit code {done.returncode}")
    values: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        name, _, value = line.partition(" ")
        values.setdefault(name.lower(), []).append(value.strip())
    return _settings(host, values)


def _settings(host: str, values: dict[str, list[str]]) -> SshSettings:
    def one(name: str) -> str | None:
        got = values.get(name)
        return got[0] if got and got[0].lower() != "none" else None

    hostname = one("hostname") or host
    user = one("user") or getpass.getuser()
    port_text = one("port") or "22"
    if not port_text.isdigit():
        raise _problem(host, f"port {port_text!r} is not a number")
    timeout = one("connecttimeout")
    tokens = {"h": hostname, "r": user, "p": port_text, "n": host}
    files = (_expand(f, tokens) for f in values.get("identityfile", []) if f.lower() != "none")
    return SshSettings(
        hostname=hostname,
        user=user,
        port=int(port_text),
        identity_files=tuple(f for f in files if os.path.isfile(f)),
        proxy_jump=one("proxyjump"),
        proxy_command=one("proxycommand"),
        connect_timeout=float(timeout) if timeout and timeout.isdigit() else None,
    )


def _expand(text: str, tokens: dict[str, str]) -> str:
    """ssh's ~ and %-tokens of a path or command (%h %r %p %n %u %d %%)."""
    home = os.path.expanduser("~")
    table = {**tokens, "u": getpass.getuser(), "d": home, "%": "%"}
    out = re.sub(r"%(.)", lambda m: table.get(m.group(1), m.group(0)), text)
    return os.path.expanduser(out)


def expand_includes(path: Path, depth: int = 0) -> str:
    """The text of an ssh config with each `Include` replaced by the files it names (globs;
    relative names are under ~/.ssh, as ssh reads a user's config). Files a glob does not
    find are skipped, as ssh does."""
    if depth > MAX_INCLUDE_DEPTH:
        raise ValueError(f"{path}: Include nested more than {MAX_INCLUDE_DEPTH} deep")
    out = []
    for line in path.read_text().splitlines():
        match = re.match(r"\s*include(?:\s*=\s*|\s+)(.*)$", line, re.IGNORECASE)
        if match is None:
            out.append(line)
            continue
        for pattern in shlex.split(match.group(1), comments=True):
            full = os.path.expanduser(pattern)
            if not os.path.isabs(full):
                full = os.path.join(os.path.expanduser("~/.ssh"), full)
            for name in sorted(glob.glob(full)):
                if os.path.isfile(name):
                    out.append(expand_includes(Path(name), depth + 1))
    return "\n".join(out)


def _from_paramiko(
    host: str, user: str | None, port: int | None, config: Path | None
) -> SshSettings:
    import paramiko

    path = config or Path("~/.ssh/config").expanduser()
    values: dict[str, list[str]] = {}
    if config is not None or path.is_file():
        try:
            found = paramiko.SSHConfig.from_text(expand_includes(path)).lookup(host)
        except (OSError, ValueError, paramiko.ssh_exception.ConfigParseError) as exc:
            raise _problem(host, f"{path}: {exc}") from exc
        for name, value in found.items():
            values[name] = list(value) if isinstance(value, list) else [str(value)]
    if user:
        values["user"] = [user]
    if port:
        values["port"] = [str(port)]
    return _settings(host, values)
