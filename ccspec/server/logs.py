"""A job's log over HTTP: the whole file, its last N lines, a byte range, or followed as it grows.

Byte ranges come from `offset`/`length` or an HTTP `Range: bytes=...` header (answered with
206). Secrets are masked by as many `*` as they have bytes, so offsets stay valid; a secret
that straddles the edge of a range is masked too, because a few bytes around the range are
read with it. Bodies are streamed in chunks, never read whole. Used by
`ccspec.server.routes.logs`.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ccspec.redact import Redactor
from ccspec.server.errors import RangeNotSatisfiable
from ccspec.states import FINAL, JobState

__all__ = [
    "CHUNK",
    "LogSlice",
    "choose_slice",
    "follow",
    "locate",
    "parse_range",
    "read_slice",
    "tail_offset",
]

CHUNK = 64 * 1024
FOLLOW_EVERY = 0.25  # seconds between reads of a followed log
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


@dataclass(frozen=True)
class LogSlice:
    start: int
    end: int  # exclusive
    partial: bool = False  # answer 206 with Content-Range (a Range header asked for it)


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """[start, end) of a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range; None when the
    header is not one range of bytes (then the whole log is sent, as HTTP allows). Raises
    RangeNotSatisfiable when it asks for bytes past the end."""
    match = _RANGE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last n bytes
        n = int(last)
        if n == 0:
            raise RangeNotSatisfiable(f"an empty suffix range; the log has {size} bytes", size)
        return (max(0, size - n), size)
    start = int(first)
    end = size if not last else min(size, int(last) + 1)
    if start >= size or (last and int(last) < start):
        raise RangeNotSatisfiable(
            f"range {header.strip()!r} is outside the log's {size} bytes", size
        )
    return (start, end)


def tail_offset(fh: BinaryIO, size: int, lines: int) -> int:
    """Offset of the first of the last `lines` lines (a final newline ends a line, it does
    not start an empty one)."""
    if lines <= 0:
        return size
    position = size
    wanted = lines + 1  # the newline before the first line wanted
    skip_final = True
    while position > 0:
        step = min(CHUNK, position)
        position -= step
        fh.seek(position)
        block = fh.read(step)
        index = len(block)
        if skip_final and block.endswith(b"\n"):
            index -= 1
        skip_final = False
        while True:
            index = block.rfind(b"\n", 0, index)
            if index < 0:
                break
            wanted -= 1
            if wanted == 1:
                return position + index + 1
    return 0


def choose_slice(
    fh: BinaryIO | None,
    size: int,
    *,
    tail: int | None,
    offset: int | None,
    length: int | None,
    range_header: str | None,
) -> LogSlice:
    """Which bytes to send: a Range header wins, then offset/length, then tail, else all."""
    if range_header:
        found = parse_range(range_header, size)
        if found is not None:
            return LogSlice(found[0], found[1], partial=True)
    if offset is not None or length is not None:
        start = min(offset or 0, size)
        end = size if length is None else min(size, start + length)
        return LogSlice(start, end)
    if tail is not None and fh is not None:
        return LogSlice(tail_offset(fh, size, tail), size)
    return LogSlice(0, size)


class _Window:
    """Passes on only the bytes of [start, end) from a stream that began at `position`."""

    def __init__(self, position: int, start: int, end: float) -> None:
        self.position = position
        self.start = start
        self.end = end

    def __call__(self, data: bytes) -> bytes:
        lo = max(self.start, self.position)
        hi = min(self.end, self.position + len(data))
        out = data[lo - self.position : int(hi) - self.position] if hi > lo else b""
        self.position += len(data)
        return out


def read_slice(path: Path, piece: LogSlice, redactor: Redactor) -> Iterator[bytes]:
    """The bytes of `piece`, secrets masked, in chunks (a thread may iterate it)."""
    if piece.end <= piece.start:
        return
    margin = max(0, redactor.longest - 1)
    first = max(0, piece.start - margin)
    window = _Window(first, piece.start, piece.end)
    stream = redactor.stream()
    with open(path, "rb") as fh:
        fh.seek(first)
        remaining = piece.end + margin - first
        while remaining > 0:
            data = fh.read(min(CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            out = window(stream.feed(data))
            if out:
                yield out
    out = window(stream.flush())
    if out:
        yield out


async def follow(
    path: Path | None,
    start: int,
    redactor: Redactor,
    state: Callable[[], JobState],
    stopping: Callable[[], bool] = lambda: False,
    every: float = FOLLOW_EVERY,
) -> AsyncIterator[bytes]:
    """The log from `start` on, as it grows, until the attempt has ended and all is sent."""
    margin = max(0, redactor.longest - 1)
    first = max(0, start - margin)
    window = _Window(first, start, float("inf"))
    stream = redactor.stream()
    position = first
    while not stopping():
        data = b""
        if path is not None:
            try:
                with open(path, "rb") as fh:
                    fh.seek(position)
                    data = fh.read(CHUNK)
            except OSError:
                data = b""
        if data:
            position += len(data)
            out = window(stream.feed(data))
            if out:
                yield out
            continue
        if await asyncio.to_thread(state) in FINAL:
            if path is not None and position < _size(path):
                continue  # written just before the end
            break
        await asyncio.sleep(every)
    out = window(stream.flush())
    if out:
        yield out


def locate(
    path: Path | None,
    tail: int | None,
    offset: int | None,
    length: int | None,
    range_header: str | None,
) -> tuple[int, LogSlice]:
    """The log's size now and the slice a request asks for (reads the end of the file for `tail`)."""
    size = _size(path) if path is not None else 0
    if path is None or size == 0:
        return size, choose_slice(
            None, size, tail=tail, offset=offset, length=length, range_header=range_header
        )
    try:
        with open(path, "rb") as fh:
            return size, choose_slice(
                fh, size, tail=tail, offset=offset, length=length, range_header=range_header
            )
    except OSError:  # removed since: as if empty
        return 0, choose_slice(
            None, 0, tail=tail, offset=offset, length=length, range_header=range_header
        )


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
