"""`ccspec serve`: the status API (FastAPI), its OpenAPI GUI at `/docs`, the dashboard at `/`.

Read-only by default. Paths (DESIGN.md, contract)::

    GET  /api/workflows                      every workflow: phase, counts
    GET  /api/workflows/{name}               its jobs: state, progress, times, outputs, fingerprints
    GET  /api/workflows/{name}/jobs/{job}    one job and its attempts
    GET  /api/workflows/{name}/jobs/{job}/log   tail=N, offset/length or Range; follow=true streams
    GET  /api/workflows/{name}/graph.svg     the live graph, coloured by state
    GET  /api/workflows/{name}/spec          the spec file (secret values masked)
    GET  /api/schema                         the JSON Schema of the spec language
    GET  /api/events                         server-sent events (Last-Event-ID resumes)
    GET  /healthz, /metrics
    POST /api/workflows, POST /api/workflows/{name}/jobs, POST /api/workflows/{name}/needs,
    DELETE /api/workflows/{name}/jobs/{job}  writes: --allow-write and a bearer token

Errors are turned into responses in one place (any `CcspecError`, the API's own `ApiError`
included -> `ErrorBody`, by ccspec.server.errors.failure); access, body
limits and safe headers are the `Guard`'s; request counting is `MetricsMiddleware`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ccspec import __version__
from ccspec.errors import CcspecError
from ccspec.server import logs
from ccspec.server.auth import COOKIE, Access
from ccspec.server.dashboard import CSP, Dashboard, static_dir
from ccspec.server.errors import failure
from ccspec.server.guard import Guard
from ccspec.server.hot import CachedReads, respond
from ccspec.server.metrics import Metrics, MetricsMiddleware
from ccspec.server.models import (
    JOB_PATTERN,
    AddJob,
    AddNeed,
    ErrorBody,
    EventInfo,
    Health,
    JobDetail,
    Problem,
    WorkflowDetail,
    WorkflowList,
    Written,
)
from ccspec.server.reader import Built, Reader
from ccspec.server.sse import POLL_EVERY, EventHub
from ccspec.server.writes import SpecWriter
from ccspec.spec.models import NAME_PATTERN

__all__ = ["MAX_UPLOAD", "ServeConfig", "create_app", "run"]

MAX_UPLOAD = 1024 * 1024  # bytes of a request body (a spec of ~10,000 jobs)
MAX_TAIL = 1_000_000  # lines

SPEC_BODY = {"type": "object", "description": "A workflow spec (see /api/schema)"}
# One event of the stream, as OpenAPI 3.1 documents text/event-stream (`schema` describes each event).
SSE_EVENT = {
    "type": "object", "required": ["data"],
    "properties": {
        "event": {"type": "string", "enum": ["job", "progress"]},
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "Stored events only; resume with Last-Event-ID"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"$ref": "#/components/schemas/EventInfo"}},
        "retry": {"type": "integer"},
    },
}

Name = Annotated[str, PathParam(pattern=NAME_PATTERN, description="Workflow name", examples=["quickstart"])]
JobId = Annotated[str, PathParam(pattern=JOB_PATTERN, description="Job id", examples=["summarise"])]
JobName = Annotated[str, PathParam(pattern=NAME_PATTERN, description="Job name (a key under `jobs:`)")]


@dataclass(frozen=True)
class ServeConfig:
    state: Path = Path(".ccspec")
    specs: Path = Path("specs")
    token: str | None = None
    allow_write: bool = False
    max_upload: int = MAX_UPLOAD
    poll_every: float = POLL_EVERY
    environ: Mapping[str, str] = field(default_factory=dict)  # environment secrets are masked


STATE_ERRORS = (500, 503)  # what a route reading the state store may answer (ccspec.server.errors.STATUS)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "The body is not JSON", 401: "No token, or a wrong one", 403: "Writing is disabled", 404: "No such workflow, job or attempt",
            409: "It exists already", 413: "Request body over the limit", 416: "Range outside the log",
            422: "Invalid request or spec: every problem, as `ccspec validate` prints them",
            500: "The state cannot be read (e.g. a newer ccspec wrote it): the detail says why",
            503: "The state database is locked or its folder cannot be written: try again later"}
    return {code: {"model": ErrorBody, "description": text[code]} for code in codes}


def _cached_response(request: Request, built: Built) -> Response:
    status, headers, body = respond(built, request.headers.get("if-none-match"), request.headers.get("accept-encoding"))
    response = Response(body, status_code=status)
    response.raw_headers = headers  # exactly what the hot path sends
    return response


def create_app(config: ServeConfig) -> FastAPI:
    reader = Reader(config.state, config.specs, environ=config.environ,
                    extra_secrets=[config.token] if config.token else [])
    hub = EventHub(reader, config.poll_every)
    writer = SpecWriter(reader.specs)
    metrics = Metrics()
    access = Access(config.token, config.allow_write)
    dashboard = Dashboard()
    stopping = asyncio.Event()

    running_loop: list[asyncio.AbstractEventLoop] = []

    def end_streams() -> None:
        stopping.set()
        hub.stop()

    def begin_shutdown() -> None:
        """End the event streams and followed logs (from any thread, a signal handler too):
        the server waits for open responses before it stops, and these never end alone.
        Validations of uploads under way are cancelled too."""
        writer.stop()
        for loop in running_loop:
            loop.call_soon_threadsafe(end_streams)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        running_loop.append(asyncio.get_running_loop())
        task = asyncio.create_task(hub.run())
        try:
            yield
        finally:
            end_streams()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            reader.close()

    app = FastAPI(
        title="ccspec", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
        description=("Status of ccspec workflows: every workflow, its jobs, their logs, the live graph and the "
                     "spec; server-sent events for changes. Read-only unless `ccspec serve --allow-write`; "
                     "writes change spec files (git stays the source of truth) and need a bearer token."),
        openapi_tags=[{"name": "workflows", "description": "Recorded state of workflows and jobs"},
                      {"name": "write", "description": "Change spec files (opt-in: --allow-write and a token)"},
                      {"name": "service", "description": "Health, metrics, schema, events"}],
    )
    app.state.reader = reader
    app.state.hub = hub
    app.state.metrics = metrics
    app.state.begin_shutdown = begin_shutdown

    @app.exception_handler(CcspecError)
    async def ccspec_error(request: Request, exc: CcspecError) -> Response:
        return failure(exc)

    @app.exception_handler(RequestValidationError)
    async def request_error(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()))
            message = f"{where}: {error.get('msg', 'invalid')}"
            problems.append(Problem(text=f"{message} [request]", message=message, code="request"))
        body = ErrorBody(detail=f"the request is invalid: {len(problems)} problem(s)", problems=problems)
        return JSONResponse(body.model_dump(), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # Starlette names the first matching route's methods only
            headers["Allow"] = ", ".join(_allowed(app, request))
        return JSONResponse(ErrorBody(detail=str(exc.detail)).model_dump(), status_code=exc.status_code,
                            headers=headers)

    building: dict[tuple[str, ...], tuple[tuple[int, int | None], asyncio.Future[Built]]] = {}

    async def cached(request: Request, key: tuple[str, ...], build: Any) -> Built:
        """The fresh body for `key`: from the cache, else built in a worker thread. Requests
        that miss at the same state share one build instead of queueing a thread each."""
        built = reader.cached(key)  # the common case: no thread, no serialisation
        if built is not None:
            return built
        base = reader.base()
        running = building.get(key)
        if running is None or running[0] != base:  # a build begun before a change would be stale
            future = asyncio.ensure_future(run_in_threadpool(reader.get, key, build))
            running = building[key] = (base, future)

            def done(_: object, entry: tuple[Any, Any] = running) -> None:
                if building.get(key) is entry:
                    del building[key]

            future.add_done_callback(done)
        return await asyncio.shield(running[1])

    # -- reads -------------------------------------------------------------------------

    @app.get("/api/workflows", response_model=WorkflowList, tags=["workflows"],
             summary="Every workflow: phase and job counts", responses=_errors(401, *STATE_ERRORS))
    async def list_workflows(request: Request) -> Response:
        return _cached_response(request, await cached(request, ("list",), reader.workflow_list))

    @app.get("/api/workflows/{name}", response_model=WorkflowDetail, tags=["workflows"],
             summary="One workflow and every job: state, progress, times, outputs, fingerprints",
             responses={304: {"description": "Not modified (If-None-Match)"},
                        **_errors(401, 404, 422, *STATE_ERRORS)})
    async def get_workflow(request: Request, name: Name) -> Response:
        return _cached_response(request, await cached(request, ("workflow", name), lambda: reader.workflow(name)))

    @app.get("/api/workflows/{name}/jobs/{job}", response_model=JobDetail, tags=["workflows"],
             summary="One job, its fingerprint's parts and every attempt",
             responses=_errors(401, 404, 422, *STATE_ERRORS))
    async def get_job(request: Request, name: Name, job: JobId) -> Response:
        return _cached_response(request, await cached(request, ("job", name, job), lambda: reader.job(name, job)))

    @app.get("/api/workflows/{name}/graph.svg", tags=["workflows"], summary="The live graph, nodes coloured by state",
             response_class=Response,
             responses={200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}, "description": "SVG"},
                        **_errors(401, 404, 422, *STATE_ERRORS)})
    async def get_graph(request: Request, name: Name) -> Response:
        return _cached_response(request, await cached(request, ("graph", name), lambda: reader.graph(name)))

    @app.get("/api/workflows/{name}/spec", tags=["workflows"], summary="The spec file as YAML (secret values masked)",
             response_class=Response,
             responses={200: {"content": {"application/yaml": {"schema": SPEC_BODY}}, "description": "YAML"},
                        **_errors(401, 404, 422, *STATE_ERRORS)})
    async def get_spec(request: Request, name: Name) -> Response:
        return _cached_response(request, await cached(request, ("spec", name), lambda: reader.spec_text(name)))

    @app.get("/api/workflows/{name}/jobs/{job}/log", tags=["workflows"], response_class=Response,
             summary="A job's log: whole, last lines, a byte range, or followed while it runs",
             description=("Secrets are masked by as many `*` as they have bytes, so offsets stay valid. "
                          "`X-Log-Size` is the log's size now: poll with `offset` for what is new, or `follow=true`."),
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Log text"},
                        206: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "The bytes a Range header asked for"},
                        **_errors(401, 404, 416, 422, *STATE_ERRORS)})
    async def get_log(request: Request, name: Name, job: JobId,
                      attempt: Annotated[int | None, Query(ge=1, le=1_000_000, description="Attempt number (default: the last)")] = None,
                      tail: Annotated[int | None, Query(ge=0, le=MAX_TAIL, description="Only the last N lines")] = None,
                      offset: Annotated[int | None, Query(ge=0, le=2**62, description="First byte")] = None,
                      length: Annotated[int | None, Query(ge=0, le=2**62, description="Bytes from offset")] = None,
                      follow: Annotated[bool, Query(description="Keep streaming until the attempt ends")] = False,
                      range_: Annotated[str | None, Header(alias="Range", description="bytes=START-END, START- or -N")] = None,
                      ) -> Response:
        chosen = await run_in_threadpool(reader.attempt_of, name, job, attempt)
        redactor = await run_in_threadpool(reader.redactor_of, name)
        path = Path(chosen.log_path) if chosen.log_path else None
        size, piece = await run_in_threadpool(logs.locate, path, tail, offset, length, range_)
        headers = {"Accept-Ranges": "bytes", "X-Log-Size": str(size), "X-Log-Offset": str(piece.start),
                   "X-Attempt": str(chosen.number), "Cache-Control": "no-cache"}
        media = "text/plain; charset=utf-8"
        if follow:
            state = await run_in_threadpool(reader.attempt_state, chosen.id)
            stream = logs.follow(path, piece.start, redactor, lambda: reader.attempt_state(chosen.id),
                                 stopping.is_set)
            headers["X-Job-State"] = state.value
            return StreamingResponse(stream, media_type=media, headers=headers)
        if path is None or piece.end <= piece.start:
            return Response(b"", media_type=media, headers=headers,
                            status_code=206 if piece.partial else 200)
        headers["Content-Length"] = str(piece.end - piece.start)
        if piece.partial:
            headers["Content-Range"] = f"bytes {piece.start}-{piece.end - 1}/{size}"
        return StreamingResponse(iterate_in_threadpool(logs.read_slice(path, piece, redactor)), media_type=media,
                                 headers=headers, status_code=206 if piece.partial else 200)

    @app.get("/api/schema", tags=["service"], summary="JSON Schema of the spec language", response_class=Response,
             responses={200: {"content": {"application/schema+json": {"schema": {"type": "object"}}},
                              "description": "The JSON Schema editors validate specs with"}, **_errors(401)})
    async def get_schema() -> Response:
        from ccspec.schema import schema_text

        return Response(schema_text(), media_type="application/schema+json")

    @app.get("/api/events", tags=["service"], summary="Server-sent events: every change of the recorded state",
             response_class=StreamingResponse,
             description=("`event: job` for each stored event (with its `id:`; reconnecting with `Last-Event-ID` "
                          "sends what was missed), `event: progress` for running jobs' progress (no id). "
                          "Each `data:` is an EventInfo. `follow=false` sends the backlog after `last_event_id` "
                          "and ends."),
             responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT}},
                              "description": "An event stream; each event's data is an EventInfo"},
                        **_errors(401, 404, 422)})
    async def get_events(request: Request,
                         workflow: Annotated[str | None, Query(pattern=NAME_PATTERN, description="Only this workflow")] = None,
                         last_event_id: Annotated[int | None, Query(ge=0, le=2**62, description="Send events after this id first")] = None,
                         follow: Annotated[bool, Query(description="Keep the stream open for new events")] = True,
                         last_event_header: Annotated[str | None, Header(alias="Last-Event-ID", include_in_schema=False)] = None,
                         ) -> Response:
        after = last_event_id
        if after is None and last_event_header and last_event_header.strip().isdigit():
            after = int(last_event_header.strip())
        stream = hub.stream(workflow, after if after is not None else (None if follow else 0), follow, stopping.is_set)
        return StreamingResponse(stream, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/healthz", tags=["service"], response_model=Health, summary="Liveness")
    async def healthz() -> Health:
        return Health(status="ok", version=__version__, writable=config.allow_write)

    @app.get("/metrics", tags=["service"], summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"},
                        **_errors(401, *STATE_ERRORS)})
    async def get_metrics() -> Response:
        rows = await run_in_threadpool(reader.metrics_rows)
        text = metrics.text(rows, sse_clients=hub.clients, last_event=hub.last_id)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/api/session", tags=["service"], status_code=204, response_class=Response, include_in_schema=False)
    async def session(request: Request) -> Response:
        response = Response(status_code=204)
        if access.session is not None:
            response.set_cookie(COOKIE, access.session, httponly=True, samesite="strict", path="/")
        return response

    # -- writes ------------------------------------------------------------------------

    write_errors = _errors(400, 401, 403, 404, 409, 413, 422)

    @app.post("/api/workflows", tags=["write"], response_model=Written, status_code=201,
              summary="Upload a workflow: validated, then written under the specs folder",
              description="The body is the spec's YAML (or JSON). Its name comes from `name:` or `?name=`.",
              responses={200: {"model": Written, "description": "Replaced"}, **write_errors},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/yaml": {"schema": SPEC_BODY}, "text/plain": {"schema": {"type": "string"}}}}})
    async def upload(request: Request,
                     name: Annotated[str | None, Query(pattern=NAME_PATTERN, description="Workflow (and file) name")] = None,
                     replace: Annotated[bool, Query(description="Overwrite an existing spec file")] = False,
                     ) -> Response:
        data = await request.body()
        written = await run_in_threadpool(writer.upload, data, name, replace)
        return JSONResponse(written.model_dump(), status_code=201 if written.created else 200)

    @app.post("/api/workflows/{name}/jobs", tags=["write"], response_model=Written,
              summary="Add a job to a workflow's spec", responses=write_errors)
    async def add_job(name: Name, body: AddJob) -> Written:
        return await run_in_threadpool(writer.add_job, name, body.name, body.job)

    @app.post("/api/workflows/{name}/needs", tags=["write"], response_model=Written,
              summary="Add a dependency: `job` needs `needs`", responses=write_errors)
    async def add_need(name: Name, body: AddNeed) -> Written:
        return await run_in_threadpool(writer.add_need, name, body.job, body.needs)

    @app.delete("/api/workflows/{name}/jobs/{job}", tags=["write"], response_model=Written,
                summary="Remove a job (and every need of it) from a workflow's spec", responses=write_errors)
    async def remove_job(name: Name, job: JobName) -> Written:
        return await run_in_threadpool(writer.remove_job, name, job)

    # -- the dashboard -----------------------------------------------------------------

    def page(html: str) -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})

    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> Response:
        built = await cached(request, ("list",), reader.workflow_list)
        return page(dashboard.index(built.body))

    @app.get("/workflows/{name}", include_in_schema=False)
    async def workflow_page(request: Request, name: Name) -> Response:
        built = await cached(request, ("workflow", name), lambda: reader.workflow(name))
        return page(await run_in_threadpool(dashboard.workflow, built.body))

    @app.get("/workflows/{name}/jobs/{job}", include_in_schema=False)
    async def job_page(request: Request, name: Name, job: JobId) -> Response:
        built = await cached(request, ("job", name, job), lambda: reader.job(name, job))
        return page(dashboard.job(built.body))

    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    _offline_docs(app)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(CachedReads, reader=reader)
    app.add_middleware(Guard, access=access, max_body=config.max_upload, login_page=dashboard.login)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def run(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, *, access_log: bool = False) -> None:
    """Serve `app` with uvicorn until SIGINT/SIGTERM; open event streams end at once then."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.begin_shutdown()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=host, port=port, log_level="info" if access_log else "warning",
                            access_log=access_log, timeout_graceful_shutdown=5, server_header=False)
    Server(config).run()


def _allowed(app: FastAPI, request: Request) -> list[str]:
    from starlette.routing import Match

    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        found = getattr(route, "methods", None)
        if match is not Match.NONE and found:
            methods |= set(found)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the bearer scheme, so /docs has an "Authorize" button. Writes
    require it; reads take it when the server was started with a token (the Guard checks)."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                             tags=app.openapi_tags)
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["EventInfo"] = EventInfo.model_json_schema(
            ref_template="#/components/schemas/{model}")
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "The token `ccspec serve` was started with"}}
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if method in ("post", "put", "patch", "delete"):
                    operation["security"] = [{"bearer": []}]
                elif path != "/healthz":
                    operation["security"] = [{"bearer": []}, {}]
        app.openapi_schema = schema
    return app.openapi_schema


def _offline_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc from files installed with ccspec (the fastapi-offline
    package ships them), not from a CDN: the GUI works on machines without internet."""
    from pathlib import Path

    import fastapi_offline
    from fastapi.openapi.docs import (
        get_redoc_html,
        get_swagger_ui_html,
        get_swagger_ui_oauth2_redirect_html,
    )

    assets = Path(fastapi_offline.__file__).resolve().parent / "static"
    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="ccspec API",
                                   oauth2_redirect_url="/docs/oauth2-redirect",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon.png")

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_redirect() -> Response:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> Response:
        return get_redoc_html(openapi_url="/openapi.json", title="ccspec API",
                              redoc_js_url="/docs-assets/redoc.standalone.js", redoc_favicon_url="/docs-assets/favicon.png")
