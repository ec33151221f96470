"""Writes: change spec files under the specs folder (git stays the source of truth). Only
with `ccspec serve --allow-write` and a bearer token; the Guard checks both before these run,
and the SpecWriter (ccspec.server.writes) validates every change as `ccspec validate` would."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ccspec.server.context import Ctx
from ccspec.server.models import AddJob, AddNeed, Written
from ccspec.server.routes.common import SPEC_BODY, JobName, Name, errors
from ccspec.spec.models import NAME_PATTERN

__all__ = ["router"]

router = APIRouter(tags=["write"])

WRITE_ERRORS = errors(400, 401, 403, 404, 409, 413, 422)


@router.post(
    "/api/workflows",
    response_model=Written,
    status_code=201,
    summary="Upload a workflow: validated, then written under the specs folder",
    description="The body is the spec's YAML (or JSON). Its name comes from `name:` or `?name=`.",
    responses={200: {"model": Written, "description": "Replaced"}, **WRITE_ERRORS},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/yaml": {"schema": SPEC_BODY},
                "text/plain": {"schema": {"type": "string"}},
            },
        }
    },
)
async def upload(
    request: Request,
    ctx: Ctx,
    name: Annotated[
        str | None, Query(pattern=NAME_PATTERN, description="Workflow (and file) name")
    ] = None,
    replace: Annotated[bool, Query(description="Overwrite an existing spec file")] = False,
) -> Response:
    data = await request.body()
    written = await run_in_threadpool(ctx.writer.upload, data, name, replace)
    return JSONResponse(written.model_dump(), status_code=201 if written.created else 200)


@router.post(
    "/api/workflows/{name}/jobs",
    response_model=Written,
    summary="Add a job to a workflow's spec",
    responses=WRITE_ERRORS,
)
async def add_job(name: Name, body: AddJob, ctx: Ctx) -> Written:
    return await run_in_threadpool(ctx.writer.add_job, name, body.name, body.job)


@router.post(
    "/api/workflows/{name}/needs",
    response_model=Written,
    summary="Add a dependency: `job` needs `needs`",
    responses=WRITE_ERRORS,
)
async def add_need(name: Name, body: AddNeed, ctx: Ctx) -> Written:
    return await run_in_threadpool(ctx.writer.add_need, name, body.job, body.needs)


@router.delete(
    "/api/workflows/{name}/jobs/{job}",
    response_model=Written,
    summary="Remove a job (and every need of it) from a workflow's spec",
    responses=WRITE_ERRORS,
)
async def remove_job(name: Name, job: JobName, ctx: Ctx) -> Written:
    return await run_in_threadpool(ctx.writer.remove_job, name, job)
