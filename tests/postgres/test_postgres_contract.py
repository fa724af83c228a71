"""The storage contract on the PostgreSQL backend: the parts built so far (keys, namespaces)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from siftline.storage.postgres.backend import PostgresCatalog
from siftline.testing.contract import KeyContract, NamespaceContract, OpenStorage


class TestPostgresCatalogContract(KeyContract, NamespaceContract):
    @pytest.fixture
    def open_storage(self, database: str) -> Iterator[OpenStorage]:
        opened: list[PostgresCatalog] = []

        def open_() -> PostgresCatalog:
            opened.append(PostgresCatalog(database, pool_size=4))
            return opened[-1]

        yield open_  # type: ignore[misc]
        for instance in reversed(opened):
            instance.close()
