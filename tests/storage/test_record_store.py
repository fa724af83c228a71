"""The RecordStore and Servers contracts run on the SQLite backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from siftline.storage.sqlite.backend import SQLiteStorage
from siftline.testing.records_contract import RecordStoreContract
from siftline.testing.servers_contract import ServersContract


@pytest.fixture
def open_storage(tmp_path: Path) -> Iterator[Callable[[], SQLiteStorage]]:
    opened: list[SQLiteStorage] = []

    def open_() -> SQLiteStorage:
        opened.append(SQLiteStorage(tmp_path / "siftline.db", tmp_path / "vectors"))
        return opened[-1]

    yield open_
    for instance in reversed(opened):
        instance.close()


class TestSQLiteRecordStore(RecordStoreContract):
    pass


class TestSQLiteServers(ServersContract):
    pass
