"""The API's errors, turned into responses in one place (`ccspec.server.app`)::

    ApiError                    an HTTP status, a sentence, maybe problems and headers
    ├── NotFound (404)          no such workflow, job, attempt or spec
    ├── Unauthorized (401)      no token, or a wrong one
    ├── Forbidden (403)         writing is disabled
    ├── Conflict (409)          the upload would replace another spec
    ├── TooLarge (413)          the request body is over the limit
    ├── RangeNotSatisfiable (416)
    └── Invalid (422)           the spec would be invalid: every problem, as `ccspec validate`

Raised by the reader, the writers and the auth checks; never built inside a response.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ccspec.errors import Diagnostic
from ccspec.server.models import ErrorBody, Problem

__all__ = [
    "ApiError",
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "RangeNotSatisfiable",
    "TooLarge",
    "Unauthorized",
    "problem_of",
]


class ApiError(Exception):
    status = 500

    def __init__(self, detail: str, *, problems: Iterable[Problem] = (), headers: Mapping[str, str] | None = None) -> None:
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
        return cls(f"the spec would be invalid: {count} problem{'s' if count != 1 else ''}", problems=problems)


def problem_of(d: Diagnostic) -> Problem:
    return Problem(text=f"{d} [{d.code}]", message=d.message, code=d.code, file=d.file, line=d.line, col=d.col,
                   severity=d.severity)
