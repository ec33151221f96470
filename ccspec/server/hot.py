"""The hot path: GETs whose body is cached and still fresh are answered before FastAPI routes.

A dashboard or a script polling a large workflow asks for the same document over and over;
`Reader.cached` knows in microseconds whether the cached body is still current. This plain
ASGI layer answers those requests from the cache without building a Request, solving
dependencies or validating parameters, which is most of a FastAPI request's cost. Anything
else (a miss, a stale entry, another path) goes on to the app, whose endpoints build the
body, cache it and answer the same way (`respond`). It sits inside the Guard, so access
checks and safe headers apply to both paths alike.
"""

from __future__ import annotations

import re
from typing import Any

from ccspec.server.reader import Built, Reader

__all__ = ["CachedReads", "accepts_gzip", "cache_key", "respond"]

Scope = dict[str, Any]

_NAME = r"[a-z0-9][a-z0-9_-]{0,62}"
_JOB = r"[a-z0-9][a-z0-9_.-]{0,199}"
_PATHS = [
    (re.compile(r"^/api/workflows/?$"), "list", "/api/workflows"),
    (re.compile(rf"^/api/workflows/({_NAME})$"), "workflow", "/api/workflows/{name}"),
    (
        re.compile(rf"^/api/workflows/({_NAME})/jobs/({_JOB})$"),
        "job",
        "/api/workflows/{name}/jobs/{job}",
    ),
    (
        re.compile(rf"^/api/workflows/({_NAME})/graph\.svg$"),
        "graph",
        "/api/workflows/{name}/graph.svg",
    ),
    (re.compile(rf"^/api/workflows/({_NAME})/spec$"), "spec", "/api/workflows/{name}/spec"),
]


def cache_key(path: str) -> tuple[tuple[str, ...], str] | None:
    """(cache key, route template) of a cacheable GET path, else None."""
    if not path.startswith("/api/workflows"):
        return None
    for pattern, kind, route in _PATHS:
        match = pattern.match(path)
        if match:
            return (kind, *match.groups()), route
    return None


def respond(
    built: Built, if_none_match: str | None, accept_encoding: str | None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of a cached response: gzipped when the client accepts it and
    it is worth it, 304 when the client has this version already."""
    gzipped = built.gzipped is not None and accepts_gzip(accept_encoding)
    etag = (built.etag[:-1] + '-gz"') if gzipped else built.etag
    headers = [
        (b"etag", etag.encode()),
        (b"cache-control", b"no-cache"),
        (b"vary", b"Accept-Encoding"),
    ]
    if if_none_match is not None and etag in (t.strip() for t in if_none_match.split(",")):
        return 304, headers, b""
    body = built.gzipped if gzipped and built.gzipped is not None else built.body
    headers += [
        (b"content-type", built.media_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if gzipped:
        headers.append((b"content-encoding", b"gzip"))
    return 200, headers, body


def accepts_gzip(accept_encoding: str | None) -> bool:
    if not accept_encoding:
        return False
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=").strip()
            return not q.replace(".", "", 1).isdigit() or float(q) > 0
    return False


class CachedReads:
    def __init__(self, app: Any, reader: Reader) -> None:
        self.app = app
        self.reader = reader

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            found = cache_key(scope["path"])
            if found is not None:
                key, route = found
                built = self.reader.cached(key)
                if built is not None:
                    scope["ccspec.route"] = route  # the metrics label, as if FastAPI had routed it
                    if_none_match = accept_encoding = None
                    for name, value in scope["headers"]:
                        if name == b"if-none-match":
                            if_none_match = value.decode("latin-1")
                        elif name == b"accept-encoding":
                            accept_encoding = value.decode("latin-1")
                    status, headers, body = respond(built, if_none_match, accept_encoding)
                    await send(
                        {"type": "http.response.start", "status": status, "headers": headers}
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)
