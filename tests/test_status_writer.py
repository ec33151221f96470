"""The status file and picture written while a run goes on (ccspec.report.writer): paced by
what a write costs, the first one an interval after the start, files compared in memory
with what was written last. Real files and the writer's real thread; the jobs are the
engine's JobView records, changed by hand as an engine would."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

import ccspec
from ccspec.engine import JobView
from ccspec.planner import Action
from ccspec.report.status import KeptFile
from ccspec.report.writer import COST_PER_JOB, COST_SHARE, STATUS_EVERY, StatusWriter
from ccspec.states import JobState


def _writer(folder: Path, jobs: int, svg: bool = False) -> tuple[StatusWriter, dict[str, JobView]]:
    body = "".join(f"  j{i}: {{run: 'true'}}\n" for i in range(jobs))
    (folder / "flow.yaml").write_text(f"version: 1\njobs:\n{body}")
    workflow = ccspec.load(folder / "flow.yaml")
    views = {j: JobView(j, j, "local", JobState.PENDING, Action.CREATE) for j in workflow.jobs}
    return StatusWriter(workflow, lambda: views, lambda j: (), svg=svg), views


def _state(folder: Path, job: str) -> str:
    return yaml.safe_load((folder / "flow.status.yaml").read_text())["jobs"][job]["state"]


def test_the_first_write_comes_one_interval_after_the_start(tmp_path: Path) -> None:
    writer, views = _writer(tmp_path, 3)
    try:
        views["j0"].state = JobState.RUNNING
        writer("started", views["j0"])
        time.sleep(0.1)
        assert not (
            tmp_path / "flow.status.yaml"
        ).exists()  # a run this short needs only its last write
        time.sleep(STATUS_EVERY)
        writer("progress", views["j0"])
        end = time.monotonic() + 10
        while not (tmp_path / "flow.status.yaml").exists():
            assert time.monotonic() < end, "no write after the first interval"
            time.sleep(0.02)
        assert _state(tmp_path, "j0") == "running"
        views["j0"].state = JobState.SUCCEEDED
        writer("finished", None)  # the end of a run is written at once
    finally:
        writer.close()
    assert _state(tmp_path, "j0") == "succeeded"


def test_a_costly_write_spaces_out_the_next_ones(tmp_path: Path) -> None:
    for name in ("small", "big"):
        (tmp_path / name).mkdir()
    small, _ = _writer(tmp_path / "small", 3)
    big, _ = _writer(tmp_path / "big", 6000)
    # before any write, the time to the first one is estimated from the number of jobs
    assert small.interval == STATUS_EVERY
    assert big.interval == COST_SHARE * COST_PER_JOB * 6000 > STATUS_EVERY
    try:
        # the small one twice: its first write starts its thread
        for writer, count in (
            (small, 1),
            (small, 2),
            (big, 1),
        ):
            writer.write()
            _written(writer, count)
    finally:
        small.close()
        big.close()
    # then measured: the interval follows what the last write cost
    for writer in (small, big):
        assert writer.last_cost > 0
        assert writer.interval == max(STATUS_EVERY, COST_SHARE * writer.last_cost)
    assert big.last_cost > small.last_cost  # 6,000 jobs to snapshot and render against 3
    assert yaml.safe_load((tmp_path / "big" / "flow.status.yaml").read_text())["counts"] == {
        "pending": 6000
    }


def _written(writer: StatusWriter, count: int, timeout: float = 30) -> None:
    """Wait until the writer's thread has written `count` snapshots."""
    end = time.monotonic() + timeout
    while writer.writes < count:
        assert time.monotonic() < end, "the write did not happen"
        time.sleep(0.01)


def test_a_kept_file_is_rewritten_only_when_its_content_changes(tmp_path: Path) -> None:
    path = tmp_path / "flow.status.yaml"
    path.write_text("state: old\n")
    before = path.stat().st_ino
    kept = KeptFile(path)
    assert not kept.write("state: old\n")  # what a previous run left: compared on disk, kept
    assert path.stat().st_ino == before
    assert kept.write("state: new\n")
    replaced = path.stat().st_ino
    # atomically: a new file renamed over
    assert replaced != before and path.read_text() == "state: new\n"
    assert not kept.write(b"state: new\n")
    assert path.stat().st_ino == replaced
    assert kept.write("state: newer\n") and path.read_text() == "state: newer\n"
    assert not list(tmp_path.glob(".flow.status.yaml.*"))  # no temporary file left behind
