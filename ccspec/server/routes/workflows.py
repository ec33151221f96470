"""Reads of the recorded state: every workflow, one workflow, one job, the live graph and timeline, the
spec file. Each body comes from the reader's cache or one shared build (Context.cached)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ccspec.server.context import Ctx
from ccspec.server.models import JobDetail, WorkflowDetail, WorkflowList
from ccspec.server.routes.common import (
    SPEC_BODY,
    STATE_ERRORS,
    JobId,
    Name,
    cached_response,
    errors,
)

__all__ = ["router"]

router = APIRouter(tags=["workflows"])


@router.get(
    "/api/workflows",
    response_model=WorkflowList,
    summary="Every workflow: phase and job counts",
    responses=errors(401, *STATE_ERRORS),
)
async def list_workflows(request: Request, ctx: Ctx) -> Response:
    return cached_response(request, await ctx.cached(("list",), ctx.reader.workflow_list))


@router.get(
    "/api/workflows/{name}",
    response_model=WorkflowDetail,
    summary="One workflow and every job: state, progress, times, outputs, fingerprints",
    responses={
        304: {"description": "Not modified (If-None-Match)"},
        **errors(401, 404, 422, *STATE_ERRORS),
    },
)
async def get_workflow(request: Request, name: Name, ctx: Ctx) -> Response:
    return cached_response(
        request, await ctx.cached(("workflow", name), lambda: ctx.reader.workflow(name))
    )


@router.get(
    "/api/workflows/{name}/jobs/{job}",
    response_model=JobDetail,
    summary="One job, its fingerprint's parts and every attempt",
    responses=errors(401, 404, 422, *STATE_ERRORS),
)
async def get_job(request: Request, name: Name, job: JobId, ctx: Ctx) -> Response:
    return cached_response(
        request, await ctx.cached(("job", name, job), lambda: ctx.reader.job(name, job))
    )


@router.get(
    "/api/workflows/{name}/graph.svg",
    summary="The live graph, nodes coloured by state",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}, "description": "SVG"},
        **errors(401, 404, 422, *STATE_ERRORS),
    },
)
async def get_graph(request: Request, name: Name, ctx: Ctx) -> Response:
    return cached_response(
        request, await ctx.cached(("graph", name), lambda: ctx.reader.graph(name))
    )


@router.get(
    "/api/workflows/{name}/timeline.svg",
    summary="The run's timeline: one bar per attempt, coloured by state and host",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}, "description": "SVG"},
        **errors(401, 404, 422, *STATE_ERRORS),
    },
)
async def get_timeline(request: Request, name: Name, ctx: Ctx) -> Response:
    return cached_response(
        request, await ctx.cached(("timeline", name), lambda: ctx.reader.timeline(name))
    )


@router.get(
    "/api/workflows/{name}/spec",
    summary="The spec file as YAML (secret values masked)",
    response_class=Response,
    responses={
        200: {"content": {"application/yaml": {"schema": SPEC_BODY}}, "description": "YAML"},
        **errors(401, 404, 422, *STATE_ERRORS),
    },
)
async def get_spec(request: Request, name: Name, ctx: Ctx) -> Response:
    return cached_response(
        request, await ctx.cached(("spec", name), lambda: ctx.reader.spec_text(name))
    )
