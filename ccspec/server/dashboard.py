"""The live dashboard at `/`: Jinja pages over the API's own data, kept live by a little plain
JavaScript listening to `/api/events`. No front-end build step: the templates, one script and
one stylesheet ship in `templates/dashboard/` (inside the package, like every template).

Pages are rendered from the same cached, redacted JSON the API serves, so they show exactly
what the API shows. They carry a strict Content-Security-Policy: scripts, styles and
pictures come from this server only, and nothing inline runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ccspec.resources import data_dir

__all__ = ["CSP", "Dashboard", "errors_first", "static_dir"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def static_dir() -> Path:
    return data_dir("templates") / "dashboard" / "static"


def errors_first(workflows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The workflow list as the dashboard shows it: specs with errors (invalid, or watch
    could not reconcile them) first, then failed ones, then the rest in the API's order.
    dashboard.js orders the live list the same way."""

    def rank(w: dict[str, Any]) -> int:
        if w.get("errors") or w.get("phase") in ("invalid", "error"):
            return 0
        return 1 if w.get("phase") == "failed" else 2

    return sorted(workflows, key=rank)


class Dashboard:
    def __init__(self) -> None:
        from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

        self.env = Environment(
            loader=FileSystemLoader(data_dir("templates") / "dashboard"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=StrictUndefined,
        )

    def _render(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)

    def index(self, workflows: bytes) -> str:
        listed = json.loads(workflows)["workflows"]
        return self._render("index.html", workflows=errors_first(listed))

    def workflow(self, detail: bytes) -> str:
        return self._render("workflow.html", w=json.loads(detail))

    def job(self, detail: bytes) -> str:
        return self._render("job.html", j=json.loads(detail))

    def login(self) -> bytes:
        return self._render("login.html").encode()
