"""Helpers for the tests of `ccspec serve`: a real server process on a free port, over a real
state store written by a real `ccspec apply`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# A secret var, a failing job (so: skipped descendants), progress, outputs and a comment.
DEMO = """\
# the demo workflow (this comment must survive edits)
version: 1
name: demo
description: a demo for the API tests
vars:
  token: s3cr3t-t0ken-value
  rows: 3
secrets: [token]
jobs:
  a:
    run: |
      echo "# ccspec progress=50 message=\\"half way with {{ vars.token }}\\""
      echo "using {{ vars.token }} here"
      echo "# ccspec output key={{ vars.token }}"
      echo "# ccspec output rows=42"
  b:
    run: "echo b runs; exit 3"
    needs: [a]
  c:
    run: echo c
    needs: [b]
  d:
    run: echo d
  train:
    matrix: {model: [mlp, cnn]}
    run: echo "# ccspec output model={{ matrix.model }}"
"""

SLOW = """\
version: 1
name: slow
jobs:
  wait:
    run: |
      echo "# ccspec progress=10 message=\\"waiting for the gate\\""
      while [ ! -f gate ]; do sleep 0.05; done
      echo "# ccspec progress=90 message=\\"nearly\\""
      echo "passed the gate"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ccspec(
    repo: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccspec", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def make_repo(root: Path, **specs: str) -> Path:
    (root / ".git").mkdir(parents=True, exist_ok=True)
    (root / "specs").mkdir(exist_ok=True)
    for name, text in specs.items():
        (root / "specs" / f"{name}.yaml").write_text(textwrap.dedent(text))
    return root


@dataclass
class Server:
    proc: subprocess.Popen[str]
    url: str
    repo: Path
    token: str | None = None
    stderr: list[str] = field(default_factory=list)

    def client(self, *, auth: bool = True, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def stop(self) -> str:
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


def start_server(
    repo: Path, *args: str, token: str | None = None, host: str = "127.0.0.1"
) -> Server:
    """`ccspec serve` in `repo` on a free port; returns once /healthz answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CCSPEC_TOKEN"}
    if token is not None:
        env["CCSPEC_TOKEN"] = token
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccspec", "serve", "--host", host, "--port", str(port), *args],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(
                f"ccspec serve exited with {proc.returncode}: {proc.communicate()[1]}"
            )
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return Server(proc, url, repo, token)
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"ccspec serve did not answer: {proc.communicate()[1]}")
        time.sleep(0.1)


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Server-sent events as {id?, event?, data} from a stream of lines."""
    event: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in event:
                yield event
            event = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        event[name] = value[1:] if value.startswith(" ") else value
