"""The storage contract run against the SQLite backend, plus tests of its vector snapshot files."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from siftline.models import Collection, DocumentWrite
from siftline.storage.base import Storage
from siftline.storage.sqlite.backend import SQLiteStorage
from siftline.testing import (
    OpenStorage,
    StorageContract,
    assert_same_ranking,
    brute_force,
    fresh,
    make_write,
    new_collection,
    new_namespace,
    vectors_of,
)
from siftline.testing.contract import EMB_COSINE, EMB_EUCLIDEAN, TEXT_DENSE


class TestSQLiteContract(StorageContract):
    @pytest.fixture
    def open_storage(self, tmp_path: Path) -> Iterator[OpenStorage]:
        opened: list[SQLiteStorage] = []

        def open_() -> Storage:
            instance = SQLiteStorage(tmp_path / "siftline.db", tmp_path / "vectors")
            opened.append(instance)
            return instance

        yield open_
        for instance in reversed(opened):
            instance.close()


# ---------------------------------------------------------------------------------------------- snapshots

SNAPSHOT_FEATURES = (EMB_EUCLIDEAN, EMB_COSINE, TEXT_DENSE)


class TestVectorSnapshots:
    @pytest.fixture
    def vectors_dir(self, tmp_path: Path) -> Path:
        return tmp_path / "vectors"

    @pytest.fixture
    def open_storage(self, tmp_path: Path, vectors_dir: Path) -> Iterator[Callable[[], SQLiteStorage]]:
        opened: list[SQLiteStorage] = []

        def open_() -> SQLiteStorage:
            opened.append(SQLiteStorage(tmp_path / "siftline.db", vectors_dir))
            return opened[-1]

        yield open_
        for instance in reversed(opened):
            instance.close()

    @pytest.fixture
    def saved(self, open_storage: Callable[[], SQLiteStorage]) -> tuple[Collection, list[DocumentWrite]]:
        """A collection whose indexes were loaded, then snapshotted by close()."""
        storage = open_storage()
        collection = new_collection(storage, new_namespace(storage, "snap"), "docs", SNAPSHOT_FEATURES, ())
        writes = [make_write(collection, f"d{i:02d}") for i in range(20)]
        storage.put_documents(collection, writes, replace=False)
        assert_searches_exact(storage, collection, writes)
        storage.close()
        return collection, writes

    def test_close_snapshots_every_loaded_index_and_a_restart_uses_them_correctly(
        self,
        open_storage: Callable[[], SQLiteStorage],
        vectors_dir: Path,
        saved: tuple[Collection, list[DocumentWrite]],
    ) -> None:
        assert len(snapshots(vectors_dir)) == len(SNAPSHOT_FEATURES)
        assert_searches_exact(open_storage(), *saved)

    def test_a_garbage_snapshot_is_ignored_and_the_index_rebuilt(
        self,
        open_storage: Callable[[], SQLiteStorage],
        vectors_dir: Path,
        saved: tuple[Collection, list[DocumentWrite]],
    ) -> None:
        for path in snapshots(vectors_dir):
            path.write_bytes(b"this is not a numpy archive" * 10)
        assert_searches_exact(open_storage(), *saved)

    def test_a_truncated_snapshot_is_ignored_and_the_index_rebuilt(
        self,
        open_storage: Callable[[], SQLiteStorage],
        vectors_dir: Path,
        saved: tuple[Collection, list[DocumentWrite]],
    ) -> None:
        for path in snapshots(vectors_dir):
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        assert_searches_exact(open_storage(), *saved)

    def test_an_empty_snapshot_file_is_ignored_and_the_index_rebuilt(
        self,
        open_storage: Callable[[], SQLiteStorage],
        vectors_dir: Path,
        saved: tuple[Collection, list[DocumentWrite]],
    ) -> None:
        for path in snapshots(vectors_dir):
            path.write_bytes(b"")
        assert_searches_exact(open_storage(), *saved)

    def test_a_stale_snapshot_is_ignored_and_the_index_rebuilt(
        self,
        open_storage: Callable[[], SQLiteStorage],
        vectors_dir: Path,
        tmp_path: Path,
        saved: tuple[Collection, list[DocumentWrite]],
    ) -> None:
        collection, writes = saved
        old = tmp_path / "old-snapshots"
        shutil.copytree(vectors_dir, old)
        storage = open_storage()
        storage.delete_documents(fresh(storage, collection), ["d00", "d01"])
        changed = [make_write(collection, "d02", seed=202), make_write(collection, "new", seed=303)]
        storage.put_documents(fresh(storage, collection), changed, replace=True)
        current = [w for w in writes if w.document_id not in ("d00", "d01", "d02")] + changed
        assert_searches_exact(storage, collection, current)
        storage.close()
        shutil.rmtree(vectors_dir)
        shutil.copytree(old, vectors_dir)  # the snapshots of before those writes
        assert_searches_exact(open_storage(), collection, current)

    def test_a_missing_vectors_dir_is_recreated(
        self,
        open_storage: Callable[[], SQLiteStorage],
        vectors_dir: Path,
        saved: tuple[Collection, list[DocumentWrite]],
    ) -> None:
        shutil.rmtree(vectors_dir)
        storage = open_storage()
        assert_searches_exact(storage, *saved)
        storage.close()
        assert len(snapshots(vectors_dir)) == len(SNAPSHOT_FEATURES)

    def test_a_snapshot_of_another_dimension_is_ignored_and_the_index_rebuilt(
        self,
        open_storage: Callable[[], SQLiteStorage],
        vectors_dir: Path,
        saved: tuple[Collection, list[DocumentWrite]],
    ) -> None:
        files = snapshots(vectors_dir)
        by_size = sorted(files, key=lambda p: p.stat().st_size)
        small, large = by_size[0].read_bytes(), by_size[-1].read_bytes()  # an 8-d and the 384-d snapshot
        by_size[0].write_bytes(large)
        by_size[-1].write_bytes(small)
        assert_searches_exact(open_storage(), *saved)


def snapshots(vectors_dir: Path) -> list[Path]:
    return sorted(vectors_dir.glob("*.npz"))


def assert_searches_exact(storage: Storage, collection: Collection, writes: list[DocumentWrite]) -> None:
    current = fresh(storage, collection)
    rng = np.random.default_rng(11)
    for feature in SNAPSHOT_FEATURES:
        query = rng.standard_normal(feature.dimension or 0).astype(np.float32)
        expected = brute_force(vectors_of(writes, feature), query, feature.metric or "cosine", 50)
        assert_same_ranking(storage.vector_search(current, feature, query, 50), expected)


def test_integers_past_64_bits_come_back_exact(tmp_path: Path) -> None:
    """Stored JSON is read with orjson unless a long digit run could be an integer it would turn into a float."""
    storage = SQLiteStorage(tmp_path / "siftline.db", tmp_path / "vectors")
    try:
        collection = new_collection(storage, new_namespace(storage, "ints"), "ints")
        payload = {"big": 2**70, "low": -(2**63) - 1, "u64": 2**64 - 1, "small": 7, "f": 1.5, "s": "x" * 30}
        storage.put_documents(collection, [make_write(collection, "d", **payload)], replace=False)
        (doc,) = storage.get_documents(fresh(storage, collection), ["d"])
        assert {k: doc.payload[k] for k in payload} == payload
        assert all(type(doc.payload[k]) is int for k in ("big", "low", "u64", "small"))
    finally:
        storage.close()
