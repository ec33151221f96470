"""The job output protocol (DESIGN.md, contract): progress and outputs mined from logs.

    # ccspec progress=40 message="epoch 2 of 5"
    # ccspec output accuracy=0.973
    # cloudmesh status=running progress=40 pid=123       (cloudmesh-cc's lines, read too)

`LogMiner` reads a log incrementally from an offset, so a long log is read once, whichever
target it comes from, in chunks (`ccspec.logfile` reads them), with bounded memory. Parsing
is pure; the engine feeds it bytes.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_LINE", "LogMiner", "parse_line", "parse_value"]

MAX_LINE = 1 << 20  # bytes: a longer line is skipped, not buffered (a protocol line is far shorter)

_LINE = re.compile(r"^\s*#\s*(ccspec|cloudmesh)\s+(.*)$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def parse_value(text: str) -> Any:
    """An output value: JSON when it parses (numbers, lists, objects, quoted text), else text."""
    text = text.strip()
    if text in ("true", "false", "null") or _NUMBER.match(text) or text[:1] in '[{"':
        try:
            return json.loads(text)
        except (ValueError, RecursionError):  # a job's output, not ours: nested too deep is text
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
        key, sep, value = rest[len("output ") :].strip().partition("=")
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
    """Incremental reader: feed it what the log grew by, in chunks of any size; it keeps the
    unfinished last line, at most MAX_LINE bytes of it. A longer line is no protocol line: it
    is skipped to its end, never buffered whole, so mining costs bounded memory whatever a job
    prints (lines without '#' are not even looked at)."""

    offset: int = 0
    progress: float | None = None
    message: str | None = None
    status: str | None = None  # cloudmesh's status= word, if any
    outputs: dict[str, Any] = field(default_factory=dict)
    _partial: bytes = b""
    _skipping: bool = False  # inside a line longer than MAX_LINE: drop bytes up to its newline

    def feed(self, data: bytes, *, final: bool = False) -> bool:
        """Consume new bytes (`final`: the log is complete, its last line needs no newline);
        True when progress, message or outputs changed."""
        self.offset += len(data)
        changed = False
        start = 0
        if self._skipping or self._partial:
            newline = data.find(b"\n")
            if newline < 0:  # the line goes on
                if not self._skipping and len(self._partial) + len(data) <= MAX_LINE:
                    self._partial += data
                else:
                    self._partial, self._skipping = b"", True
                if final:
                    line, self._partial, self._skipping = self._partial, b"", False
                    return bool(line) and self._line(line)
                return False
            if not self._skipping and len(self._partial) + newline <= MAX_LINE:
                changed = self._line(self._partial + data[:newline])
            self._partial, self._skipping = b"", False
            start = newline + 1
        end = data.rfind(b"\n", start) + 1 or start  # data[start:end] is whole lines
        if end > start and data.find(b"#", start, end) >= 0:
            changed = self._scan(data, start, end) or changed
        if end < len(data):  # an unfinished last line
            if len(data) - end > MAX_LINE:
                self._skipping = not final
            elif final:
                changed = self._line(data[end:]) or changed
            else:
                self._partial = data[end:]
        return changed

    def _scan(self, data: bytes, start: int, end: int) -> bool:
        """Parse the lines of data[start:end] (whole lines) that may be protocol lines: those
        whose first non-blank byte is '#'."""
        changed = False
        hash_at = data.find(b"#", start, end)
        while hash_at >= 0:
            line_start = data.rfind(b"\n", start, hash_at) + 1 or start
            line_end = data.find(b"\n", hash_at, end)
            if line_end - line_start <= MAX_LINE and not data[line_start:hash_at].strip():
                changed = self._line(data[line_start:line_end]) or changed
            hash_at = data.find(b"#", line_end + 1, end)
        return changed

    def _line(self, raw: bytes) -> bool:
        if b"#" not in raw:
            return False
        parsed = parse_line(raw.decode("utf-8", "replace").rstrip("\r"))
        if parsed is None:
            return False
        kind, values = parsed
        if kind == "output":
            self.outputs.update(values)
            return True
        changed = False
        if "progress" in values:
            try:
                value = float(values["progress"])
            except ValueError:
                value = math.nan
            if math.isfinite(value):  # "nan" and "inf" parse as floats: no percentage
                self.progress = max(0.0, min(100.0, value))
                changed = True
        if "message" in values:
            self.message = values["message"]
            changed = True
        if "status" in values:
            self.status = values["status"]
        return changed
