"""ssh hosts are found as OpenSSH finds them: an alias behind `Include` or `Match` in the ssh
config, the spec's own user and port winning over it, and a config ssh cannot read reported
as such. Against the real test sshd; the config is a file of the test's own, named by
$CCSPEC_SSH_CONFIG (as `ssh -F`), so the user's ~/.ssh/config is never read or touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from ccspec.targets import ssh_config
from tests.services import TestServices, services
from tests.test_apply import status, write


@pytest.fixture
def svc() -> TestServices:
    return services()


def login(svc: TestServices, port: int | None = None) -> str:
    """The settings lines that reach the test host."""
    return textwrap.dedent(f"""\
        HostName 127.0.0.1
        Port {port or svc.ssh_port}
        User {svc.ssh_user}
        IdentityFile {svc.ssh_key}
        IdentitiesOnly yes
        StrictHostKeyChecking no
        UserKnownHostsFile /dev/null
        BatchMode yes
    """)


def apply_on(
    repo: Path, config: Path, host: str, extra: str = "", path: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`ccspec apply` of one job on the ssh host `host`, the ssh config being `config`."""
    workdir = f"~/t/{uuid.uuid4().hex[:12]}"
    write(
        repo,
        f"""
        version: 1
        hosts: {{box: {{type: ssh, host: {host}, workdir: "{workdir}"{extra}}}}}
        jobs:
          one: {{host: box, run: 'echo "# ccspec output me=$(whoami)"'}}
    """,
    )
    env = {**os.environ, "CCSPEC_SSH_CONFIG": str(config)}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "ccspec", "apply", "flow.yaml"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def included_config(repo: Path, svc: TestServices, alias: str) -> Path:
    """The usual layout: the main config only says `Include config.d/*` (absolute here: a
    relative name would be under the real ~/.ssh)."""
    folder = repo / "config.d"
    folder.mkdir()
    (folder / "test-host").write_text(f"Host {alias}\n" + textwrap.indent(login(svc), "    "))
    config = repo / "ssh_config"
    config.write_text(f"Include {folder}/*\n\nHost *\n    ServerAliveInterval 30\n")
    return config


def test_a_host_behind_include_is_reached(repo: Path, svc: TestServices) -> None:
    config = included_config(repo, svc, "ccspec-included")
    result = apply_on(repo, config, "ccspec-included")
    assert result.returncode == 0, result.stdout + result.stderr
    assert status(repo)["jobs"]["one"]["outputs"] == {"me": "ccspec"}


def test_a_host_behind_include_is_reached_without_an_ssh_client(
    repo: Path, svc: TestServices
) -> None:
    """No `ssh` on PATH: the config is read with its Include lines expanded."""
    config = included_config(repo, svc, "ccspec-included")
    empty = repo / "no-ssh-here"
    empty.mkdir()
    result = apply_on(repo, config, "ccspec-included", path=str(empty))
    assert result.returncode == 0, result.stdout + result.stderr
    assert status(repo)["jobs"]["one"]["outputs"] == {"me": "ccspec"}


def test_a_host_behind_match_is_reached(repo: Path, svc: TestServices) -> None:
    """`Match` on the user the spec asks for and on the canonical name: only ssh's own
    reading of the config gets these right."""
    config = repo / "ssh_config"
    config.write_text(
        "Host ccspec-matched\n    HostName 127.0.0.1\n\n"
        f"Match host 127.0.0.1 user {svc.ssh_user}\n"
        + textwrap.indent(login(svc), "    ")
        + "\nMatch all\n    Port 1\n"  # after the real port: a later value never wins
    )
    result = apply_on(repo, config, "ccspec-matched", extra=f", user: {svc.ssh_user}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert status(repo)["jobs"]["one"]["outputs"] == {"me": "ccspec"}


def test_the_spec_port_and_user_win_over_the_config(repo: Path, svc: TestServices) -> None:
    config = repo / "ssh_config"
    config.write_text(
        "Host ccspec-wrong\n" + textwrap.indent(login(svc, port=1), "    ") + "    User nobody\n"
    )
    extra = f", port: {svc.ssh_port}, user: {svc.ssh_user}"
    result = apply_on(repo, config, "ccspec-wrong", extra=extra)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_config_is_reported_with_its_file_and_line(repo: Path, svc: TestServices) -> None:
    config = repo / "ssh_config"
    config.write_text("Host ccspec-broken\n    HostName 127.0.0.1\n    Frobnicate yes\n")
    result = apply_on(repo, config, "ccspec-broken")
    assert result.returncode == 1
    reason = status(repo)["jobs"]["one"]["reason"]
    assert "cannot read the ssh settings of ccspec-broken" in reason
    assert f"{config}: line 3: Bad configuration option: frobnicate" in reason
    assert "Traceback" not in result.stdout + result.stderr


def test_a_missing_config_is_reported(repo: Path, svc: TestServices) -> None:
    missing = repo / "no-such-config"
    result = apply_on(repo, missing, "ccspec-test")
    assert result.returncode == 1
    reason = status(repo)["jobs"]["one"]["reason"]
    assert "cannot read the ssh settings of ccspec-test" in reason and str(missing) in reason
    assert "Traceback" not in result.stdout + result.stderr


def test_each_host_is_resolved_once_per_process(
    tmp_path: Path, svc: TestServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A logging `ssh` first on PATH (it runs the real one): `ssh -G` once per host."""
    log = tmp_path / "calls"
    real = subprocess.run(["sh", "-c", "command -v ssh"], capture_output=True, text=True)
    shim = tmp_path / "bin" / "ssh"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real.stdout.strip()} "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CCSPEC_SSH_CONFIG", str(svc.ssh_config))
    alias = svc.ssh_host
    port = 40000 + uuid.uuid4().int % 20000  # a key no other test of this process used
    first = ssh_config.resolve(alias, port=port)
    assert ssh_config.resolve(alias, port=port) == first
    other = ssh_config.resolve(alias, port=port + 1)
    assert (first.hostname, first.port, first.user) == ("127.0.0.1", port, svc.ssh_user)
    assert other.port == port + 1 and first.identity_files == (str(svc.ssh_key),)
    assert len(log.read_text().splitlines()) == 2


def test_a_proxy_jump_loop_is_reported(repo: Path, svc: TestServices) -> None:
    config = repo / "ssh_config"
    config.write_text(
        "Host loop-a\n    HostName 127.0.0.1\n    ProxyJump loop-b\n"
        "Host loop-b\n    HostName 127.0.0.1\n    ProxyJump loop-a\n"
    )
    result = apply_on(repo, config, "loop-a")
    assert result.returncode == 1
    reason = status(repo)["jobs"]["one"]["reason"]
    assert "ProxyJump goes through more than 8 hosts (a loop in the ssh config?)" in reason
    assert "Traceback" not in result.stdout + result.stderr
