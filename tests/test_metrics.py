"""`ccspec.server.metrics.Metrics.text`: the reconciler's failed passes, when there is one."""

from __future__ import annotations

from ccspec.server.metrics import Metrics


def test_failed_passes_are_a_counter_per_workflow_under_watch_serve() -> None:
    metrics = Metrics()
    metrics.reconcile_errors = lambda: {"flow": 3, 'we"ird': 0}
    lines = metrics.text([], sse_clients=0, last_event=0).splitlines()
    assert "# TYPE ccspec_reconcile_errors_total counter" in lines
    assert 'ccspec_reconcile_errors_total{workflow="flow"} 3' in lines
    assert 'ccspec_reconcile_errors_total{workflow="we\\"ird"} 0' in lines


def test_plain_serve_has_no_reconciler_and_no_such_metric() -> None:
    assert "ccspec_reconcile_errors_total" not in Metrics().text([], sse_clients=0, last_event=0)
