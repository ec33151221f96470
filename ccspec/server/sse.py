"""Server-sent events: every change of the recorded state, pushed to browsers and scripts.

One `EventHub` per app polls the store (a few microseconds when nothing changed: SQLite's
data_version) and fans new rows of its append-only `events` table out to the subscribers,
plus `progress` ticks for running jobs (progress is not an event row, so ticks carry no id).
A client that reconnects with `Last-Event-ID` first gets what it missed from the table, so
nothing is lost between two connections. Used by `GET /api/events` and the dashboard.

    id: 42
    event: job
    data: {"id": 42, "workflow": "mnist", "job": "train-cnn", "kind": "running", "state": "running", ...}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool

from ccspec.server.models import EventInfo
from ccspec.server.reader import Reader

__all__ = ["POLL_EVERY", "EventHub", "format_event"]

log = logging.getLogger("ccspec.server")

POLL_EVERY = 0.25  # seconds between looks at the store
KEEPALIVE = 15.0  # seconds of silence before a comment line keeps proxies from closing the stream
BACKLOG = 1000  # events read from the table at once
QUEUE = 10_000  # events a slow client may lag behind before it is dropped (it reconnects and catches up)


def format_event(event: EventInfo) -> str:
    kind = "progress" if event.kind == "progress" else "job"
    head = f"id: {event.id}\n" if event.id is not None else ""
    return f"{head}event: {kind}\ndata: {event.model_dump_json(exclude_none=True)}\n\n"


@dataclass(eq=False)
class _Subscriber:
    workflow: str | None
    queue: asyncio.Queue[EventInfo | None] = field(default_factory=lambda: asyncio.Queue(QUEUE))

    def offer(self, event: EventInfo | None) -> bool:
        if event is not None and self.workflow is not None and event.workflow != self.workflow:
            return True
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True


class EventHub:
    """Polls the store and publishes to subscribers; start with `run()` in the app's lifespan."""

    def __init__(self, reader: Reader, every: float = POLL_EVERY) -> None:
        self.reader = reader
        self.every = every
        self.last_id = 0
        self.subscribers: set[_Subscriber] = set()
        self._progress: dict[tuple[str, str], tuple[int, float | None, str | None]] = {}
        self._stopped = asyncio.Event()

    @property
    def clients(self) -> int:
        return len(self.subscribers)

    async def run(self) -> None:
        self.last_id = await run_in_threadpool(self.reader.max_event)
        self._progress = await run_in_threadpool(self.reader.progress)
        seen = self.reader.data_version()
        while not self._stopped.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.every)
            try:
                version = self.reader.data_version()
                if version == seen:
                    continue
                await self.poll()
                seen = version
            except sqlite3.Error as exc:  # busy or briefly unreadable: look again next time
                log.warning("ccspec serve: reading events failed (%s); retrying", exc)

    async def poll(self) -> None:
        while True:
            events = await run_in_threadpool(self.reader.events_after, self.last_id, None, BACKLOG)
            for event in events:
                self.publish(event)
            if events:
                self.last_id = max(self.last_id, max(e.id or 0 for e in events))
            if len(events) < BACKLOG:
                break
        progress = await run_in_threadpool(self.reader.progress)
        for key, value in progress.items():
            if self._progress.get(key) != value and value[1] is not None:
                self.publish(await self._tick(key, value))
        self._progress = progress

    async def _tick(
        self, key: tuple[str, str], value: tuple[int, float | None, str | None]
    ) -> EventInfo:
        workflow, job = key
        attempt, progress, message = value
        if message is not None:
            redactor = await run_in_threadpool(self.reader.redactor_of, workflow)
            message = redactor.text(message)
        return EventInfo(
            id=None,
            time=datetime.now(UTC),
            workflow=workflow,
            kind="progress",
            job=job,
            attempt_id=attempt,
            progress=round(min(100.0, max(0.0, progress or 0.0)), 1),
            message=message,
        )

    def publish(self, event: EventInfo) -> None:
        for subscriber in list(self.subscribers):
            # too far behind: drop it; it reconnects with Last-Event-ID
            if not subscriber.offer(event):
                self.subscribers.discard(subscriber)
                with contextlib.suppress(asyncio.QueueFull):
                    subscriber.queue.get_nowait()
                    subscriber.queue.put_nowait(None)

    def stop(self) -> None:
        self._stopped.set()
        for subscriber in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                subscriber.queue.put_nowait(None)
        self.subscribers.clear()

    async def stream(
        self,
        workflow: str | None,
        after: int | None,
        follow: bool = True,
        stopping: Callable[[], bool] = lambda: False,
    ) -> AsyncIterator[str]:
        """The text of an SSE response: the backlog after `after` (when given), then live
        events until the client goes away (or at once, without `follow`)."""
        subscriber = _Subscriber(workflow)
        if follow:
            self.subscribers.add(subscriber)  # before reading the backlog: nothing falls between
        try:
            yield "retry: 2000\n\n"
            sent = self.last_id if after is None else after
            if after is not None:
                while True:
                    backlog = await run_in_threadpool(
                        self.reader.events_after, sent, workflow, BACKLOG
                    )
                    for event in backlog:
                        yield format_event(event)
                        sent = max(sent, event.id or 0)
                    if len(backlog) < BACKLOG:
                        break
            if not follow:
                return
            while not stopping():
                try:
                    news = await asyncio.wait_for(subscriber.queue.get(), KEEPALIVE)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if news is None:
                    return
                if news.id is not None:
                    if news.id <= sent:
                        continue  # already sent from the backlog
                    sent = news.id
                yield format_event(news)
        finally:
            self.subscribers.discard(subscriber)
