"""Schemathesis hooks for tests/test_server_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

The event stream and a followed log are endless by design; the fuzzer asks for their finite
forms (`follow=false`), so every request it makes gets a whole response."""

from __future__ import annotations

from typing import Any

import schemathesis

STREAMS = {"/api/events", "/api/workflows/{name}/jobs/{job}/log"}


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    if case.operation.path in STREAMS:
        case.query = {**(case.query or {}), "follow": "false"}
    return case
