"""The routes of `ccspec serve`, one `APIRouter` module per concept, included by
`create_app` (ccspec.server.app) in this order:

- workflows: the recorded state of workflows and jobs, the graph, the spec file
- logs: a job's log, whole, in part or followed
- service: the spec language's schema, health, metrics, the dashboard's session
- events: the server-sent event stream
- writes: changes to spec files (opt-in)
- pages: the dashboard's HTML pages

Each route gets the app's collaborators as the dependency `Ctx` (ccspec.server.context).
"""

from __future__ import annotations

from fastapi import APIRouter

from ccspec.server.routes import events, logs, pages, service, workflows, writes

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (
    workflows.router,
    logs.router,
    service.router,
    events.router,
    writes.router,
    pages.router,
)
