"""What the route modules of `ccspec serve` share: path parameters, the documented error
responses (every one an `ErrorBody`), and how a cached body becomes a response."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path as PathParam
from fastapi import Request
from fastapi.responses import Response

from ccspec.server.hot import respond
from ccspec.server.models import JOB_PATTERN, ErrorBody
from ccspec.server.reader import Built
from ccspec.spec.models import NAME_PATTERN

__all__ = ["SPEC_BODY", "STATE_ERRORS", "JobId", "JobName", "Name", "cached_response", "errors"]

SPEC_BODY = {"type": "object", "description": "A workflow spec (see /api/schema)"}
# what a route reading the state store may answer (ccspec.server.errors.STATUS)
STATE_ERRORS = (
    500,
    503,
)

Name = Annotated[
    str, PathParam(pattern=NAME_PATTERN, description="Workflow name", examples=["quickstart"])
]
JobId = Annotated[str, PathParam(pattern=JOB_PATTERN, description="Job id", examples=["summarise"])]
JobName = Annotated[
    str, PathParam(pattern=NAME_PATTERN, description="Job name (a key under `jobs:`)")
]


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "The body is not JSON",
        401: "No token, or a wrong one",
        403: "Writing is disabled",
        404: "No such workflow, job or attempt",
        409: "It exists already",
        413: "Request body over the limit",
        416: "Range outside the log",
        422: "Invalid request or spec: every problem, as `ccspec validate` prints them",
        500: "The state cannot be read (e.g. a newer ccspec wrote it): the detail says why",
        503: "The state database is locked or its folder cannot be written: try again later",
    }
    return {code: {"model": ErrorBody, "description": text[code]} for code in codes}


def cached_response(request: Request, built: Built) -> Response:
    status, headers, body = respond(
        built, request.headers.get("if-none-match"), request.headers.get("accept-encoding")
    )
    response = Response(body, status_code=status)
    response.raw_headers = headers  # exactly what the hot path sends
    return response
