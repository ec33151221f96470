"""The job output protocol (DESIGN.md, contract): progress and outputs mined from logs.

    # ccspec progress=40 message="epoch 2 of 5"
    # ccspec output accuracy=0.973
    # cloudmesh status=running progress=40 pid=123       (cloudmesh-cc's lines, read too)

`LogMiner` reads a log incrementally from an offset, so a long log is read once, whichever
target it comes from. Parsing is pure; the engine feeds it bytes.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LogMiner", "parse_line", "parse_value"]

_LINE = re.compile(r"^\s*#\s*(ccspec|cloudmesh)\s+(.*)$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def parse_value(text: str) -> Any:
    """An output value: JSON when it parses (numbers, lists, objects, quoted text), else text."""
    text = text.strip()
    if text in ("true", "false", "null") or _NUMBER.match(text) or text[:1] in "[{\"":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def _pairs(text: str) -> dict[str, str]:
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    out: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if sep:
            out[key] = value
    return out


def parse_line(line: str) -> tuple[str, dict[str, Any]] | None:
    """("progress", {...}) or ("output", {name: value}) or None for an ordinary line."""
    match = _LINE.match(line)
    if not match:
        return None
    who, rest = match.groups()
    if who == "ccspec" and rest.startswith("output "):
        key, sep, value = rest[len("output "):].strip().partition("=")
        if not sep or not key:
            return None
        return "output", {key.strip(): parse_value(value)}
    pairs = _pairs(rest)
    if who == "ccspec" and rest.startswith("progress"):
        return "progress", pairs
    if who == "cloudmesh" and pairs:
        return "progress", pairs
    return None


@dataclass
class LogMiner:
    """Incremental reader: feed it what the log grew by; it keeps the unfinished last line."""

    offset: int = 0
    progress: float | None = None
    message: str | None = None
    status: str | None = None  # cloudmesh's status= word, if any
    outputs: dict[str, Any] = field(default_factory=dict)
    _partial: bytes = b""

    def feed(self, data: bytes, *, final: bool = False) -> bool:
        """Consume new bytes; True when progress, message or outputs changed."""
        self.offset += len(data)
        buffer = self._partial + data
        lines = buffer.split(b"\n")
        self._partial = b"" if final else lines.pop()
        changed = False
        for raw in lines:
            if b"#" not in raw:
                continue
            parsed = parse_line(raw.decode("utf-8", "replace").rstrip("\r"))
            if parsed is None:
                continue
            kind, values = parsed
            if kind == "output":
                self.outputs.update(values)
                changed = True
                continue
            if "progress" in values:
                try:
                    self.progress = max(0.0, min(100.0, float(values["progress"])))
                    changed = True
                except ValueError:
                    pass
            if "message" in values:
                self.message = values["message"]
                changed = True
            if "status" in values:
                self.status = values["status"]
        return changed
