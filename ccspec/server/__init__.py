"""`ccspec serve`: the status API, its OpenAPI GUI and the live dashboard.

    from ccspec.server import ServeConfig, create_app, run
    app = create_app(ServeConfig(state=Path(".ccspec"), specs=Path("specs")))
    run(app, "127.0.0.1", 8000)        # until SIGINT/SIGTERM

FastAPI and uvicorn are imported only here, never by `ccspec --help` or the other commands.
"""

from __future__ import annotations

from ccspec.server.app import MAX_UPLOAD, ServeConfig, create_app, run

__all__ = ["MAX_UPLOAD", "ServeConfig", "create_app", "run"]
