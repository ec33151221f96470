"""The JSON Schema of the spec language, generated from the pydantic models.

`schemas/workflow.schema.json` is this text, committed; `tests/test_schema.py` fails when it
is stale. Regenerate with `ccspec schema > schemas/workflow.schema.json`.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["SCHEMA_DIALECT", "schema", "schema_text"]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema() -> dict[str, Any]:
    from ccspec.spec.models import Workflow

    generated = Workflow.model_json_schema()
    return {"$schema": SCHEMA_DIALECT, **_names_checked(generated)}


def _names_checked(node: Any) -> Any:
    """Pydantic writes constrained dict keys as `patternProperties`, which lets other keys
    through; `propertyNames` + `additionalProperties` rejects them, as ccspec does."""
    if isinstance(node, list):
        return [_names_checked(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _names_checked(v) for k, v in node.items()}
    patterns = out.get("patternProperties")
    if isinstance(patterns, dict) and len(patterns) == 1 and "additionalProperties" not in out:
        ((pattern, value),) = patterns.items()
        del out["patternProperties"]
        out["propertyNames"] = {"pattern": pattern}
        out["additionalProperties"] = value
    return out


def schema_text() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"
