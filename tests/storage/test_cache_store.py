"""The CacheStore contract (with match_documents, field_values and write_version bumps) run on SQLite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from siftline.storage.sqlite.backend import SQLiteStorage
from siftline.testing import CacheStoreContract


class TestSQLiteCacheStore(CacheStoreContract):
    @pytest.fixture
    def open_storage(self, tmp_path: Path) -> Iterator[Callable[[], SQLiteStorage]]:
        opened: list[SQLiteStorage] = []

        def open_() -> SQLiteStorage:
            opened.append(SQLiteStorage(tmp_path / "siftline.db", tmp_path / "vectors"))
            return opened[-1]

        yield open_
        for instance in reversed(opened):
            instance.close()
