"""Load benchmark of `ccspec serve`: GET one workflow of 1,000 jobs under 50 concurrent clients.

Not a test. Steps, in a temporary folder:

1. write a layered DAG of `--jobs` jobs (gen_layered.py's shape: every job after the first
   layer needs 2 of the layer before); each job prints a progress line and two outputs;
2. `ccspec apply` it (real processes, a real state store);
3. start `ccspec serve` as a subprocess, with its default options;
4. `--clients` keep-alive connections (default 50) each send `GET /api/workflows/layered`
   back to back, without think time, for `--seconds` (after a warm-up). A closed loop: each
   client waits for the whole body before its next request.

The load generator is a raw asyncio HTTP/1.1 client in this process (no HTTP library on
the hot path: on 2 cores the client competes with the server for CPU, so it must be lean).
Latency is measured per request from writing it to reading the last byte of the body.

Scenario `steady` is the headline: the state is unchanged during the run and the clients
ask for the plain body (about 0.5 MB), as curl does. `steady, gzip`: the same with
`Accept-Encoding: gzip`, as browsers and Python's requests and httpx send it. `changing`: the
plain load while a writer commits a progress update to the store 4 times a second, so the
server must rebuild the document again and again (what a dashboard sees during a run).

    python bench/api_bench.py [--jobs 1000] [--clients 50] [--seconds 10] [--ccspec PATH]

Prints a table and writes JSON to bench/results/api.json. Target: p99 <= 50 ms (steady).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from gen_layered import parents
from validate_bench import default_ccspec, version

HERE = Path(__file__).resolve().parent
TARGET_P99_MS = 50.0


def spec_text(jobs: int, width: int) -> str:
    layers = max(1, jobs // width)
    out = ["version: 1", "name: layered", "description: load benchmark of ccspec serve", "jobs:"]
    for layer in range(layers):
        for j in range(width):
            name = f"l{layer}-j{j}"
            out.append(f"  {name}:")
            out.append(
                f"    run: echo '# ccspec progress=100 message=\"done {name}\"'; "
                f"echo '# ccspec output rows={j}'; echo '# ccspec output name={name}'"
            )
            ps = parents(layer, j, width)
            if ps:
                out.append(f"    needs: [{', '.join(ps)}]")
    return "\n".join(out) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"ccspec serve exited with {proc.returncode}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r,
        ):
            if r.status == 200:
                return
        time.sleep(0.1)
    raise SystemExit("ccspec serve did not become healthy")


class _Client(asyncio.Protocol):
    """One keep-alive connection sending GETs back to back. Body bytes are counted, not
    kept: the client must cost little CPU, since it shares the machine with the server."""

    def __init__(
        self,
        request: bytes,
        stop_at: float,
        latencies: list[float],
        errors: list[str],
        done: asyncio.Future[int],
    ) -> None:
        self.request = request
        self.stop_at = stop_at
        self.latencies = latencies
        self.errors = errors
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.remaining = -1  # body bytes still to come; -1 while reading the head
        self.body_bytes = 0  # of the last response
        self.began = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        if time.perf_counter() >= self.stop_at:
            self.transport.close()
            return
        self.head, self.remaining = b"", -1
        self.began = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.remaining < 0:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, rest = self.head[:end], len(self.head) - end - 4
            status = int(head.split(b" ", 2)[1])
            if status != 200:
                self.errors.append(f"status {status}")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            self.remaining = length - rest
            self.body_bytes = length
        else:
            self.remaining -= len(data)
        if self.remaining <= 0:
            self.latencies.append(time.perf_counter() - self.began)
            self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.body_bytes)


async def client(
    port: int,
    path: str,
    stop_at: float,
    latencies: list[float],
    errors: list[str],
    accept_encoding: str | None,
) -> int:
    """Run one connection until `stop_at`; returns the body size of its last response."""
    loop = asyncio.get_running_loop()
    extra = f"Accept-Encoding: {accept_encoding}\r\n" if accept_encoding else ""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n{extra}\r\n".encode()
    done: asyncio.Future[int] = loop.create_future()
    await loop.create_connection(
        lambda: _Client(request, stop_at, latencies, errors, done), "127.0.0.1", port
    )
    return await done


async def load(
    port: int, path: str, clients: int, seconds: float, accept_encoding: str | None = None
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    began = time.perf_counter()
    stop_at = began + seconds
    sizes = await asyncio.gather(
        *(client(port, path, stop_at, latencies, errors, accept_encoding) for _ in range(clients))
    )
    elapsed = time.perf_counter() - began
    latencies.sort()

    def q(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    return {
        "requests": len(latencies),
        "errors": len(errors),
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": q(0.50),
        "p95_ms": q(0.95),
        "p99_ms": q(0.99),
        "max_ms": round(latencies[-1] * 1000, 2),
        "mean_ms": round(sum(latencies) / len(latencies) * 1000, 2),
        "body_bytes": max(sizes),
    }


def progress_writer(db: Path, stop: threading.Event, every: float) -> None:
    """Commit a progress update to one attempt `every` seconds, as a running job's miner would."""
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    attempt = conn.execute("SELECT MAX(id) FROM attempts").fetchone()[0]
    n = 0
    while not stop.wait(every):
        n += 1
        conn.execute(
            "UPDATE attempts SET progress=?, message=? WHERE id=?",
            (100.0 - n % 2, f"tick {n}", attempt),
        )
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument(
        "--ccspec", default=None, help="ccspec executable (default: beside this Python)"
    )
    parser.add_argument(
        "--no-changing", action="store_true", help="skip the scenario with updates during the load"
    )
    parser.add_argument("--json", default=str(HERE / "results" / "api.json"))
    args = parser.parse_args()

    ccspec = args.ccspec or default_ccspec()
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ccspec-api-bench-") as tmp:
        folder = Path(tmp)
        (folder / ".git").mkdir()
        (folder / "specs").mkdir()
        (folder / "specs" / "layered.yaml").write_text(spec_text(args.jobs, args.width))
        began = time.perf_counter()
        applied = subprocess.run(
            [ccspec, "apply", "specs/", "-j", "2"], cwd=folder, capture_output=True, text=True
        )
        apply_s = time.perf_counter() - began
        if applied.returncode != 0:
            print(applied.stdout[-2000:], applied.stderr[-2000:], file=sys.stderr)
            return 1
        port = free_port()
        server = subprocess.Popen(
            [ccspec, "serve", "--port", str(port)],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        results: dict[str, Any] = {}
        try:
            wait_healthy(port, server)
            path = "/api/workflows/layered"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as r:
                jobs_seen = len(json.loads(r.read())["jobs"])
            asyncio.run(load(port, path, args.clients, args.warmup))
            results["steady"] = asyncio.run(load(port, path, args.clients, args.seconds))
            results["steady, gzip"] = asyncio.run(
                load(port, path, args.clients, args.seconds, "gzip")
            )
            if not args.no_changing:
                stop = threading.Event()
                thread = threading.Thread(
                    target=progress_writer, args=(folder / ".ccspec" / "state.db", stop, 0.25)
                )
                thread.start()
                try:
                    results["changing"] = asyncio.run(load(port, path, args.clients, args.seconds))
                finally:
                    stop.set()
                    thread.join()
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True
    ).stdout.strip()
    document = {
        "environment": {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
            "load_average_at_start": list(load_at_start),
            "python": platform.python_version(),
            "ccspec": [ccspec, version([ccspec, "--version"]), commit],
        },
        "setup": {
            "jobs": args.jobs,
            "jobs_in_response": jobs_seen,
            "clients": args.clients,
            "seconds": args.seconds,
            "warmup_seconds": args.warmup,
            "request": "GET /api/workflows/layered",
            "apply_seconds": round(apply_s, 2),
            "server": "ccspec serve --port PORT (defaults: 127.0.0.1, read-only, no access log)",
        },
        "target": {
            "p99_ms_at_most": TARGET_P99_MS,
            "met": results["steady"]["p99_ms"] <= TARGET_P99_MS,
        },
        "results": results,
    }
    print(
        f"{args.jobs} jobs, {args.clients} clients, {args.seconds:.0f} s each (load average at start "
        f"{load_at_start[0]:.2f}):"
    )
    print("| scenario | requests/s | p50 ms | p95 ms | p99 ms | max ms | errors | body bytes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['requests_per_s']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['max_ms']} | "
            f"{r['errors']} | {r['body_bytes']:,} |"
        )
    print(
        f"target p99 <= {TARGET_P99_MS:.0f} ms (steady): {'met' if document['target']['met'] else 'MISSED'}"
    )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0 if all(r["errors"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
