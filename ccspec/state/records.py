"""What the state store hands out: a job's record (`RecordedJob`) and an attempt's
(`Attempt`), frozen; and how their JSON columns are written and read back (lazily: most
records of a large workflow are never looked into). Used by `StateStore` and its readers."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ccspec.states import JobState
from ccspec.usage import Usage

__all__ = [
    "ENCODER",
    "Attempt",
    "LazyJSON",
    "RecordedJob",
    "attempt_from_row",
    "from_json",
    "to_json",
    "usage_from_row",
]


@dataclass(frozen=True, slots=True)
class RecordedJob:
    workflow: str
    id: str
    name: str
    state: JobState
    reason: str | None
    fingerprint: str | None  # of the last launch
    parts: Mapping[str, str]
    success_fingerprint: str | None
    success_parts: Mapping[str, str]
    success_seq: int | None  # attempt id of the last success: a logical clock across jobs
    outputs: Mapping[str, Any]
    attempts: int
    last_attempt: int | None
    updated: float | None


@dataclass(frozen=True)
class Attempt:
    id: int
    workflow: str
    job: str
    number: int
    host: str
    handle: str | None
    state: JobState
    reason: str | None
    exit_code: int | None
    fingerprint: str | None
    run_dir: str | None
    log_path: str | None
    created: float | None
    started: float | None
    finished: float | None
    progress: float | None
    message: str | None
    outputs: Mapping[str, Any]
    usage: Usage | None = None  # measured resource usage (None: not measured)
    usage_warning: str | None = None  # when it did not fit the job's `resources`


# one for every record: json.dumps makes one a call
ENCODER = json.JSONEncoder(sort_keys=True, default=str)


def to_json(value: Any) -> str | None:
    return None if value is None else ENCODER.encode(value)


def from_json(text: str | None) -> Any:
    return json.loads(text) if text else {}


class LazyJSON(Mapping[str, Any]):
    """A JSON object from the database, parsed on first use: most records of a large
    workflow are never looked into (their fingerprints match)."""

    __slots__ = ("_text", "_value")

    def __init__(self, text: str | None) -> None:
        self._text = text
        self._value: dict[str, Any] | None = None if text and text != "{}" else {}

    def _data(self) -> dict[str, Any]:
        if self._value is None:
            self._value = json.loads(self._text or "{}")
        return self._value

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())


def attempt_from_row(r: sqlite3.Row) -> Attempt:
    return Attempt(
        id=r["id"],
        workflow=r["workflow"],
        job=r["job"],
        number=r["number"],
        host=r["host"],
        handle=r["handle"],
        state=JobState(r["state"]),
        reason=r["reason"],
        exit_code=r["exit_code"],
        fingerprint=r["fingerprint"],
        run_dir=r["run_dir"],
        log_path=r["log_path"],
        created=r["created"],
        started=r["started"],
        finished=r["finished"],
        progress=r["progress"],
        message=r["message"],
        outputs=LazyJSON(r["outputs"]),
        usage=usage_from_row(r),
        usage_warning=r["usage_warning"],
    )


def usage_from_row(r: sqlite3.Row) -> Usage | None:
    """The usage columns of an attempt's row (None when none was measured)."""
    wall, cpu, rss = r["wall"], r["cpu"], r["max_rss"]
    if wall is None and cpu is None and rss is None:
        return None
    return Usage(wall, cpu, rss)
