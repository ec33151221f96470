"""Fixtures of the state-store tests: stores on a real SQLite file in a scratch folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ccspec.state.store import StateStore
from tests.state.records import OpenStore


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[OpenStore]:
    """Open another connection to the one database, as another runner or command would;
    all are closed at the end."""
    opened: list[StateStore] = []

    def open_one() -> StateStore:
        opened.append(StateStore(tmp_path / "state"))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> StateStore:
    return open_store()
