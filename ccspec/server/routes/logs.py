"""A job's log: whole, its last lines, a byte range (query or Range header), or followed
while the attempt runs. Secrets are masked as it is read (ccspec.server.logs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from ccspec.server import logs
from ccspec.server.context import Ctx
from ccspec.server.routes.common import STATE_ERRORS, JobId, Name, errors

__all__ = ["MAX_TAIL", "router"]

MAX_TAIL = 1_000_000  # lines

router = APIRouter(tags=["workflows"])


@router.get(
    "/api/workflows/{name}/jobs/{job}/log",
    response_class=Response,
    summary="A job's log: whole, last lines, a byte range, or followed while it runs",
    description=(
        "Secrets are masked by as many `*` as they have bytes, so offsets stay valid. "
        "`X-Log-Size` is the log's size now: poll with `offset` for what is new, or `follow=true`."
    ),
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Log text"},
        206: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "The bytes a Range header asked for",
        },
        **errors(401, 404, 416, 422, *STATE_ERRORS),
    },
)
async def get_log(
    name: Name,
    job: JobId,
    ctx: Ctx,
    attempt: Annotated[
        int | None, Query(ge=1, le=1_000_000, description="Attempt number (default: the last)")
    ] = None,
    tail: Annotated[
        int | None, Query(ge=0, le=MAX_TAIL, description="Only the last N lines")
    ] = None,
    offset: Annotated[int | None, Query(ge=0, le=2**62, description="First byte")] = None,
    length: Annotated[int | None, Query(ge=0, le=2**62, description="Bytes from offset")] = None,
    follow: Annotated[bool, Query(description="Keep streaming until the attempt ends")] = False,
    range_: Annotated[
        str | None, Header(alias="Range", description="bytes=START-END, START- or -N")
    ] = None,
) -> Response:
    reader = ctx.reader
    chosen = await run_in_threadpool(reader.attempt_of, name, job, attempt)
    redactor = await run_in_threadpool(reader.redactor_of, name)
    path = Path(chosen.log_path) if chosen.log_path else None
    size, piece = await run_in_threadpool(logs.locate, path, tail, offset, length, range_)
    headers = {
        "Accept-Ranges": "bytes",
        "X-Log-Size": str(size),
        "X-Log-Offset": str(piece.start),
        "X-Attempt": str(chosen.number),
        "Cache-Control": "no-cache",
    }
    media = "text/plain; charset=utf-8"
    if follow:
        state = await run_in_threadpool(reader.attempt_state, chosen.id)
        stream = logs.follow(
            path,
            piece.start,
            redactor,
            lambda: reader.attempt_state(chosen.id),
            ctx.stopping.is_set,
        )
        headers["X-Job-State"] = state.value
        return StreamingResponse(stream, media_type=media, headers=headers)
    if path is None or piece.end <= piece.start:
        return Response(
            b"", media_type=media, headers=headers, status_code=206 if piece.partial else 200
        )
    headers["Content-Length"] = str(piece.end - piece.start)
    if piece.partial:
        headers["Content-Range"] = f"bytes {piece.start}-{piece.end - 1}/{size}"
    return StreamingResponse(
        iterate_in_threadpool(logs.read_slice(path, piece, redactor)),
        media_type=media,
        headers=headers,
        status_code=206 if piece.partial else 200,
    )
