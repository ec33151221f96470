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
    return {"$schema": SCHEMA_DIALECT, **generated}


def schema_text() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"
