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

`create_app` builds the app's collaborators once (a `Context`, ccspec.server.context), hands
them to the routes (ccspec.server.routes, one APIRouter module per concept) as a dependency,
and translates errors in one place: any `CcspecError`, the API's own `ApiError` included ->
`ErrorBody` (ccspec.server.errors.failure). Access, body limits and safe headers are the
`Guard`'s; request counting is `MetricsMiddleware`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ccspec import __version__
from ccspec.errors import CcspecError
from ccspec.server.context import MAX_UPLOAD, Context, ServeConfig
from ccspec.server.dashboard import static_dir
from ccspec.server.errors import failure
from ccspec.server.guard import Guard
from ccspec.server.hot import CachedReads
from ccspec.server.metrics import MetricsMiddleware
from ccspec.server.models import ErrorBody, EventInfo, Problem
from ccspec.server.routes import ROUTERS

__all__ = ["MAX_UPLOAD", "ServeConfig", "create_app", "run"]


def create_app(config: ServeConfig) -> FastAPI:
    ctx = Context(config)
    running_loop: list[asyncio.AbstractEventLoop] = []

    def end_streams() -> None:
        ctx.stopping.set()
        ctx.hub.stop()

    def begin_shutdown() -> None:
        """End the event streams and followed logs (from any thread, a signal handler too):
        the server waits for open responses before it stops, and these never end alone.
        Validations of uploads under way are cancelled too."""
        ctx.writer.stop()
        for loop in running_loop:
            loop.call_soon_threadsafe(end_streams)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        running_loop.append(asyncio.get_running_loop())
        task = asyncio.create_task(ctx.hub.run())
        try:
            yield
        finally:
            end_streams()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            ctx.reader.close()

    app = FastAPI(
        title="ccspec",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description=(
            "Status of ccspec workflows: every workflow, its jobs, their logs, the live graph and the "
            "spec; server-sent events for changes. Read-only unless `ccspec serve --allow-write`; "
            "writes change spec files (git stays the source of truth) and need a bearer token."
        ),
        openapi_tags=[
            {"name": "workflows", "description": "Recorded state of workflows and jobs"},
            {
                "name": "write",
                "description": "Change spec files (opt-in: --allow-write and a token)",
            },
            {"name": "service", "description": "Health, metrics, schema, events"},
        ],
    )
    app.state.context = ctx  # what the routes' `Ctx` dependency returns
    app.state.reader = ctx.reader
    app.state.hub = ctx.hub
    app.state.metrics = ctx.metrics
    app.state.begin_shutdown = begin_shutdown
    _handle_errors(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    _offline_docs(app)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(CachedReads, reader=ctx.reader)
    app.add_middleware(
        Guard, access=ctx.access, max_body=config.max_upload, login_page=ctx.dashboard.login
    )
    app.add_middleware(MetricsMiddleware, metrics=ctx.metrics)
    return app


def _handle_errors(app: FastAPI) -> None:
    """Every error response is an ErrorBody: ccspec's own errors (one handler for the whole
    tree), invalid requests, and Starlette's (404 of an unknown path, 405)."""

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
        body = ErrorBody(
            detail=f"the request is invalid: {len(problems)} problem(s)", problems=problems
        )
        return JSONResponse(body.model_dump(), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # Starlette names the first matching route's methods only
            headers["Allow"] = ", ".join(_allowed(app, request))
        return JSONResponse(
            ErrorBody(detail=str(exc.detail)).model_dump(),
            status_code=exc.status_code,
            headers=headers,
        )


def run(
    app: FastAPI, host: str = "127.0.0.1", port: int = 8000, *, access_log: bool = False
) -> None:
    """Serve `app` with uvicorn until SIGINT/SIGTERM; open event streams end at once then."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.begin_shutdown()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info" if access_log else "warning",
        access_log=access_log,
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    Server(config).run()


def _allowed(app: FastAPI, request: Request) -> list[str]:
    from starlette.routing import Match

    methods: set[str] = set()
    # the app's own routes, then the routers' (FastAPI keeps an included router as one entry)
    for route in (*app.router.routes, *(r for router in ROUTERS for r in router.routes)):
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

        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["EventInfo"] = EventInfo.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "The token `ccspec serve` was started with",
            }
        }
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
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="ccspec API",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_redirect() -> Response:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> Response:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="ccspec API",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
        )
