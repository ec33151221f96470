"""`ccspec.server.metrics.Metrics.text`: the reconciler's failed passes, when there is one."""

from __future__ import annotations

import re
from pathlib import Path

from ccspec.server.metrics import Metrics
from tests.serving import make_repo, start_server


def test_failed_passes_are_a_counter_per_workflow_under_watch_serve() -> None:
    metrics = Metrics()
    metrics.reconcile_errors = lambda: {"flow": 3, 'we"ird': 0}
    lines = metrics.text([], sse_clients=0, last_event=0).splitlines()
    assert "# TYPE ccspec_reconcile_errors_total counter" in lines
    assert 'ccspec_reconcile_errors_total{workflow="flow"} 3' in lines
    assert 'ccspec_reconcile_errors_total{workflow="we\\"ird"} 0' in lines


def test_plain_serve_has_no_reconciler_and_no_such_metric() -> None:
    assert "ccspec_reconcile_errors_total" not in Metrics().text([], sse_clients=0, last_event=0)


def test_every_route_is_labelled_with_its_template(tmp_path: Path) -> None:
    """Starlette's own routes and mounts (the OpenAPI document, the GUI's files, the
    dashboard's) have a template like FastAPI's; only a path no route has is "unmatched"."""
    server = start_server(make_repo(tmp_path))
    try:
        with server.client() as http:
            for path in (
                "/openapi.json",
                "/docs",
                "/docs-assets/swagger-ui.css",
                "/static/no-such-file.css",
                "/api/workflows/nosuch",
                "/no/such/path",
            ):
                http.get(path)
            text = http.get("/metrics").text
    finally:
        server.stop()
    counted = dict(
        re.findall(
            r'^ccspec_http_requests_total\{method="GET",route="([^"]*)",status="(\d+)"\}',
            text,
            re.M,
        )
    )
    assert counted == {
        "/healthz": "200",  # start_server waits for it
        "/openapi.json": "200",
        "/docs": "200",
        "/docs-assets/{path}": "200",
        "/static/{path}": "404",
        "/api/workflows/{name}": "404",
        "unmatched": "404",
    }
