"""Files that ship with ccspec: launch templates and the JSON Schema.

In a wheel they live in `ccspec/_data/` (see pyproject's force-include); in a source
checkout (editable install) they are the repository's `templates/` and `schemas/`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["data_dir", "template_path"]

_PACKAGE = Path(__file__).resolve().parent


def data_dir(kind: str) -> Path:
    for candidate in (_PACKAGE / "_data" / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"ccspec's {kind}/ folder is missing from the installation")


def template_path(name: str) -> Path:
    return data_dir("templates") / name
