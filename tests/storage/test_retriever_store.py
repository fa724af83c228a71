"""The RetrieverStore contract run on the SQLite backend."""

from __future__ import annotations

from siftline.testing.retrievers_contract import RetrieverStoreContract


class TestSQLiteRetrieverStore(RetrieverStoreContract):
    pass
