"""The server-sent event stream of every change of the recorded state (ccspec.server.sse):
stored events with ids (Last-Event-ID resumes), running jobs' progress without."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response, StreamingResponse

from ccspec.server.context import Ctx
from ccspec.server.routes.common import errors
from ccspec.spec.models import NAME_PATTERN

__all__ = ["SSE_EVENT", "router"]

# One event of the stream, as OpenAPI 3.1 documents text/event-stream (`schema` describes each event).
SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string", "enum": ["job", "progress"]},
        "id": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "Stored events only; resume with Last-Event-ID",
        },
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/EventInfo"},
        },
        "retry": {"type": "integer"},
    },
}

router = APIRouter(tags=["service"])


@router.get(
    "/api/events",
    summary="Server-sent events: every change of the recorded state",
    response_class=StreamingResponse,
    description=(
        "`event: job` for each stored event (with its `id:`; reconnecting with `Last-Event-ID` "
        "sends what was missed), `event: progress` for running jobs' progress (no id). "
        "Each `data:` is an EventInfo. `follow=false` sends the backlog after `last_event_id` "
        "and ends."
    ),
    responses={
        200: {
            "content": {"text/event-stream": {"schema": SSE_EVENT}},
            "description": "An event stream; each event's data is an EventInfo",
        },
        **errors(401, 404, 422),
    },
)
async def get_events(
    ctx: Ctx,
    workflow: Annotated[
        str | None, Query(pattern=NAME_PATTERN, description="Only this workflow")
    ] = None,
    last_event_id: Annotated[
        int | None, Query(ge=0, le=2**62, description="Send events after this id first")
    ] = None,
    follow: Annotated[bool, Query(description="Keep the stream open for new events")] = True,
    last_event_header: Annotated[
        str | None, Header(alias="Last-Event-ID", include_in_schema=False)
    ] = None,
) -> Response:
    after = last_event_id
    if after is None and last_event_header and last_event_header.strip().isdigit():
        after = int(last_event_header.strip())
    stream = ctx.hub.stream(
        workflow,
        after if after is not None else (None if follow else 0),
        follow,
        ctx.stopping.is_set,
    )
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
