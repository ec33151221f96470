"""The service's own routes: the spec language's JSON Schema, liveness, Prometheus metrics,
and the dashboard's session cookie (not in the API document)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ccspec import __version__
from ccspec.server.auth import COOKIE
from ccspec.server.context import Ctx
from ccspec.server.models import Health
from ccspec.server.routes.common import STATE_ERRORS, errors

__all__ = ["router"]

router = APIRouter(tags=["service"])


@router.get(
    "/api/schema",
    summary="JSON Schema of the spec language",
    response_class=Response,
    responses={
        200: {
            "content": {"application/schema+json": {"schema": {"type": "object"}}},
            "description": "The JSON Schema editors validate specs with",
        },
        **errors(401),
    },
)
async def get_schema() -> Response:
    from ccspec.schema import schema_text

    return Response(schema_text(), media_type="application/schema+json")


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz(ctx: Ctx) -> Health:
    return Health(status="ok", version=__version__, writable=ctx.config.allow_write)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text",
        },
        **errors(401, *STATE_ERRORS),
    },
)
async def get_metrics(ctx: Ctx) -> Response:
    rows = await run_in_threadpool(ctx.reader.metrics_rows)
    text = ctx.metrics.text(rows, sse_clients=ctx.hub.clients, last_event=ctx.hub.last_id)
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")


@router.post("/api/session", status_code=204, response_class=Response, include_in_schema=False)
async def session(ctx: Ctx) -> Response:
    response = Response(status_code=204)
    if ctx.access.session is not None:
        response.set_cookie(COOKIE, ctx.access.session, httponly=True, samesite="strict", path="/")
    return response
