"""The storage contracts on the PostgreSQL backend: the parts built so far (keys, namespaces, retrievers,
execution records), on a real PostgreSQL 18 with pgvector."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from siftline.storage.postgres.backend import PostgresCatalog
from siftline.testing.contract import KeyContract, NamespaceContract, OpenStorage
from siftline.testing.records_contract import RecordStoreContract
from siftline.testing.retrievers_contract import RetrieverStoreContract


def _opener(database: str) -> Iterator[OpenStorage]:
    """``open_storage`` over one database: every instance it opened is closed afterwards."""
    opened: list[PostgresCatalog] = []

    def open_() -> PostgresCatalog:
        opened.append(PostgresCatalog(database, pool_size=4))
        return opened[-1]

    yield open_  # type: ignore[misc]
    for instance in reversed(opened):
        instance.close()


class TestPostgresCatalogContract(KeyContract, NamespaceContract):
    @pytest.fixture
    def open_storage(self, database: str) -> Iterator[OpenStorage]:
        yield from _opener(database)


class TestPostgresRetrieverStore(RetrieverStoreContract):
    @pytest.fixture
    def open_storage(self, database: str) -> Iterator[OpenStorage]:
        yield from _opener(database)


class TestPostgresRecordStore(RecordStoreContract):
    @pytest.fixture
    def open_storage(self, database: str) -> Iterator[OpenStorage]:
        yield from _opener(database)
