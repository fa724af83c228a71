"""The CacheStore contract (with match_documents, field_values and write_version bumps) run on SQLite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from siftline.models import Namespace
from siftline.storage.base import Storage
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

    # Known engine bugs: the contract tests run unchanged and must fail until the bug is fixed (strict).

    @pytest.mark.xfail(
        strict=True,
        reason="engine bug: multi_valued is only noted for fields indexed when a document is written, so an "
        "index declared later by update_collection hints a field that holds lists (payload_index.py)",
    )
    def test_a_payload_index_declared_after_list_values_were_stored_still_matches_them(
        self, storage: Storage, ns: Namespace
    ) -> None:
        super().test_a_payload_index_declared_after_list_values_were_stored_still_matches_them(storage, ns)

    @pytest.mark.xfail(
        strict=True,
        reason="engine bug: field_values reads through SQLite's `->`, which turns integers past 64 bits "
        "into floats, while get_documents returns them exactly (documents.py field_values)",
    )
    def test_field_values_keep_integers_past_64_bits_exact(self, storage: Storage, ns: Namespace) -> None:
        super().test_field_values_keep_integers_past_64_bits_exact(storage, ns)
