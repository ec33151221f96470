"""Who may read and who may write, checked before a request reaches any endpoint.

- Without a token, reads are open to whoever reaches the port (127.0.0.1 by default) and
  writing is impossible.
- With a token, every path except `/healthz`, `/docs`, `/openapi.json` and the dashboard's
  static files wants it: `Authorization: Bearer TOKEN`, or, for reads from a browser, the
  session cookie that `/?token=TOKEN` sets (as Jupyter does). The cookie holds a value
  derived from the token, never the token, and only reads accept it: a cookie would let
  another site's form write (CSRF), a header cannot be sent that way.
- Writes (POST, PUT, PATCH, DELETE): 403 unless `--allow-write`, then 401 without the token.
  Checked before the body is read, so an unauthenticated client learns nothing from it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from ccspec.server.errors import ApiError, Forbidden, Unauthorized

__all__ = ["COOKIE", "OPEN_PATHS", "Access", "new_token"]

COOKIE = "ccspec_session"
OPEN_PATHS = (
    "/healthz",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
    "/favicon.ico",
)
OPEN_PREFIXES = ("/static/", "/docs-assets/")  # the dashboard's and the API GUI's own files
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Access:
    token: str | None = None
    allow_write: bool = False

    @property
    def session(self) -> str | None:
        """The cookie value of a browser session (derived: the cookie cannot write)."""
        if self.token is None:
            return None
        return hmac.new(
            self.token.encode(), b"ccspec dashboard session", hashlib.sha256
        ).hexdigest()

    def bearer_ok(self, authorization: str | None) -> bool:
        if self.token is None or not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), self.token.encode()
        )

    def session_ok(self, cookies: Iterable[tuple[str, str]]) -> bool:
        session = self.session
        return session is not None and any(
            name == COOKIE and hmac.compare_digest(value.encode(), session.encode())
            for name, value in cookies
        )

    def check(
        self, method: str, path: str, authorization: str | None, cookies: Iterable[tuple[str, str]]
    ) -> None:
        """Raise the ApiError this request deserves, or nothing when it may go on."""
        if method in WRITE_METHODS and path != "/api/session":
            if not self.allow_write:
                raise Forbidden(
                    "writing is disabled; start `ccspec serve --allow-write` (with a token) to allow it"
                )
            if not authorization:
                raise Unauthorized("writing needs a token: send `Authorization: Bearer TOKEN`")
            if not self.bearer_ok(authorization):
                raise Unauthorized("the token is not valid")
            return
        if self.token is None or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return
        if self.bearer_ok(authorization) or self.session_ok(cookies):
            return
        raise Unauthorized(
            "this server wants a token: send `Authorization: Bearer TOKEN`, "
            "or open the dashboard once as /?token=TOKEN"
        )


def parse_cookies(header: str | None) -> list[tuple[str, str]]:
    out = []
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out.append((name.strip(), value.strip()))
    return out


def denial(method: str, path: str, headers: dict[str, str], access: Access) -> ApiError | None:
    """The error for a request that may not go on (None: it may), from its raw headers."""
    try:
        access.check(
            method, path, headers.get("authorization"), parse_cookies(headers.get("cookie"))
        )
    except ApiError as exc:
        return exc
    return None
