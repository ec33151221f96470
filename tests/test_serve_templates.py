"""`ccspec serve --allow-write` against uploads whose templates loop for long: the template
limits hold in the server's worker threads, one slow upload holds up no other write, and
SIGTERM stops the server within seconds. A real server process (tests/serving.py)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving import Server, make_repo, start_server

TOKEN = "t0ken-for-template-limits"

# The spec from the report: two nested loops of 99,999 items (10^10 steps).
NESTED = """\
version: 1
name: nested
jobs:
  spin:
    run: "{% for a in 'x' * 99999 %}{% for b in 'x' * 99999 %}{% endfor %}{% endfor %}echo done"
"""

# Legal but slow: each template stays just under the step limit (998,001 loop items), and
# 200 of them take far longer than the deadline for all of one upload's templates.
SLOW = "version: 1\nname: slow\njobs:\n" + "".join(
    f'  j{i}:\n    run: "{{% for a in range(999) %}}{{% for b in range(999) %}}{{% endfor %}}{{% endfor %}}echo {i}"\n'
    for i in range(200)
)


def quick(name: str) -> str:
    return f"version: 1\nname: {name}\njobs:\n  hello: {{run: echo hello}}\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = start_server(make_repo(tmp_path), "--allow-write", token=TOKEN)
    yield server
    if server.proc.poll() is None:
        server.stop()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def post_in_background(server: Server, text: str) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def post() -> None:
        try:
            with server.client() as http:
                outcome.append(http.post("/api/workflows", content=text, timeout=120))
        except httpx.HTTPError as exc:  # the server stopped under it
            outcome.append(exc)

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread, outcome


def test_a_nested_loop_upload_is_refused_with_a_diagnostic(server: Server) -> None:
    with server.client() as http:
        started = time.monotonic()
        refused = http.post("/api/workflows", content=NESTED)
        took = time.monotonic() - started
        after = http.post("/api/workflows", content=quick("after"))
    assert refused.status_code == 422 and took < 10, (refused.status_code, took)
    (problem,) = refused.json()["problems"]
    assert problem["code"] == "template-sandbox" and problem["line"] == 5 and problem["col"] == 10
    assert (
        "exceeded 1,000,000 steps" in problem["text"]
        and "field 'run' of job 'spin'" in problem["text"]
    )
    assert problem["text"].startswith("specs/nested.yaml:5:10: ")
    assert after.status_code == 201 and not (server.repo / "specs" / "nested.yaml").exists()


def test_a_slow_upload_holds_up_no_other_write_and_sigterm_stops_the_server(server: Server) -> None:
    before = cpu_seconds(server.proc.pid)
    thread, outcome = post_in_background(server, SLOW)
    deadline = time.monotonic() + 30
    while cpu_seconds(server.proc.pid) < before + 0.5:  # the slow upload is being validated
        assert time.monotonic() < deadline and not outcome, outcome
        time.sleep(0.02)

    with server.client() as http:
        started = time.monotonic()
        written = http.post("/api/workflows", content=quick("meanwhile"))
        took = time.monotonic() - started
    assert written.status_code == 201 and took < 3, (written.status_code, took)
    assert not outcome, "the slow upload should still be under validation"

    started = time.monotonic()
    server.stop()  # SIGTERM, then SIGKILL after 15 s
    stopped = time.monotonic() - started
    assert stopped < 5, f"SIGTERM took {stopped:.1f} s"
    thread.join(timeout=10)
    assert not (server.repo / "specs" / "slow.yaml").exists()


def test_edits_racing_on_one_spec_are_all_kept(server: Server) -> None:
    """Edits are validated side by side, outside the write lock; one that finds the file
    changed when it comes to write is made again on the new text, so none is lost."""
    busy = "{% for a in range(700) %}{% for b in range(700) %}{% endfor %}{% endfor %}echo"
    with server.client() as http:
        spec = f'version: 1\nname: race\njobs:\n  base: {{run: "{busy}"}}\n'
        assert http.post("/api/workflows", content=spec).status_code == 201
    results: dict[str, int] = {}

    def add(name: str) -> None:
        with server.client() as http:
            body = {"name": name, "job": {"run": f"echo {name}", "needs": ["base"]}}
            results[name] = http.post("/api/workflows/race/jobs", json=body).status_code

    threads = [threading.Thread(target=add, args=(f"j{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == {f"j{i}": 200 for i in range(4)}, results
    text = (server.repo / "specs" / "race.yaml").read_text()
    assert all(f"echo j{i}" in text for i in range(4)), text
