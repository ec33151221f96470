"""What apply prints when stdout is not a terminal (ccspec.console): the plan, then one line
per event, gathered and written together before the engine sleeps, on a tick once
LINES_EVERY has passed, and at the end. Real JobView records and the real stdout (capfd)."""

from __future__ import annotations

import time

import pytest

from ccspec.console import LINES_EVERY, _lines
from ccspec.engine import JobView
from ccspec.planner import Action
from ccspec.states import JobState


def _view(name: str, state: JobState) -> JobView:
    return JobView(name, name, "local", state, Action.CREATE, attempt=1, started=time.time())


def test_lines_wait_for_the_engine_to_sleep_then_come_in_order(
    capfd: pytest.CaptureFixture[str],
) -> None:
    report = _lines("flow")
    report("started", _view("a", JobState.RUNNING))
    report("started", _view("b", JobState.RUNNING))
    report("tick", None)  # less than LINES_EVERY after the first line: still gathered
    assert capfd.readouterr().out == ""
    report("idle", None)  # the engine is about to wait: out they go
    out = capfd.readouterr().out.splitlines()
    assert [line.split(" ", 1)[1] for line in out] == [
        "flow/a started (attempt 1 on local)",
        "flow/b started (attempt 1 on local)",
    ]
    report("succeeded", _view("a", JobState.SUCCEEDED))
    time.sleep(LINES_EVERY)
    report("tick", None)  # a busy engine that never sleeps still prints every LINES_EVERY
    assert capfd.readouterr().out.split(" ", 1)[1].startswith("flow/a succeeded after")
    report("failed", _view("b", JobState.FAILED))
    report("finished", None)
    assert "flow/b failed" in capfd.readouterr().out
    report("idle", None)
    assert capfd.readouterr().out == ""  # nothing twice


def test_lines_through_a_callback_arrive_at_once() -> None:
    said: list[str] = []
    report = _lines("flow", said.append)
    report("started", _view("a", JobState.RUNNING))
    assert len(said) == 1 and said[0].endswith("flow/a started (attempt 1 on local)")
