"""The SQLite backend under the store contracts: ``open_storage`` opens a new SQLiteStorage over one
data directory per test (each instance closed afterwards), as a server restart would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from siftline.storage.sqlite.backend import SQLiteStorage


@pytest.fixture
def open_storage(tmp_path: Path) -> Iterator[Callable[[], SQLiteStorage]]:
    opened: list[SQLiteStorage] = []

    def open_() -> SQLiteStorage:
        opened.append(SQLiteStorage(tmp_path / "siftline.db", tmp_path / "vectors"))
        return opened[-1]

    yield open_
    for instance in reversed(opened):
        instance.close()
