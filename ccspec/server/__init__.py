"""`ccspec serve`: the status API, its OpenAPI GUI and the live dashboard.

    from ccspec.server import ServeConfig, create_app
    app = create_app(ServeConfig(state=Path(".ccspec"), specs=Path("specs")))

FastAPI and uvicorn are imported only here, never by `ccspec --help` or the other commands.
"""

from __future__ import annotations

from ccspec.server.app import MAX_UPLOAD, ServeConfig, create_app

__all__ = ["MAX_UPLOAD", "ServeConfig", "create_app"]
