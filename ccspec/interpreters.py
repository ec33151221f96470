"""Which program runs a `script:` job, from its suffix (or `interpreter:`).

Shared by the spec checks (a script nobody knows how to run is an error before anything
launches) and by the targets that build the command line.
"""

from __future__ import annotations

import shlex
from pathlib import PurePath

__all__ = ["SUFFIXES", "interpreter_argv"]

SUFFIXES: dict[str, list[str]] = {
    ".sh": ["bash"],
    ".bash": ["bash"],
    ".zsh": ["zsh"],
    ".py": ["python"],
    ".r": ["Rscript"],
    ".jl": ["julia"],
    ".pl": ["perl"],
    ".rb": ["ruby"],
    ".js": ["node"],
    ".mjs": ["node"],
    ".ps1": ["powershell", "-NoProfile", "-ExecutionPolicy", "Bypass", "-File"],
    ".bat": ["cmd", "/c"],
    ".cmd": ["cmd", "/c"],
}


def interpreter_argv(
    script: str, interpreter: str | None, *, python: str = "python"
) -> list[str] | None:
    """The argv prefix that runs `script`, or None when the suffix is unknown.

    `python` names the Python to use for `.py` files (the runner's own locally, the host's
    `python:` remotely).
    """
    if interpreter:
        return shlex.split(interpreter)
    argv = SUFFIXES.get(PurePath(script).suffix.lower())
    if argv is None:
        return None
    return [python] if argv == ["python"] else list(argv)
