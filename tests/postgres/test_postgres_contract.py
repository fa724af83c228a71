"""The storage contracts on the PostgreSQL backend, on a real PostgreSQL 18 with pgvector: the whole
``StorageContract`` (keys, namespaces, collections, documents, filters, sorts, cursors, exact vector and
BM25 search, restarts and other instances), retrievers, execution records, and BM25 against an exact
reference after random writes. The cache, interaction, fusion and evaluation stores come next."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from siftline.storage.postgres.backend import PostgresStorage
from siftline.testing.cache_contract import CacheStoreContract
from siftline.testing.contract import OpenStorage, StorageContract
from siftline.testing.learning_contract import (
    EvaluationStoreContract,
    FusionStoreContract,
    InteractionStoreContract,
)
from siftline.testing.records_contract import RecordStoreContract
from siftline.testing.retrievers_contract import RetrieverStoreContract
from siftline.testing.servers_contract import ServersContract
from siftline.testing.text_contract import TextSearchContract


def _opener(database: str) -> Iterator[OpenStorage]:
    """``open_storage`` over one database: every instance it opened is closed afterwards."""
    opened: list[PostgresStorage] = []

    def open_() -> PostgresStorage:
        opened.append(PostgresStorage(database, pool_size=4))
        return opened[-1]

    yield open_  # type: ignore[misc]
    for instance in reversed(opened):
        instance.close()


class TestPostgresRetrieverStore(RetrieverStoreContract):
    @pytest.fixture
    def open_storage(self, database: str) -> Iterator[OpenStorage]:
        yield from _opener(database)


class TestPostgresRecordStore(RecordStoreContract):
    @pytest.fixture
    def open_storage(self, database: str) -> Iterator[OpenStorage]:
        yield from _opener(database)


class TestPostgresStorageContract(StorageContract):
    @pytest.fixture
    def open_storage(self, database: str) -> Iterator[OpenStorage]:
        yield from _opener(database)


class TestPostgresTextSearch(TextSearchContract):
    @pytest.fixture
    def open_storage(self, database: str) -> Iterator[OpenStorage]:
        yield from _opener(database)


class TestPostgresCacheStore(CacheStoreContract):
    @pytest.fixture
    def open_storage(self, database: str) -> Iterator[OpenStorage]:
        yield from _opener(database)


class TestPostgresInteractionStore(InteractionStoreContract):
    @pytest.fixture
    def open_storage(self, database: str) -> Iterator[OpenStorage]:
        yield from _opener(database)


class TestPostgresFusionStore(FusionStoreContract):
    @pytest.fixture
    def open_storage(self, database: str) -> Iterator[OpenStorage]:
        yield from _opener(database)


class TestPostgresEvaluationStore(EvaluationStoreContract):
    @pytest.fixture
    def open_storage(self, database: str) -> Iterator[OpenStorage]:
        yield from _opener(database)


class TestPostgresServers(ServersContract):
    @pytest.fixture
    def open_storage(self, database: str) -> Iterator[OpenStorage]:
        yield from _opener(database)
