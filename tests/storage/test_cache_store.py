"""The CacheStore contract (with match_documents, field_values and write_version bumps) run on SQLite."""

from __future__ import annotations

from siftline.testing import CacheStoreContract


class TestSQLiteCacheStore(CacheStoreContract):
    pass
