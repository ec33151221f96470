"""The door of the API, a plain ASGI middleware: access checks, body size limit, safe headers.

Runs before any endpoint (so before a body is parsed): a request that may not go on is
answered here (`ccspec.server.auth`), a write body over the limit gets 413 and is never
read whole, and every response gets headers that stop sniffing and framing. The dashboard's
pages answer a missing session with a small login page instead of JSON, and turn
`/?token=TOKEN` into a session cookie (then drop the token from the address).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.types import Message, Receive

from ccspec.server.auth import COOKIE, WRITE_METHODS, Access, denial
from ccspec.server.errors import ApiError, TooLarge, Unauthorized

__all__ = ["SECURITY_HEADERS", "Guard", "is_page"]

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
Scope = dict[str, Any]


def is_page(path: str) -> bool:
    """A dashboard page (HTML), as opposed to the API, docs and static files."""
    return path == "/" or path.startswith("/workflows/")


class Guard:
    def __init__(
        self, app: Any, access: Access, max_body: int, login_page: Callable[[], bytes]
    ) -> None:
        self.app = app
        self.access = access
        self.max_body = max_body
        self.login_page = login_page

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if method == "GET" and is_page(path) and self.access.token is not None:
            token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
            if token:
                await self._login_link(path, token[0], send)
                return
        error = denial(method, path, headers, self.access)
        if error is not None:
            if method == "GET" and is_page(path) and isinstance(error, Unauthorized):
                await _send(send, 401, self.login_page(), b"text/html; charset=utf-8")
            else:
                await send_error(send, error)
            return
        if method in WRITE_METHODS:
            body = await self._body(headers, receive)
            if isinstance(body, ApiError):
                await send_error(send, body)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    async def _login_link(self, path: str, token: str, send: Any) -> None:
        if not self.access.bearer_ok(f"Bearer {token}"):
            await _send(send, 401, self.login_page(), b"text/html; charset=utf-8")
            return
        cookie = f"{COOKIE}={self.access.session}; HttpOnly; SameSite=Strict; Path=/"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", quote(path).encode()),
                    (b"set-cookie", cookie.encode()),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _body(self, headers: dict[str, str], receive: Any) -> bytes | ApiError:
        """The whole request body, or TooLarge as soon as it passes the limit."""
        too_large = TooLarge(
            f"the request body is over the limit of {self.max_body:,} bytes (--max-upload)"
        )
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            return too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # then wait for the disconnect, as the server would say it

    return replay


def _with_headers(send: Any) -> Any:
    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            names = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


async def send_error(send: Any, error: ApiError) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
    await _send(
        send, error.status, error.body().model_dump_json().encode(), b"application/json", headers
    )


async def _send(
    send: Any,
    status: int,
    body: bytes,
    media_type: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", media_type),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
