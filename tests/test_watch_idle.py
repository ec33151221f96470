"""`ccspec watch` when nothing changes: a resync of a converged spec compares a stamp of what
its plan read (ccspec.reconcile.stamp) instead of planning, writes nothing, and still sees a
file that changed without an event. Counted in /metrics under `watch --serve`."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

from tests.test_apply import wait_for
from tests.test_watch import Watch, put


def _metric(url: str, line_start: str) -> int:
    """The value of the /metrics line that starts with `line_start` (-1: not there, or the
    server not listening yet)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return -1
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return int(float(line.rsplit(" ", 1)[1]))
    return -1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _state_files(repo: Path) -> dict[str, tuple[int, int]]:
    folder = repo / ".ccspec"
    return {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.iterdir()
        if p.name.startswith("state.db")
    }


UNCHANGED = 'ccspec_reconcile_passes_total{workflow="flow",outcome="unchanged"}'


def test_an_idle_resync_plans_nothing_writes_nothing_and_still_sees_a_changed_script(
    repo: Path,
) -> None:
    specs = repo / "specs"
    specs.mkdir()
    (repo / "tools").mkdir()
    (repo / "tools" / "job.sh").write_text("echo v1 >> trace\n")
    put(specs / "flow.yaml", "version: 1\njobs:\n  job: {script: ../tools/job.sh, workdir: ..}\n")
    port = _free_port()
    metrics = f"http://127.0.0.1:{port}/metrics"
    watch = Watch(repo, "--interval", "0.3s", "--serve", "--port", str(port))
    try:
        watch.wait("flow/job succeeded")
        # once the files it wrote are old enough for their stat to be trusted (RACY)
        wait_for(lambda: _metric(metrics, UNCHANGED) >= 2, timeout=30)
        before = _state_files(repo)
        seen = _metric(metrics, UNCHANGED)
        wait_for(lambda: _metric(metrics, UNCHANGED) >= seen + 3, timeout=30)
        assert _state_files(repo) == before  # no lease taken, nothing recorded
        # the script outside the watched folder changes: no event, the stamp differs
        (repo / "tools" / "job.sh").write_text("echo v2 >> trace\n")
        watch.wait("flow/job succeeded", count=2, timeout=30)
    finally:
        watch.stop()
    assert (repo / "trace").read_text().split() == ["v1", "v2"]


def test_metrics_count_planned_passes_their_durations_and_the_queue(repo: Path) -> None:
    specs = repo / "specs"
    specs.mkdir()
    put(specs / "flow.yaml", "version: 1\njobs:\n  a: {run: 'true'}\n")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    watch = Watch(repo, "--interval", "1h", "--serve", "--port", str(port))
    try:
        watch.wait("flow/a succeeded")
        planned = 'ccspec_reconcile_passes_total{workflow="flow",outcome="planned"}'
        wait_for(lambda: _metric(base + "/metrics", planned) >= 1, timeout=20)
        with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        watch.stop()
    count = _metric_in(text, 'ccspec_reconcile_pass_duration_seconds_count{outcome="planned"}')
    inf = _metric_in(
        text, 'ccspec_reconcile_pass_duration_seconds_bucket{outcome="planned",le="+Inf"}'
    )
    assert count >= 1 and inf == count
    assert _metric_in(text, "ccspec_reconcile_queue_depth") == 0
    assert _metric_in(text, "ccspec_reconcile_passes_running") == 0
    assert "# TYPE ccspec_reconcile_pass_duration_seconds histogram" in text


def _metric_in(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {line_start} in:\n{text}")
