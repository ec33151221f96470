"""`/metrics` in Prometheus' text format: jobs by state per workflow, and the API's own
request counts and latencies (a histogram per route template, so paths with random names do
not make new series). Counted by `MetricsMiddleware`, a plain ASGI wrapper around the app.
Under `watch --serve`, also the reconciler's failed passes per workflow (`reconcile_errors`,
set by the command to `Reconciler.pass_errors`), and its passes per workflow and outcome,
their durations and the passes waiting or under way (`reconcile`, `Reconciler.pass_snapshot`),
and the job slots its workflows share per host (`slots`, `SlotLedger.snapshot`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ccspec.reconcile.passes import PassSnapshot

__all__ = ["BUCKETS", "Metrics", "MetricsMiddleware", "escape"]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
Scope = dict[str, Any]


def escape(value: str) -> str:
    """A label value as Prometheus' text format writes it."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Histogram:
    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets = [0] * len(BUCKETS)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.buckets[i] += 1
                break


class Metrics:
    """Request counters, filled by `wrap`'s middleware, and the text exposition."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = {}
        self.latency: dict[tuple[str, str], _Histogram] = {}
        self.started = time.time()
        self.reconcile_errors: Callable[[], Mapping[str, int]] | None = (
            None  # `watch --serve`'s reconciler
        )
        self.reconcile: Callable[[], PassSnapshot] | None = None  # likewise
        # likewise: per host, (slots in use, limit, workflows waiting)
        self.slots: Callable[[], Mapping[str, tuple[int, int | None, int]]] | None = None

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (method, route, str(status))
            self.requests[key] = self.requests.get(key, 0) + 1
            histogram = self.latency.get((method, route))
            if histogram is None:
                histogram = self.latency[(method, route)] = _Histogram()
            histogram.observe(seconds)

    def text(
        self, jobs: Iterable[tuple[str, str, int]], *, sse_clients: int, last_event: int
    ) -> str:
        lines = [
            "# HELP ccspec_jobs Recorded jobs by state, per workflow.",
            "# TYPE ccspec_jobs gauge",
        ]
        for workflow, state, count in jobs:
            lines.append(
                f'ccspec_jobs{{workflow="{escape(workflow)}",state="{escape(state)}"}} {count}'
            )
        lines += [
            "# HELP ccspec_events_last_id Id of the newest event in the state store.",
            "# TYPE ccspec_events_last_id gauge",
            f"ccspec_events_last_id {last_event}",
            "# HELP ccspec_sse_clients Open server-sent event streams.",
            "# TYPE ccspec_sse_clients gauge",
            f"ccspec_sse_clients {sse_clients}",
            "# HELP ccspec_http_requests_total HTTP requests answered, by method, route and status.",
            "# TYPE ccspec_http_requests_total counter",
        ]
        with self._lock:
            requests = sorted(self.requests.items())
            latency = sorted(
                (k, (list(h.buckets), h.count, h.total)) for k, h in self.latency.items()
            )
        for (method, route, status), count in requests:
            lines.append(
                f'ccspec_http_requests_total{{method="{method}",route="{escape(route)}",status="{status}"}} {count}'
            )
        lines += [
            "# HELP ccspec_http_request_duration_seconds Time to answer (to the headers, for streams).",
            "# TYPE ccspec_http_request_duration_seconds histogram",
        ]
        for (method, route), (buckets, count, total) in latency:
            labels = f'method="{method}",route="{escape(route)}"'
            running = 0
            for bound, n in zip(BUCKETS, buckets, strict=True):
                running += n
                lines.append(
                    f'ccspec_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {running}'
                )
            lines.append(
                f'ccspec_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {count}'
            )
            lines.append(f"ccspec_http_request_duration_seconds_sum{{{labels}}} {total:.6f}")
            lines.append(f"ccspec_http_request_duration_seconds_count{{{labels}}} {count}")
        if self.reconcile_errors is not None:
            lines += [
                "# HELP ccspec_reconcile_errors_total Reconcile passes of `ccspec watch` that failed, per workflow "
                "(each retry counts).",
                "# TYPE ccspec_reconcile_errors_total counter",
            ]
            for workflow, count in sorted(self.reconcile_errors().items()):
                lines.append(
                    f'ccspec_reconcile_errors_total{{workflow="{escape(workflow)}"}} {count}'
                )
        if self.reconcile is not None:
            lines += reconcile_lines(self.reconcile())
        if self.slots is not None:
            lines += slot_lines(self.slots())
        lines += [
            "# HELP ccspec_server_start_time_seconds When this server started (Unix time).",
            "# TYPE ccspec_server_start_time_seconds gauge",
            f"ccspec_server_start_time_seconds {self.started:.3f}",
        ]
        return "\n".join(lines) + "\n"


def reconcile_lines(snap: PassSnapshot) -> list[str]:
    """The reconciler's passes, their durations and its queue, in the text format."""
    from ccspec.reconcile.passes import PASS_BUCKETS

    lines = [
        "# HELP ccspec_reconcile_passes_total Reconcile passes of `ccspec watch`, per workflow and "
        "outcome (planned; unchanged: a resync that found nothing changed and did not plan; failed).",
        "# TYPE ccspec_reconcile_passes_total counter",
    ]
    for (workflow, outcome), count in sorted(snap.passes.items()):
        lines.append(
            f'ccspec_reconcile_passes_total{{workflow="{escape(workflow)}",outcome="{outcome}"}} {count}'
        )
    lines += [
        "# HELP ccspec_reconcile_pass_duration_seconds Time a reconcile pass took, by outcome "
        "(a pass that runs jobs lasts as long as they do).",
        "# TYPE ccspec_reconcile_pass_duration_seconds histogram",
    ]
    for outcome, buckets in sorted(snap.buckets.items()):
        label = f'outcome="{outcome}"'
        running = 0
        for bound, n in zip(PASS_BUCKETS, buckets, strict=True):
            running += n
            lines.append(
                f'ccspec_reconcile_pass_duration_seconds_bucket{{{label},le="{bound}"}} {running}'
            )
        count = snap.count.get(outcome, 0)
        lines += [
            f'ccspec_reconcile_pass_duration_seconds_bucket{{{label},le="+Inf"}} {count}',
            f"ccspec_reconcile_pass_duration_seconds_sum{{{label}}} {snap.seconds.get(outcome, 0.0):.6f}",
            f"ccspec_reconcile_pass_duration_seconds_count{{{label}}} {count}",
        ]
    lines += [
        "# HELP ccspec_reconcile_queue_depth Workflows with a reconcile pass due that has not started.",
        "# TYPE ccspec_reconcile_queue_depth gauge",
        f"ccspec_reconcile_queue_depth {snap.waiting}",
        "# HELP ccspec_reconcile_passes_running Reconcile passes under way (one per workflow at most).",
        "# TYPE ccspec_reconcile_passes_running gauge",
        f"ccspec_reconcile_passes_running {snap.running}",
    ]
    return lines


def slot_lines(pools: Mapping[str, tuple[int, int | None, int]]) -> list[str]:
    """The job slots the reconciler's workflows share, per host, in the text format."""
    help_host = (
        "per host (`local`: this machine, bounded by -j; a remote host as type:user@address)"
    )
    lines = [
        f"# HELP ccspec_slots_in_use Job slots held or reserved for a waiting workflow, {help_host}.",
        "# TYPE ccspec_slots_in_use gauge",
        *(
            f'ccspec_slots_in_use{{host="{escape(h)}"}} {n}'
            for h, (n, _, _) in sorted(pools.items())
        ),
        f"# HELP ccspec_slots_limit Job slots at most, {help_host}.",
        "# TYPE ccspec_slots_limit gauge",
        *(
            f'ccspec_slots_limit{{host="{escape(h)}"}} {limit}'
            for h, (_, limit, _) in sorted(pools.items())
            if limit is not None
        ),
        f"# HELP ccspec_slots_waiting Workflows waiting for a job slot, {help_host}.",
        "# TYPE ccspec_slots_waiting gauge",
        *(
            f'ccspec_slots_waiting{{host="{escape(h)}"}} {w}'
            for h, (_, _, w) in sorted(pools.items())
        ),
    ]
    return lines


def _method(scope: Scope) -> str:
    method = str(scope.get("method", ""))
    return method if method in _METHODS else "other"


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route(scope: Scope, path: str, root_path: str) -> str:
    """The template of the route that answered (`/api/workflows/{name}`): a label per route,
    whatever the names in the path. `path` and `root_path` are the request's, as they were
    before routing changed the scope (a mount rewrites `root_path`)."""
    label = scope.get("ccspec.route")  # set by the hot path, which answers before FastAPI routes
    if isinstance(label, str):
        return label
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str):
        return template
    # Starlette's own routes (/openapi.json) and mounts (/static, /docs-assets) leave no
    # `route` in the scope: ask the app's routes which one the path is theirs
    routes = getattr(getattr(scope.get("app"), "router", None), "routes", ())
    return _matching(routes, {**scope, "path": path, "root_path": root_path}) or "unmatched"


def _matching(routes: Iterable[object], scope: Scope) -> str | None:
    from starlette.routing import BaseRoute, Match, Mount

    for route in routes:
        if not isinstance(route, BaseRoute):
            continue
        match, _ = route.matches(scope)
        if match is Match.NONE:
            continue
        if isinstance(route, Mount):
            return f"{route.path}/{{path}}"
        template = getattr(route, "path", None)
        return template if isinstance(template, str) else None
    return None


class MetricsMiddleware:
    """Counts every HTTP request into `metrics` (plain ASGI: no per-request objects)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        answered = False
        path, root_path = scope.get("path", ""), scope.get("root_path", "")

        async def sending(message: dict[str, Any]) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                answered = True
                # a streamed response (SSE, a followed log) counts its time to the headers
                self.metrics.observe(
                    _method(scope),
                    _route(scope, path, root_path),
                    int(message["status"]),
                    time.perf_counter() - began,
                )
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except BaseException:
            if not answered:
                self.metrics.observe(
                    _method(scope), _route(scope, path, root_path), 500, time.perf_counter() - began
                )
            raise
