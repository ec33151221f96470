"""`ccspec serve` turns any `CcspecError` a route lets escape into a JSON `ErrorBody` with the
status its class deserves (ccspec.server.errors), in one exception handler: never a bare
"Internal Server Error"."""

from __future__ import annotations

import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ccspec.errors import (
    CcspecError,
    Diagnostic,
    HostUnreachable,
    LeaseHeld,
    LeaseLost,
    SpecInvalid,
    StateBusy,
    StateFolderUnwritable,
    UsageError,
)
from ccspec.server.errors import NotFound, Unauthorized, failure, status_of
from ccspec.server.models import ErrorBody
from tests.serving import DEMO, ccspec, make_repo, start_server


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("no workflow 'x'"), 404),
        (Unauthorized("no token"), 401),
        (UsageError("bad option"), 400),
        (LeaseHeld("demo", 42, "host", 0.0), 409),
        (SpecInvalid([Diagnostic("a.yaml", 3, 1, "unknown key 'x'", code="unknown-key")]), 422),
        (StateBusy(Path("state.db"), 30.0, sqlite3.OperationalError("database is locked")), 503),
        (StateFolderUnwritable(".ccspec", ".ccspec is full: free some space"), 503),
        (HostUnreachable("connection refused: h:22"), 503),
        (LeaseLost("demo", None), 500),
        (CcspecError("state.db was written by a newer ccspec"), 500),
    ],
)
def test_each_error_gets_its_status_and_an_error_body(error: CcspecError, status: int) -> None:
    response = failure(error)
    assert status_of(error) == status == response.status_code
    body = ErrorBody.model_validate_json(bytes(response.body))
    if isinstance(error, SpecInvalid):  # every problem, as `ccspec validate` gives them
        assert body.problems[0].text == "a.yaml:3:1: unknown key 'x' [unknown-key]"
        assert body.detail == "the spec would be invalid: 1 problem"
    else:
        assert body.detail == str(error)


def test_unauthorized_keeps_its_challenge_header() -> None:
    assert failure(Unauthorized("no token")).headers["www-authenticate"] == 'Bearer realm="ccspec"'


def test_a_state_error_inside_a_route_is_a_json_error_body(tmp_path: Path) -> None:
    """A state database a newer ccspec wrote (schema 99 here, set after the server started)
    fails each reader thread that opens it: the answer is a 500 whose JSON body says why."""
    repo = make_repo(tmp_path / "repo", demo=DEMO)
    ccspec(repo, "apply", "specs/")
    server = start_server(repo)
    try:
        with sqlite3.connect(repo / ".ccspec" / "state.db") as db:
            db.execute("PRAGMA user_version=99")
        # Worker threads that opened the database before keep reading it; requests at once
        # (each for a new job, so none is cached) make the server start fresh threads.
        failures: list[httpx.Response] = []
        with server.client() as client, ThreadPoolExecutor(16) as pool:
            for burst in range(40):
                urls = [f"/api/workflows/demo/jobs/j{burst}-{i}" for i in range(16)]
                for response in pool.map(client.get, urls):
                    assert response.status_code in (404, 500), response.text
                    if response.status_code == 500:
                        failures.append(response)
                if failures:
                    break
    finally:
        server.stop()
    assert failures, "no request was answered by a fresh reader thread"
    for response in failures:
        assert response.headers["content-type"] == "application/json"
        body = ErrorBody.model_validate(json.loads(response.text))
        assert "was written by a newer ccspec (schema 99); upgrade ccspec" in body.detail


def test_a_wrong_method_is_answered_with_every_allowed_one(tmp_path: Path) -> None:
    """405s name the methods of every route of the path, whichever router declares them."""
    repo = make_repo(tmp_path / "repo", demo=DEMO)
    server = start_server(repo, "--allow-write", token="t0ken-0123456789abcdef")
    try:
        with server.client() as client:
            answers = {
                path: client.request("PUT", path)
                for path in ("/healthz", "/api/workflows", "/api/workflows/demo/jobs/a")
            }
    finally:
        server.stop()
    assert {path: r.headers.get("allow") for path, r in answers.items()} == {
        "/healthz": "GET, HEAD",
        "/api/workflows": "GET, HEAD, POST",
        "/api/workflows/demo/jobs/a": "DELETE, GET, HEAD",
    }
    for response in answers.values():
        assert response.status_code == 405
        assert ErrorBody.model_validate_json(response.text).detail == "Method Not Allowed"
