"""What every route of `ccspec serve` works with, built once by `create_app` (ccspec.server.app).

`Context` holds the server's collaborators (the reader, the event hub, the spec writer, the
metrics, the access rules, the dashboard) and the one shared build of each uncached body;
routes (ccspec.server.routes) receive it as the FastAPI dependency `Ctx`, never from a
module global, so two apps in one process stay apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from ccspec.server.auth import Access
from ccspec.server.dashboard import Dashboard
from ccspec.server.metrics import Metrics
from ccspec.server.reader import Built, Reader
from ccspec.server.sse import POLL_EVERY, EventHub
from ccspec.server.writes import SpecWriter

__all__ = ["MAX_UPLOAD", "Context", "Ctx", "ServeConfig", "context_of"]

MAX_UPLOAD = 1024 * 1024  # bytes of a request body (a spec of ~10,000 jobs)


@dataclass(frozen=True)
class ServeConfig:
    state: Path = Path(".ccspec")
    specs: Path = Path("specs")
    token: str | None = None
    allow_write: bool = False
    max_upload: int = MAX_UPLOAD
    poll_every: float = POLL_EVERY
    environ: Mapping[str, str] = field(default_factory=dict)  # environment secrets are masked


class Context:
    """The collaborators of one app, and the builds of response bodies under way."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.reader = Reader(
            config.state,
            config.specs,
            environ=config.environ,
            extra_secrets=[config.token] if config.token else [],
        )
        self.hub = EventHub(self.reader, config.poll_every)
        self.writer = SpecWriter(self.reader.specs)
        self.metrics = Metrics()
        self.access = Access(config.token, config.allow_write)
        self.dashboard = Dashboard()
        self.stopping = asyncio.Event()  # set at shutdown: event streams and followed logs end
        self._building: dict[
            tuple[str, ...], tuple[tuple[int, int | None], asyncio.Future[Built]]
        ] = {}

    async def cached(
        self, key: tuple[str, ...], build: Callable[[], tuple[bytes, str, list[Path]]]
    ) -> Built:
        """The fresh body for `key`: from the cache, else built in a worker thread. Requests
        that miss at the same state share one build instead of queueing a thread each."""
        reader = self.reader
        built = reader.cached(key)  # the common case: no thread, no serialisation
        if built is not None:
            return built
        base = reader.base()
        building = self._building
        running = building.get(key)
        if running is None or running[0] != base:  # a build begun before a change would be stale
            future = asyncio.ensure_future(run_in_threadpool(reader.get, key, build))
            running = building[key] = (base, future)

            def done(_: object, entry: tuple[Any, Any] = running) -> None:
                if building.get(key) is entry:
                    del building[key]

            future.add_done_callback(done)
        return await asyncio.shield(running[1])


async def context_of(request: Request) -> Context:
    """The FastAPI dependency: the context of the app serving `request` (async: FastAPI would
    run a plain function in a worker thread, a hand-over on every request)."""
    context: Context = request.app.state.context
    return context


Ctx = Annotated[Context, Depends(context_of)]
