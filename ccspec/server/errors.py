"""The API's errors, and every `CcspecError`, turned into responses in one place.

The API's own errors belong to ccspec's one error tree (ccspec/errors.py)::

    CcspecError
    └── ApiError                an HTTP status, a sentence, maybe problems and headers
    ├── NotFound (404)          no such workflow, job, attempt or spec
    ├── Unauthorized (401)      no token, or a wrong one
    ├── Forbidden (403)         writing is disabled
    ├── Conflict (409)          the upload would replace another spec
    ├── TooLarge (413)          the request body is over the limit
    ├── RangeNotSatisfiable (416)
    └── Invalid (422)           the spec would be invalid: every problem, as `ccspec validate`

Raised by the reader, the writers and the auth checks; never built inside a response. Any
other `CcspecError` a route lets escape (the state store's, the spec pipeline's) gets the
status `STATUS` gives its class: `failure` builds the response, and the one exception
handler `ccspec.server.app` registers for `CcspecError` calls it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from starlette.responses import JSONResponse

from ccspec.errors import (
    CcspecError,
    Diagnostic,
    LeaseHeld,
    SpecInvalid,
    StateBusy,
    StateFolderUnwritable,
    TemporaryTargetError,
    UsageError,
)
from ccspec.server.models import ErrorBody, Problem

__all__ = [
    "STATUS",
    "ApiError",
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "RangeNotSatisfiable",
    "TooLarge",
    "Unauthorized",
    "failure",
    "problem_of",
    "status_of",
]

# The status of a CcspecError that is not an ApiError, by class (the nearest in its MRO
# wins); any other is 500: the server could not answer, and the detail says why.
STATUS: dict[type[CcspecError], int] = {
    UsageError: 400,
    LeaseHeld: 409,  # another apply holds the workflow
    SpecInvalid: 422,
    StateBusy: 503,  # temporary: the state database is locked, or its folder cannot be written
    StateFolderUnwritable: 503,
    TemporaryTargetError: 503,
}


class ApiError(CcspecError):
    status = 500

    def __init__(
        self,
        detail: str,
        *,
        problems: Iterable[Problem] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems = list(problems)
        self.headers = dict(headers or {})

    def body(self) -> ErrorBody:
        return ErrorBody(detail=self.detail, problems=self.problems)


class NotFound(ApiError):
    status = 404


class Unauthorized(ApiError):
    status = 401

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="ccspec"'})


class Forbidden(ApiError):
    status = 403


class Conflict(ApiError):
    status = 409


class TooLarge(ApiError):
    status = 413


class RangeNotSatisfiable(ApiError):
    status = 416

    def __init__(self, detail: str, size: int) -> None:
        super().__init__(detail, headers={"Content-Range": f"bytes */{size}"})


class Invalid(ApiError):
    status = 422

    @classmethod
    def from_diagnostics(cls, diagnostics: Iterable[Diagnostic]) -> Invalid:
        problems = [problem_of(d) for d in diagnostics]
        count = len(problems)
        return cls(
            f"the spec would be invalid: {count} problem{'s' if count != 1 else ''}",
            problems=problems,
        )


def problem_of(d: Diagnostic) -> Problem:
    return Problem(
        text=f"{d} [{d.code}]",
        message=d.message,
        code=d.code,
        file=d.file,
        line=d.line,
        col=d.col,
        severity=d.severity,
    )


def status_of(exc: CcspecError) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def failure(exc: CcspecError) -> JSONResponse:
    """The response for `exc`: its status, and an ErrorBody (every problem of a SpecInvalid)."""
    if isinstance(exc, ApiError):
        body, headers = exc.body(), exc.headers
    elif isinstance(exc, SpecInvalid):
        body, headers = Invalid.from_diagnostics(exc.diagnostics).body(), {}
    else:
        body, headers = ErrorBody(detail=str(exc)), {}
    return JSONResponse(body.model_dump(), status_code=status_of(exc), headers=headers)
