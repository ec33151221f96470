"""Diagnostics printed three ways: text for people, JSON for tools, GitHub annotations for CI.

Called by the `validate` command (and by any command that stops on invalid specs).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

from ccspec.errors import Diagnostic

__all__ = ["FORMATS", "format_report"]

FORMATS = ("text", "json", "github")


def format_report(diagnostics: Sequence[Diagnostic], files: Sequence[str], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(
            {
                "valid": not any(d.severity == "error" for d in diagnostics),
                "files": list(files),
                "diagnostics": [d.as_dict() for d in diagnostics],
            },
            indent=2,
        )
    if fmt == "github":
        return "\n".join(_github(d) for d in diagnostics)
    return "\n".join(_text(d) for d in diagnostics)


def _text(d: Diagnostic) -> str:
    """`file:line:col: message [code]`; a warning says so, as compilers do."""
    if d.severity == "error":
        return f"{d} [{d.code}]"
    return str(replace(d, message=f"{d.severity}: {d.message}")) + f" [{d.code}]"


def summary(diagnostics: Sequence[Diagnostic], files: Sequence[str]) -> str:
    errors = [d for d in diagnostics if d.severity == "error"]
    warned = len(diagnostics) - len(errors)
    warnings = f"{warned} warning{'s' if warned != 1 else ''}"
    specs = f"{len(files)} spec{'s' if len(files) != 1 else ''}"
    if not errors:
        return f"{specs} valid" + (f", {warnings}" if warned else "")
    bad = len({d.file for d in errors})
    return f"{len(errors)} problem{'s' if len(errors) != 1 else ''} in {bad} of {specs}" + (
        f"; {warnings}" if warned else ""
    )


def _github(d: Diagnostic) -> str:
    # Workflow commands: https://docs.github.com/actions/reference/workflow-commands-for-github-actions
    props = f"file={_prop(d.file)},line={d.line or 1},col={d.col or 1},title={_prop('ccspec ' + d.code)}"
    return f"::{d.severity} {props}::{_data(d.message)}"


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")
