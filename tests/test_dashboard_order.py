"""The dashboard's list of workflows: specs with errors first, then failed ones, then the
rest in the API's order (the page as the server renders it, from the API's JSON)."""

from __future__ import annotations

import json
import re


def test_the_dashboard_lists_specs_with_errors_first_then_failed_ones() -> None:
    from ccspec.server.dashboard import Dashboard

    def item(name: str, phase: str, errors: list[str] | None = None) -> dict[str, object]:
        return {"name": name, "phase": phase, "counts": {}, "total": 0, "errors": errors or []}

    listed = [
        item("alpha", "succeeded"),
        item("beta", "failed"),
        item("gamma", "running"),
        item("delta", "invalid", ["jobs.a: needs an unknown job"]),
        item("eps", "succeeded", ["watch could not reconcile this workflow since ..."]),
    ]
    html = Dashboard().index(json.dumps({"workflows": listed}).encode())
    shown = re.findall(r'data-workflow="([^"]+)"', html)
    assert shown == ["delta", "eps", "beta", "alpha", "gamma"]
