"""Where a remote target's commands run: a shell on this machine, over ssh, or in WSL.

The ssh, Slurm and WSL targets speak to their host only through `Shell.run` (a POSIX shell
script in, exit code and output out) and `Shell.put` (a file in). One `SshShell` keeps one
connection per host, reused by every command, and reconnects with backoff when it drops;
a failure to connect raises `HostUnreachable` with a reason such as
"connection refused: HOST:PORT", or `PermanentTargetError` when the host refuses the key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# HostUnreachable is re-exported: raised here
from ccspec.errors import (
    HostUnreachable,
    PermanentTargetError,
    TargetError,
    TemporaryTargetError,
)
from ccspec.fdwait import wait_readable
from ccspec.targets import ssh_config

__all__ = [
    "HostUnreachable",
    "LocalShell",
    "Result",
    "Shell",
    "SshShell",
    "WslShell",
    "ssh_config_path",
]

COMMAND_TIMEOUT = 120.0  # seconds a remote command may take (submits of many jobs included)
# Longer scripts (a batch of hundreds of launches) go through stdin: an argument of
# `sh -c` is limited (128 KiB on Linux), stdin is not.
INLINE_LIMIT = 32 * 1024
KEEPALIVE = 15  # seconds between ssh keepalives, so idle connections survive NAT and firewalls
MAX_HOPS = 8  # jump hosts in a row at most
RECONNECT_BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Result:
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode("utf-8", "replace")


class Shell(Protocol):
    label: str  # for messages: "user@host:port", "wsl:Ubuntu", "this machine"

    def run(
        self, script: str, *, stdin: bytes | None = None, timeout: float = COMMAND_TIMEOUT
    ) -> Result:
        """Run a POSIX shell script on the host."""

    def put(self, data: bytes, remote: str) -> None:
        """Write `data` into the file `remote` on the host (atomically: a temporary name, then
        a rename)."""

    def close(self) -> None: ...


def _put_via_shell(shell: Shell, data: bytes, remote: str) -> None:
    tmp = f"{remote}.part{os.getpid()}-{secrets.token_hex(4)}"  # two hosts may share a workdir and a blob
    q = shlex.quote
    result = shell.run(
        f"mkdir -p {q(os.path.dirname(remote) or '.')} && cat > {q(tmp)} && mv -f {q(tmp)} {q(remote)}",
        stdin=data,
    )
    if result.code != 0:
        raise TemporaryTargetError(
            f"cannot write {remote} on {shell.label}: {result.err.strip() or result.code}"
        )


class LocalShell:
    """Commands on this machine (a Slurm cluster whose sbatch is local)."""

    label = "this machine"

    def __init__(self, argv_prefix: tuple[str, ...] = ("bash",), login: bool = False) -> None:
        self.prefix = argv_prefix
        self.login = login

    def run(
        self, script: str, *, stdin: bytes | None = None, timeout: float = COMMAND_TIMEOUT
    ) -> Result:
        flags = "-l" if self.login else "-"
        if stdin is None and len(script) > INLINE_LIMIT:
            argv, data = [*self.prefix, f"{flags}s"], script.encode()
        else:
            argv, data = [*self.prefix, f"{flags}c", script], stdin if stdin is not None else b""
        try:
            proc = subprocess.run(argv, input=data, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise TemporaryTargetError(
                f"a command on {self.label} took more than {timeout:g}s"
            ) from exc
        except OSError as exc:
            raise HostUnreachable(
                f"cannot run {self.prefix[0]!r} on {self.label}: {exc.strerror or exc}"
            ) from exc
        return Result(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))

    def put(self, data: bytes, remote: str) -> None:
        _put_via_shell(self, data, remote)

    def close(self) -> None:
        pass


class WslShell(LocalShell):
    """Commands inside a WSL distribution, through `wsl.exe -d DISTRO -- bash -lc SCRIPT`."""

    def __init__(self, distro: str, user: str | None = None, wsl_exe: str = "wsl.exe") -> None:
        super().__init__(
            (wsl_exe, "-d", distro, *(("-u", user) if user else ()), "--", "bash"), login=True
        )
        self.label = f"wsl:{distro}"


def ssh_config_path() -> Path:
    """The user's ssh config file: `$CCSPEC_SSH_CONFIG` or ~/.ssh/config (ssh_config.resolve
    reads it as `ssh -G` does)."""
    return ssh_config.config_override() or Path.home() / ".ssh" / "config"


class SshShell:
    """One fabric connection to one host, reused for every command and file."""

    def __init__(
        self,
        host: str,
        *,
        user: str | None = None,
        port: int | None = None,
        key: str | None = None,
        proxy_jump: str | None = None,
        connect_timeout: float = 10.0,
        hops: int = 0,  # jump hosts in front of this one (a loop in the config must end)
    ) -> None:
        self.host, self.user, self.port, self.key, self.proxy_jump = (
            host,
            user,
            port,
            key,
            proxy_jump,
        )
        self.connect_timeout = connect_timeout
        self.hops = hops
        self._conn: Any = None
        self._lock = threading.Lock()
        self._failures = 0
        self._retry_at = 0.0
        self._last_failure: TargetError = HostUnreachable("not connected yet")
        self.label = host

    # -- connection --------------------------------------------------------------------

    def _connection(self) -> Any:
        if self._conn is not None and self._conn.is_connected:
            transport = self._conn.client.get_transport()
            if transport is not None and transport.is_active():
                return self._conn
            self._drop()
        now = time.monotonic()
        if now < self._retry_at:
            raise type(self._last_failure)(str(self._last_failure))  # backing off: not tried yet
        try:
            conn = self._connect()
        except (HostUnreachable, PermanentTargetError) as exc:
            self._last_failure = exc
            self._retry_at = (
                time.monotonic()
                + RECONNECT_BACKOFF[min(self._failures, len(RECONNECT_BACKOFF) - 1)]
            )
            self._failures += 1
            raise
        self._failures, self._retry_at = 0, 0.0
        self._conn = conn
        return conn

    def _connect(self) -> Any:
        import fabric
        import paramiko

        settings = ssh_config.resolve(self.host, self.user, self.port)
        kwargs: dict[str, Any] = {}
        keys = [str(Path(self.key).expanduser())] if self.key else []
        keys += [k for k in settings.identity_files if k not in keys]
        if keys:
            kwargs["key_filename"] = keys
        gateway: Any = None
        jump = self.proxy_jump or settings.proxy_jump
        if jump and self.hops >= MAX_HOPS:
            raise PermanentTargetError(
                f"{self.host}: ProxyJump goes through more than {MAX_HOPS} hosts "
                "(a loop in the ssh config?)"
            )
        if jump:  # ssh -J [user@]jump[:port],...: the last hop is reached through the others
            *before, last = jump.split(",")
            host, user, port = _split_target(last)
            hop = SshShell(
                host,
                user=user,
                port=port,
                key=self.key,
                proxy_jump=",".join(before) or None,
                hops=self.hops + 1,
            )
            gateway = hop._connection()
        elif settings.proxy_command:
            gateway = paramiko.ProxyCommand(settings.proxy_command)
        timeout = settings.connect_timeout or self.connect_timeout
        if gateway is None:  # a socket of our own, so that it sends without Nagle's delay
            kwargs["sock"] = _open_socket(settings.hostname, settings.port, timeout)
        # the settings are resolved already: fabric must not read a config of its own
        conn = fabric.Connection(
            settings.hostname,
            user=settings.user,
            port=settings.port,
            config=fabric.Config(ssh_config=paramiko.SSHConfig()),
            gateway=gateway,
            connect_timeout=timeout,
            connect_kwargs=kwargs,
        )
        self.label = f"{conn.user}@{conn.host}:{conn.port}"
        try:
            conn.open()
        except (
            paramiko.AuthenticationException
        ) as exc:  # the key is refused: trying again will not help
            _abandon(conn, kwargs.get("sock"))
            raise PermanentTargetError(f"authentication failed: {self.label} ({exc})") from exc
        except paramiko.ssh_exception.NoValidConnectionsError as exc:
            raise HostUnreachable(f"connection refused: {conn.host}:{conn.port}") from exc
        except TimeoutError as exc:
            raise HostUnreachable(f"connection timed out: {conn.host}:{conn.port}") from exc
        except socket.gaierror as exc:
            raise HostUnreachable(f"unknown host: {conn.host} ({exc.strerror})") from exc
        except (OSError, paramiko.SSHException, EOFError) as exc:
            _abandon(conn, kwargs.get("sock"))
            raise HostUnreachable(f"cannot connect to {conn.host}:{conn.port}: {exc}") from exc
        transport = conn.client.get_transport()
        if transport is not None:
            transport.set_keepalive(KEEPALIVE)
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    # -- commands ----------------------------------------------------------------------

    def run(
        self, script: str, *, stdin: bytes | None = None, timeout: float = COMMAND_TIMEOUT
    ) -> Result:
        import paramiko

        with self._lock:
            conn = self._connection()
            try:
                return self._exec(conn, script, stdin, timeout)
            except (OSError, EOFError, paramiko.SSHException) as exc:
                self._drop()  # a dropped connection: the next call reconnects (with backoff)
                raise HostUnreachable(
                    f"lost the connection to {self.label}: {exc or type(exc).__name__}"
                ) from exc

    def _exec(self, conn: Any, script: str, stdin: bytes | None, timeout: float) -> Result:
        # A raw channel rather than fabric's run(): no reader threads per command, which
        # matters when a poll of hundreds of jobs runs every second.
        channel = conn.client.get_transport().open_session(timeout=self.connect_timeout)
        try:
            channel.settimeout(timeout)
            if stdin is None and len(script) > INLINE_LIMIT:
                channel.exec_command("sh -s")
                channel.sendall(script.encode())
            else:
                channel.exec_command(f"sh -c {shlex.quote(script)}")
                if stdin:
                    channel.sendall(stdin)
            channel.shutdown_write()
            out, err = bytearray(), bytearray()
            fd = channel.fileno()  # readable when data arrives: wait on it, no busy loop
            while True:
                got = False
                while channel.recv_ready():
                    out += channel.recv(1 << 16)
                    got = True
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(1 << 16)
                    got = True
                if got:
                    continue
                # the end of the output is its EOF (or the channel's close): the exit status may
                # come first, while output the window held back is still on its way
                if channel.eof_received or channel.closed:
                    if not channel.recv_ready() and not channel.recv_stderr_ready():
                        break
                    continue
                wait_readable(fd, 0.05)
            code = channel.recv_exit_status()
            return Result(code, bytes(out), err.decode("utf-8", "replace"))
        except TimeoutError as exc:
            raise TemporaryTargetError(
                f"a command on {self.label} took more than {timeout:g}s"
            ) from exc
        finally:
            channel.close()

    def put(self, data: bytes, remote: str) -> None:
        _put_via_shell(self, data, remote)

    def close(self) -> None:
        with self._lock:
            self._drop()


def _open_socket(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to the host's ssh server with TCP_NODELAY set. A command's request
    and its end are small packets sent back to back: with Nagle's algorithm each waits for
    the peer's delayed acknowledgement (~40 ms a command), which OpenSSH's client avoids the
    same way."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError as exc:
        raise HostUnreachable(f"connection refused: {host}:{port}") from exc
    except TimeoutError as exc:
        raise HostUnreachable(f"connection timed out: {host}:{port}") from exc
    except socket.gaierror as exc:
        raise HostUnreachable(f"unknown host: {host} ({exc.strerror})") from exc
    except OSError as exc:
        raise HostUnreachable(f"cannot connect to {host}:{port}: {exc}") from exc
    with contextlib.suppress(OSError):  # not a TCP socket (a test's socketpair): no matter
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _abandon(conn: Any, sock: object) -> None:
    """After a failed handshake: its transport's thread stops before the socket it reads
    closes (closing it under the thread makes paramiko report a bad file descriptor)."""
    with contextlib.suppress(Exception):
        conn.client.close()
    if isinstance(sock, socket.socket):
        sock.close()


def _split_target(text: str) -> tuple[str, str | None, int | None]:
    """`user@host:port` (or `ssh://user@host:port`) -> (host, user, port)."""
    text = text.removeprefix("ssh://")
    user, _, rest = text.rpartition("@")
    host, _, port = rest.partition(":")
    return host, user or None, int(port) if port.isdigit() else None
