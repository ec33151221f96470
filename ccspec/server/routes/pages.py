"""The dashboard's HTML pages (not in the API document): every workflow, one workflow, one
job, rendered by the Dashboard (ccspec.server.dashboard) from the same cached bodies the API
sends."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from ccspec.server.context import Ctx
from ccspec.server.dashboard import CSP
from ccspec.server.routes.common import JobId, Name

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def page(html: str) -> HTMLResponse:
    return HTMLResponse(html, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})


@router.get("/")
async def index(ctx: Ctx) -> Response:
    built = await ctx.cached(("list",), ctx.reader.workflow_list)
    return page(ctx.dashboard.index(built.body))


@router.get("/workflows/{name}")
async def workflow_page(name: Name, ctx: Ctx) -> Response:
    built = await ctx.cached(("workflow", name), lambda: ctx.reader.workflow(name))
    return page(await run_in_threadpool(ctx.dashboard.workflow, built.body))


@router.get("/workflows/{name}/jobs/{job}")
async def job_page(name: Name, job: JobId, ctx: Ctx) -> Response:
    built = await ctx.cached(("job", name, job), lambda: ctx.reader.job(name, job))
    return page(ctx.dashboard.job(built.body))
