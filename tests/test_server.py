"""`ccspec serve` end to end: a real server process over a state store written by real
`ccspec apply` runs. Reads, logs, events, the graph, the spec export, metrics, access rules,
secrets, and the write endpoints (which edit spec files round-trip)."""

from __future__ import annotations

import gzip
import html
import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from ccspec.report.graph import COLOURS
from ccspec.schema import schema
from ccspec.server.models import ErrorBody, JobDetail, WorkflowDetail, WorkflowList
from tests.serving import DEMO, SLOW, Server, ccspec, make_repo, sse_events, start_server

SECRET = "s3cr3t-t0ken-value"
TOKEN = "test-token-0123456789"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo workflow applied for real (b fails, c is skipped), served read-only."""
    repo = make_repo(tmp_path_factory.mktemp("served"), demo=DEMO, slow=SLOW)
    applied = ccspec(repo, "apply", "specs/demo.yaml")
    assert applied.returncode == 1, applied.stdout + applied.stderr  # b fails on purpose
    server = start_server(repo)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def writable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    repo = make_repo(tmp_path_factory.mktemp("writable"), demo=DEMO)
    server = start_server(repo, "--allow-write", "--max-upload", "64K", token=TOKEN)
    yield server
    server.stop()


def test_workflows_and_one_workflow(demo: Server) -> None:
    with demo.client() as http:
        listed = WorkflowList.model_validate_json(http.get("/api/workflows").content)
        detail = http.get("/api/workflows/demo")
    assert detail.status_code == 200 and detail.headers["content-type"] == "application/json"
    by_name = {w.name: w for w in listed.workflows}
    assert by_name["demo"].phase == "failed" and by_name["demo"].applied
    assert (
        by_name["demo"].counts == {"failed": 1, "skipped": 1, "succeeded": 4}
        and by_name["demo"].total == 6
    )
    # under specs/, never applied
    assert by_name["slow"].phase == "pending" and not by_name["slow"].applied
    w = WorkflowDetail.model_validate_json(detail.content)
    jobs = {j.id: j for j in w.jobs}
    # the spec's order
    assert [j.id for j in w.jobs] == [
        "a",
        "d",
        "train-mlp",
        "train-cnn",
        "b",
        "c",
    ]
    assert {k: j.state.value for k, j in jobs.items()} == {
        "a": "succeeded",
        "b": "failed",
        "c": "skipped",
        "d": "succeeded",
        "train-mlp": "succeeded",
        "train-cnn": "succeeded",
    }
    a, b, c = jobs["a"], jobs["b"], jobs["c"]
    assert (
        a.progress == 100
        and a.outputs == {"key": "***", "rows": 42}
        and a.message == "half way with ***"
    )
    assert a.fingerprint and a.fingerprint.startswith("sha256:")
    assert (
        a.started is not None
        and a.finished is not None
        and a.seconds is not None
        and a.exit_code == 0
    )
    assert b.exit_code == 3 and b.needs == ["a"] and b.attempt == 1
    assert c.reason and "b" in c.reason and c.attempt == 0
    assert jobs["train-cnn"].outputs == {"model": "cnn"} and jobs["train-cnn"].name == "train"
    assert w.vars == {"token": "***", "rows": 3} and w.description == "a demo for the API tests"
    assert SECRET not in detail.text


def test_one_job_with_its_attempts(demo: Server) -> None:
    with demo.client() as http:
        job = JobDetail.model_validate_json(http.get("/api/workflows/demo/jobs/b").content)
        done = JobDetail.model_validate_json(http.get("/api/workflows/demo/jobs/a").content)
        missing = http.get("/api/workflows/demo/jobs/zzz")
    assert job.workflow == "demo" and job.state.value == "failed" and len(job.attempts) == 1
    assert job.fingerprint and job.succeeded_fingerprint is None  # it never succeeded
    assert done.succeeded_fingerprint == done.fingerprint and done.attempts[0].outputs == {
        "key": "***",
        "rows": 42,
    }
    assert (
        job.attempts[0].exit_code == 3 and job.attempts[0].handle and job.log == job.attempts[0].log
    )
    assert (
        set(job.fingerprint_parts) >= {"definition", "upstream"}
        and job.fingerprint_parts["definition"]
    )
    assert (
        missing.status_code == 404
        and "zzz" in ErrorBody.model_validate_json(missing.content).detail
    )


def test_log_whole_tail_ranges_and_secrets(demo: Server) -> None:
    with demo.client() as http:
        whole = http.get("/api/workflows/demo/jobs/a/log")
        tail = http.get("/api/workflows/demo/jobs/a/log", params={"tail": 1})
        middle = http.get("/api/workflows/demo/jobs/a/log", params={"offset": 6, "length": 8})
        ranged = http.get("/api/workflows/demo/jobs/a/log", headers={"Range": "bytes=0-9"})
        suffix = http.get("/api/workflows/demo/jobs/a/log", headers={"Range": "bytes=-23"})
        beyond = http.get("/api/workflows/demo/jobs/a/log", headers={"Range": "bytes=100000-"})
        no_attempt = http.get("/api/workflows/demo/jobs/a/log", params={"attempt": 7})
        never_ran = http.get("/api/workflows/demo/jobs/c/log")
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    text = whole.text
    stars = "*" * len(SECRET)
    assert SECRET not in text and f"using {stars} here" in text  # masked, the length kept
    size = int(whole.headers["x-log-size"])
    assert size == len(whole.content) and whole.headers["x-attempt"] == "1"
    assert tail.text == "# ccspec output rows=42\n" and int(
        tail.headers["x-log-offset"]
    ) == size - len(tail.content)
    assert middle.content == whole.content[6:14]
    assert ranged.status_code == 206 and ranged.content == whole.content[:10]
    assert ranged.headers["content-range"] == f"bytes 0-9/{size}"
    assert suffix.status_code == 206 and suffix.content == whole.content[-23:]
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"
    assert no_attempt.status_code == 404 and never_ran.status_code == 404


def test_a_range_cut_through_a_secret_shows_no_part_of_it(demo: Server) -> None:
    with demo.client() as http:
        whole = http.get("/api/workflows/demo/jobs/a/log").content
        at = whole.index(b"using ") + len(b"using ") + 4  # inside the masked secret
        piece = http.get(
            "/api/workflows/demo/jobs/a/log", params={"offset": at, "length": 5}
        ).content
    assert piece == b"*****"


def test_graph_spec_and_schema(demo: Server) -> None:
    with demo.client() as http:
        svg = http.get("/api/workflows/demo/graph.svg")
        spec = http.get("/api/workflows/demo/spec")
        never_applied = http.get("/api/workflows/slow/spec")
        got_schema = http.get("/api/schema")
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert (
        "<svg" in svg.text
        and ">train-cnn<" in html.unescape(svg.text)
        and COLOURS["failed"] in svg.text
    )
    assert COLOURS["skipped"] in svg.text and COLOURS["succeeded"] in svg.text
    assert spec.headers["content-type"] == "application/yaml"
    assert SECRET not in spec.text and spec.text.startswith("# the demo workflow")
    exported = yaml.safe_load(spec.text)
    assert exported["vars"]["token"] == "***" and list(exported["jobs"]) == [
        "a",
        "b",
        "c",
        "d",
        "train",
    ]
    assert never_applied.status_code == 200 and "gate" in never_applied.text
    assert got_schema.json() == schema()


def test_events_backlog_resumes_after_last_event_id(demo: Server) -> None:
    with demo.client() as http:
        everything = list(
            sse_events(
                http.get(
                    "/api/events", params={"follow": "false", "workflow": "demo"}
                ).text.splitlines()
            )
        )
        ids = [int(e["id"]) for e in everything]
        later = list(
            sse_events(
                http.get(
                    "/api/events",
                    params={"follow": "false", "workflow": "demo"},
                    headers={"Last-Event-ID": str(ids[2])},
                ).text.splitlines()
            )
        )
    assert ids == sorted(ids) and len(ids) >= 12
    data = [json.loads(e["data"]) for e in everything]
    assert {(d["job"], d["state"]) for d in data} >= {
        ("a", "succeeded"),
        ("b", "failed"),
        ("c", "skipped"),
    }
    assert all(
        e["event"] == "job" and d["workflow"] == "demo"
        for e, d in zip(everything, data, strict=True)
    )
    assert [int(e["id"]) for e in later] == ids[3:]


def test_live_events_progress_and_a_followed_log(demo: Server) -> None:
    """A job that waits for a gate file: the event stream shows it start, report progress
    and succeed; a followed log streams until the job ends."""
    repo = demo.repo
    gate = repo / "specs" / "gate"
    gate.unlink(missing_ok=True)
    seen: list[dict[str, object]] = []
    followed: list[bytes] = []
    with (
        demo.client() as http,
        http.stream("GET", "/api/events", params={"workflow": "slow"}) as stream,
    ):
        assert stream.status_code == 200 and stream.headers["content-type"].startswith(
            "text/event-stream"
        )
        run = subprocess.Popen(
            [sys.executable, "-m", "ccspec", "apply", "specs/slow.yaml"],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        events = sse_events(stream.iter_lines())
        follower: threading.Thread | None = None
        try:
            for event in events:
                data = json.loads(event["data"])
                seen.append({"type": event["event"], "id": event.get("id"), **data})
                if event["event"] == "progress" and data["progress"] == 10 and follower is None:
                    assert data["message"] == "waiting for the gate" and "id" not in event

                    def follow() -> None:
                        with (
                            demo.client() as other,
                            other.stream(
                                "GET",
                                "/api/workflows/slow/jobs/wait/log",
                                params={"follow": "true"},
                            ) as log,
                        ):
                            for chunk in log.iter_bytes():
                                followed.append(chunk)

                    follower = threading.Thread(target=follow)
                    follower.start()
                    time.sleep(0.3)
                    gate.write_text("open")
                if data.get("state") == "succeeded":
                    break
        finally:
            gate.write_text("open")
            out, err = run.communicate(timeout=60)
    assert run.returncode == 0, out + err
    assert follower is not None
    follower.join(timeout=30)
    assert not follower.is_alive()
    states = [e["state"] for e in seen if e["type"] == "job"]
    assert (
        states[0] in ("queued", "launching", "pending")
        and "running" in states
        and states[-1] == "succeeded"
    )
    assert all(e["id"] is not None for e in seen if e["type"] == "job")
    log = b"".join(followed).decode()
    assert log.startswith("# ccspec progress=10") and log.endswith("passed the gate\n")


def test_health_and_metrics(demo: Server) -> None:
    with demo.client() as http:
        assert http.get("/healthz").json() == {
            "status": "ok",
            "version": "0.1.0",
            "writable": False,
        }
        http.get("/api/workflows/demo")
        http.get("/api/workflows/nope")
        text = http.get("/metrics").text
    assert 'ccspec_jobs{workflow="demo",state="failed"} 1' in text
    assert 'ccspec_jobs{workflow="demo",state="succeeded"} 4' in text
    assert (
        'ccspec_http_requests_total{method="GET",route="/api/workflows/{name}",status="200"}'
        in text
    )
    assert (
        'ccspec_http_requests_total{method="GET",route="/api/workflows/{name}",status="404"}'
        in text
    )
    assert (
        'ccspec_http_request_duration_seconds_bucket{method="GET",route="/api/workflows/{name}",le="+Inf"}'
        in text
    )
    assert "# TYPE ccspec_http_request_duration_seconds histogram" in text


@pytest.mark.parametrize(
    "path",
    [
        "/api/workflows/nope",
        "/api/workflows/Demo",
        "/api/workflows/..%2F..%2Fetc",
        "/api/workflows/%2e%2e",
        "/api/workflows/demo/jobs/..",
        "/api/workflows/demo/jobs/%2e%2e%2fetc%2fpasswd/log",
        "/api/workflows/demo/jobs/a%00/log",
        "/api/workflows/" + "x" * 100,
        "/api/workflows/demo/spec/../../../etc",
    ],
)
def test_names_cannot_escape(demo: Server, path: str) -> None:
    connection = HTTPConnection(urlsplit(demo.url).netloc, timeout=30)  # sends the path as written
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status in (404, 422), body
    assert b"root:" not in body
    ErrorBody.model_validate_json(body)


def test_caching_304_and_gzip(demo: Server) -> None:
    with demo.client() as http:
        first = http.get("/api/workflows/demo", headers={"Accept-Encoding": "identity"})
        again = http.get(
            "/api/workflows/demo",
            headers={"If-None-Match": first.headers["etag"], "Accept-Encoding": "identity"},
        )
        raw = http.get("/api/workflows/demo", headers={"Accept-Encoding": "gzip"}, extensions={})
    assert again.status_code == 304 and again.content == b""
    assert raw.headers["content-encoding"] == "gzip" and raw.headers["vary"] == "Accept-Encoding"
    assert raw.json() == first.json()  # httpx decodes it
    assert raw.headers["etag"] != first.headers["etag"]
    assert gzip.decompress(gzip.compress(first.content)) == first.content


def test_safe_headers_and_dashboard_csp(demo: Server) -> None:
    with demo.client() as http:
        api = http.get("/api/workflows")
        page = http.get("/workflows/demo")
    assert (
        api.headers["x-content-type-options"] == "nosniff"
        and api.headers["x-frame-options"] == "DENY"
    )
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.status_code == 200 and 'data-job="b"' in page.text and SECRET not in page.text


def test_read_only_server_refuses_writes(demo: Server) -> None:
    with demo.client() as http:
        upload = http.post(
            "/api/workflows", content=b"version: 1\njobs: {x: {run: echo}}\n", params={"name": "x"}
        )
        delete = http.delete("/api/workflows/demo/jobs/a")
        need = http.post("/api/workflows/demo/needs", json={"job": "d", "needs": "a"})
    assert [upload.status_code, delete.status_code, need.status_code] == [403, 403, 403]
    assert "--allow-write" in upload.json()["detail"]
    assert "- a" not in (demo.repo / "specs" / "demo.yaml").read_text().split("d:")[-1]


# -- access and writes (a server with --allow-write and a token) ---------------------------


def test_writes_want_the_token(writable: Server) -> None:
    body = b"version: 1\nname: t1\njobs: {x: {run: echo}}\n"
    with writable.client(auth=False) as anonymous:
        none = anonymous.post("/api/workflows", content=body)
        wrong = anonymous.post(
            "/api/workflows", content=body, headers={"Authorization": "Bearer nope"}
        )
        reads = anonymous.get("/api/workflows")
        health = anonymous.get("/healthz")
        docs = anonymous.get("/openapi.json")
    assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401 and reads.status_code == 401  # with a token, reads want it too
    assert health.status_code == 200 and docs.status_code == 200
    assert not (writable.repo / "specs" / "t1.yaml").exists()


def test_dashboard_login_link_sets_a_read_only_session(writable: Server) -> None:
    with writable.client(auth=False, follow_redirects=False) as browser:
        assert browser.get("/").status_code == 401 and "wants a token" in browser.get("/").text
        bad = browser.get("/", params={"token": "wrong"})
        link = browser.get("/", params={"token": TOKEN})
        assert bad.status_code == 401
        assert link.status_code == 303 and link.headers["location"] == "/"
        assert (
            "HttpOnly" in link.headers["set-cookie"]
            and "SameSite=Strict" in link.headers["set-cookie"]
        )
        assert TOKEN not in link.headers["set-cookie"]
        assert (
            browser.get("/").status_code == 200 and browser.get("/api/workflows").status_code == 200
        )
        csrf = browser.post(
            "/api/workflows", content=b"version: 1\nname: t2\njobs: {x: {run: echo}}\n"
        )
    assert csrf.status_code == 401  # a cookie never writes


def test_upload_then_conflict_then_replace(writable: Server) -> None:
    text = "# uploaded, with a comment\nversion: 1\nname: up1\njobs:\n  hello: {run: echo hello}\n"
    with writable.client() as http:
        created = http.post(
            "/api/workflows", content=text, headers={"Content-Type": "application/yaml"}
        )
        again = http.post("/api/workflows", content=text)
        replaced = http.post(
            "/api/workflows",
            content=text.replace("hello}", "hello again}"),
            params={"replace": "true"},
        )
        listed = http.get("/api/workflows").json()["workflows"]
        detail = http.get("/api/workflows/up1").json()
    assert created.status_code == 201 and created.json() == {
        "workflow": "up1",
        "spec": "up1.yaml",
        "created": True,
    }
    assert (
        again.status_code == 409 and replaced.status_code == 200 and not replaced.json()["created"]
    )
    assert (writable.repo / "specs" / "up1.yaml").read_text().endswith("echo hello again}\n")
    assert any(w["name"] == "up1" and not w["applied"] and w["phase"] == "pending" for w in listed)
    assert detail["jobs"] == [] and detail["planned"] == ["hello"]


def test_upload_named_by_query_and_name_checks(writable: Server) -> None:
    with writable.client() as http:
        named = http.post(
            "/api/workflows", content="version: 1\njobs: {x: {run: echo}}\n", params={"name": "up2"}
        )
        unnamed = http.post("/api/workflows", content="version: 1\njobs: {x: {run: echo}}\n")
        mismatch = http.post(
            "/api/workflows",
            content="version: 1\nname: other\njobs: {x: {run: echo}}\n",
            params={"name": "up3"},
        )
        escape = http.post(
            "/api/workflows",
            content="version: 1\njobs: {x: {run: echo}}\n",
            params={"name": "../x"},
        )
        binary = http.post("/api/workflows", content=b"\xff\xfe\x00", params={"name": "up4"})
    assert named.status_code == 201 and (writable.repo / "specs" / "up2.yaml").exists()
    assert unnamed.status_code == 422 and unnamed.json()["problems"][0]["code"] == "missing-name"
    assert mismatch.status_code == 422 and mismatch.json()["problems"][0]["code"] == "name-mismatch"
    assert escape.status_code == 422 and binary.status_code == 422
    assert (
        not (writable.repo / "x.yaml").exists()
        and not (writable.repo / "specs" / "up4.yaml").exists()
    )


def test_invalid_upload_gets_the_validate_messages(writable: Server, tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        version: 1
        name: bad
        jobs:
          train: {run: echo, neds: [x]}
          report: {run: echo, needs: [trian]}
        """)
    with writable.client() as http:
        response = http.post("/api/workflows", content=text)
    assert response.status_code == 422
    problems = [p["text"] for p in response.json()["problems"]]
    # the same file, where `ccspec validate` sees it
    check = make_repo(tmp_path / "check", bad=text)
    validated = ccspec(check, "validate", "-q", "specs/bad.yaml")
    assert validated.returncode == 1 and problems == validated.stdout.splitlines()
    assert any("[unknown-key]" in p for p in problems) and any(
        "[unknown-need]" in p for p in problems
    )
    assert not (writable.repo / "specs" / "bad.yaml").exists()


def test_upload_size_limit(writable: Server) -> None:
    big = "version: 1\nname: big\njobs:\n" + "".join(
        f"  j{i}: {{run: echo {i}}}\n" for i in range(4000)
    )
    assert len(big) > 64 * 1024
    with writable.client() as http:
        response = http.post("/api/workflows", content=big)
        streamed = http.post(
            "/api/workflows", content=iter([big.encode()[:40_000], big.encode()[40_000:]])
        )
    assert response.status_code == 413 and streamed.status_code == 413
    assert not (writable.repo / "specs" / "big.yaml").exists()


def test_edit_jobs_and_needs_round_trip(writable: Server) -> None:
    spec = writable.repo / "specs" / "demo.yaml"
    with writable.client() as http:
        added = http.post(
            "/api/workflows/demo/jobs",
            json={"name": "plot", "job": {"run": "echo plot", "needs": ["d"]}},
        )
        exists = http.post(
            "/api/workflows/demo/jobs", json={"name": "plot", "job": {"run": "echo"}}
        )
        text = spec.read_text()
        broken = http.post(
            "/api/workflows/demo/jobs",
            json={"name": "bad", "job": {"run": "echo", "needs": ["nope"]}},
        )
        two_kinds = http.post(
            "/api/workflows/demo/jobs", json={"name": "bad", "job": {"run": "x", "script": "y.py"}}
        )
        unchanged = spec.read_text()
        need = http.post("/api/workflows/demo/needs", json={"job": "plot", "needs": "a"})
        cycle = http.post("/api/workflows/demo/needs", json={"job": "a", "needs": "plot"})
        no_job = http.post("/api/workflows/demo/needs", json={"job": "zzz", "needs": "a"})
        removed = http.delete("/api/workflows/demo/jobs/b")
        gone = http.delete("/api/workflows/demo/jobs/b")
        other = http.post("/api/workflows/nope/jobs", json={"name": "x", "job": {"run": "echo"}})
    assert added.status_code == 200 and added.json() == {
        "workflow": "demo",
        "spec": "demo.yaml",
        "created": False,
    }
    assert exists.status_code == 409
    assert text.startswith("# the demo workflow") and text.index("train:") < text.index("plot:")
    assert broken.status_code == 422 and any(
        p["code"] == "unknown-need" for p in broken.json()["problems"]
    )
    assert two_kinds.status_code == 422 and unchanged == text
    assert need.status_code == 200 and cycle.status_code == 422 and "cycle" in cycle.text
    assert no_job.status_code == 404 and removed.status_code == 200 and gone.status_code == 404
    assert other.status_code == 404
    final = spec.read_text()
    assert final.startswith("# the demo workflow") and "b:" not in final and "exit 3" not in final
    jobs = yaml.safe_load(final)["jobs"]
    assert jobs["plot"] == {"run": "echo plot", "needs": ["d", "a"]} and not jobs["c"].get("needs")
    assert ccspec(writable.repo, "validate", "specs/demo.yaml").returncode == 0


def test_bound_elsewhere_without_a_token_warns_loudly(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, demo=DEMO)
    server = start_server(repo, host="0.0.0.0")
    warned = server.stop()
    assert "WITHOUT A TOKEN" in warned and "0.0.0.0" in warned
    quiet = start_server(repo, host="0.0.0.0", token=TOKEN)
    assert "WITHOUT A TOKEN" not in quiet.stop()


def test_stops_at_once_with_streams_open(tmp_path: Path) -> None:
    """Event streams and followed logs never end alone: stopping the server ends them."""
    repo = make_repo(tmp_path, slow=SLOW)
    server = start_server(repo)
    opened = threading.Event()

    def listen() -> None:
        with server.client() as http, http.stream("GET", "/api/events") as stream:
            opened.set()
            for _ in stream.iter_lines():
                pass

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert opened.wait(10)
    began = time.monotonic()
    server.proc.terminate()
    server.proc.communicate(timeout=30)
    assert time.monotonic() - began < 3
    listener.join(5)
    assert not listener.is_alive()


def test_the_api_gui_is_served_without_internet(writable: Server) -> None:
    """/docs and /redoc load their scripts from ccspec itself, not from a CDN (open even when
    the server wants a token)."""
    with writable.client(auth=False) as http:
        page = http.get("/docs")
        assert page.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in page.text
        assert "cdn" not in page.text.lower()
        script = http.get("/docs-assets/swagger-ui-bundle.js")
        assert script.status_code == 200 and len(script.content) > 500_000
        assert http.get("/docs-assets/swagger-ui.css").status_code == 200
        redoc = http.get("/redoc")
        assert redoc.status_code == 200 and "/docs-assets/redoc.standalone.js" in redoc.text
        assert http.get("/docs-assets/redoc.standalone.js").status_code == 200
