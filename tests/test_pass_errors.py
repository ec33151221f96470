"""`ccspec.report.pass_errors`: a failed reconcile pass in a status file, and its removal."""

from __future__ import annotations

import yaml

from ccspec.report.pass_errors import OPENING, PHASE, pass_error_line, with_pass_error
from ccspec.report.status import JobStatus, render_status, status_document
from ccspec.states import JobState

LINE = pass_error_line("OperationalError: unable to open database file", 1_780_000_000.0)


def _written(*errors: str) -> str:
    jobs = [
        JobStatus("a", JobState.SUCCEEDED, "local", 1, "sha256:1", 1.0, 2.0, 0, 100.0, "done"),
        JobStatus(
            "b",
            JobState.FAILED,
            "local",
            2,
            "sha256:2",
            3.0,
            4.0,
            1,
            None,
            None,
            "exit 1",
            {"rows": 3, "jobs:": "x"},
        ),
    ]
    return render_status(status_document("flow", jobs, list(errors)))


def test_the_line_names_the_error_and_when_it_began() -> None:
    assert LINE.startswith(OPENING)
    assert (
        "since 2026-05-28T20:26:40Z" in LINE
        and "OperationalError: unable to open database file" in LINE
    )


def test_no_status_file_yet_gets_one_with_the_error() -> None:
    doc = yaml.safe_load(with_pass_error(None, "flow", LINE))
    assert doc == {"workflow": "flow", "phase": PHASE, "counts": {}, "errors": [LINE], "jobs": {}}


def test_the_error_goes_in_and_out_leaving_the_jobs_as_they_were() -> None:
    before = _written()
    failing = with_pass_error(before, "flow", LINE)
    doc = yaml.safe_load(failing)
    assert doc["phase"] == PHASE and doc["errors"] == [LINE]
    assert doc["jobs"] == yaml.safe_load(before)["jobs"]
    assert failing.split("\njobs:")[1] == before.split("\njobs:")[1]  # byte for byte
    assert with_pass_error(failing, "flow", LINE) == failing  # the same error again: no change
    # recovered: the file as the run wrote it
    assert with_pass_error(failing, "flow", None) == before


def test_validation_errors_stay_and_the_phase_returns_to_invalid() -> None:
    invalid = _written("specs/flow.yaml:3:5: unknown job 'nope'")
    failing = with_pass_error(invalid, "flow", LINE)
    doc = yaml.safe_load(failing)
    assert doc["phase"] == PHASE and doc["errors"] == [
        "specs/flow.yaml:3:5: unknown job 'nope'",
        LINE,
    ]
    assert with_pass_error(failing, "flow", None) == invalid


def test_a_newer_error_replaces_the_older_one() -> None:
    newer = pass_error_line("sqlite3.OperationalError: database is locked", 1_780_000_100.0)
    doc = yaml.safe_load(with_pass_error(with_pass_error(_written(), "flow", LINE), "flow", newer))
    assert doc["errors"] == [newer]


def test_a_file_that_is_not_a_status_file_is_replaced() -> None:
    for text in ("", "{{{ not yaml", "jobs: [1, 2]\n", "just: words\n"):
        doc = yaml.safe_load(with_pass_error(text, "flow", LINE))
        assert doc["phase"] == PHASE and doc["errors"] == [LINE] and doc["workflow"] == "flow"
