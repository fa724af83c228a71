"""Backup, verify and restore in process: the vector index files (copied only when they match the copied
database), what verify says about them, and the rules around a backup's destination.

The end-to-end scenario with a server under writes is ``tests/e2e/test_backup.py``."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import settings_for
from siftline.config import Settings
from siftline.errors import BackupError
from siftline.features.embedder import TextEmbedder
from siftline.models import Collection
from siftline.service import backup, collections, namespaces
from siftline.service.container import Services

DIM = 8
N = 300


def _settings(data_dir: Path) -> Settings:
    return settings_for(data_dir, storage="sqlite", hnsw_threshold=50)


def _collection(svc: Services) -> Collection:
    ns = namespaces.ensure_namespace(svc.storage, "default")
    found = svc.storage.get_collection(ns.namespace_id, "vecs")
    assert found is not None
    return found


def _search(svc: Services, seed: int) -> list[tuple[str, float]]:
    col = _collection(svc)
    feature = col.feature("emb")
    assert feature is not None
    return svc.storage.vector_search(col, feature, np.random.default_rng(seed).standard_normal(DIM), 10)


def _add(svc: Services, ids: list[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    docs = [{"document_id": d, "vectors": {"emb": rng.standard_normal(DIM).tolist()}} for d in ids]
    svc.documents.create_batch(_collection(svc), {"documents": docs})


@pytest.fixture
def data_dir(tmp_path: Path, embedder: TextEmbedder) -> Iterator[Path]:
    """A data directory of N vectors whose HNSW index was built and saved (its server stopped)."""
    root = tmp_path / "data"
    svc = Services.open(_settings(root), embedder)
    try:
        ns = namespaces.ensure_namespace(svc.storage, "default")
        collections.create(
            svc.storage, ns, collection_name="vecs", vector_configs=[{"name": "emb", "dimension": DIM}]
        )
        _add(svc, [f"d{i}" for i in range(N)], 0)
        col = _collection(svc)
        feature = col.feature("emb")
        assert feature is not None
        assert svc.storage.build_vector_index(col, feature)["segments"] == 1
    finally:
        svc.close()
    assert sorted(p.suffix for p in (root / "vectors").iterdir()) == [".faiss", ".npz"]
    yield root


def test_a_current_index_file_is_copied_and_used_as_is_after_restore(
    data_dir: Path, tmp_path: Path, embedder: TextEmbedder
) -> None:
    svc = Services.open(_settings(data_dir), embedder)
    try:
        before = [_search(svc, s) for s in range(5)]
    finally:
        svc.close()
    done = backup.backup(_settings(data_dir), tmp_path / "backup")
    assert list(done.manifest["indexes"].values()) == ["copied"]
    assert sorted(f["path"].rsplit(".", 1)[-1] for f in done.manifest["files"]) == ["db", "faiss", "npz"]
    assert done.verification is not None and done.verification.ok
    assert any("is current: a server uses it as is" in n for n in done.verification.notes)

    target = tmp_path / "restored"
    checked, copied = backup.restore(_settings(target), tmp_path / "backup")
    assert checked.ok and copied["files"] == 3
    files = {p.name: p.stat().st_mtime_ns for p in (target / "vectors").iterdir()}
    svc = Services.open(_settings(target), embedder)
    try:
        col = _collection(svc)
        feature = col.feature("emb")
        assert feature is not None
        status = svc.storage.vector_index_status(col, feature)
        assert (status["path"], status["pending"], status["segments"]) == ("hnsw", 0, 1)  # no rebuild
        assert [_search(svc, s) for s in range(5)] == before
    finally:
        svc.close()
    assert {p.name: p.stat().st_mtime_ns for p in (target / "vectors").iterdir()} == files  # not rewritten


def test_a_stale_index_file_is_left_out_and_rebuilt(
    data_dir: Path, tmp_path: Path, embedder: TextEmbedder
) -> None:
    saved = tmp_path / "saved-vectors"
    shutil.copytree(data_dir / "vectors", saved)
    svc = Services.open(_settings(data_dir), embedder)
    try:
        _add(svc, ["late"], 1)  # the collection moves past the saved index
    finally:
        svc.close()
    shutil.rmtree(data_dir / "vectors")
    shutil.copytree(saved, data_dir / "vectors")

    checked = backup.verify(data_dir)
    assert checked.ok and not checked.backup
    assert any("is stale (it has version 1 of the collection, the database 2)" in n for n in checked.notes)
    done = backup.backup(_settings(data_dir), tmp_path / "backup")
    assert list(done.manifest["indexes"].values()) == [
        "left out: a server rebuilds it from the database at first use"
    ]
    assert [f["path"] for f in done.manifest["files"]] == ["siftline.db"]
    backup.restore(_settings(tmp_path / "restored"), tmp_path / "backup")
    svc = Services.open(_settings(tmp_path / "restored"), embedder)
    try:
        col = _collection(svc)
        feature = col.feature("emb")
        assert feature is not None
        assert (
            svc.storage.vector_search(col, feature, np.random.default_rng(1).standard_normal(DIM), 1)[0][0]
            == "late"
        )
        assert svc.storage.vector_index_status(col, feature)["vectors"] == N + 1
    finally:
        svc.close()


def test_verify_rejects_an_index_file_that_claims_to_be_current_but_holds_other_vectors(
    data_dir: Path,
) -> None:
    path = data_dir / "vectors" / next(p.name for p in (data_dir / "vectors").glob("*.npz"))
    with np.load(path) as data:
        arrays: dict[str, Any] = {k: data[k] for k in data.files}
    arrays["rows0"] = arrays["rows0"].copy()
    arrays["rows0"][3] *= -1
    with path.open("wb") as fh:
        np.savez(fh, **arrays)
    checked = backup.verify(data_dir)
    assert not checked.ok
    assert "claims the collection's current version but holds another vector" in checked.errors[0]
    assert "delete it to have the index rebuilt" in checked.errors[0]


def test_a_backup_goes_into_a_new_or_empty_directory_outside_the_data_directory(
    data_dir: Path, tmp_path: Path
) -> None:
    settings = _settings(data_dir)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(BackupError, match="is not empty"):
        backup.backup(settings, tmp_path / "full")
    with pytest.raises(BackupError, match="inside the data directory"):
        backup.backup(settings, data_dir / "backup")
    with pytest.raises(BackupError, match="No Siftline database in"):
        backup.backup(_settings(tmp_path / "nothing"), tmp_path / "b")
    done = backup.backup(settings, tmp_path / "empty", check=False)
    assert done.verification is None
    manifest = json.loads((tmp_path / "empty" / "manifest.json").read_text())
    assert manifest["census"]["collections"][0]["documents"] == N
    assert manifest["census"]["totals"]["collections"] == 1


def test_restore_takes_only_a_backup(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="is a data directory, not a backup"):
        backup.restore(_settings(tmp_path / "t"), data_dir)
    with pytest.raises(BackupError, match="is not a directory"):
        backup.restore(_settings(tmp_path / "t"), tmp_path / "nowhere")
    assert not (tmp_path / "t").exists()


def test_a_server_opening_the_target_during_the_copy_stops_the_restore_before_the_swap(
    data_dir: Path, tmp_path: Path, embedder: TextEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-use check before the copy is not enough: a server may open the old database while the
    backup is copied. The swap takes the file exclusively, so a server's writes never go into a replaced file."""
    import sqlite3

    from siftline.storage.sqlite.backup import SQLiteBackups

    backup.backup(_settings(data_dir), tmp_path / "backup")
    target = tmp_path / "target"
    shutil.copytree(data_dir, target)
    before = (target / "siftline.db").read_bytes()
    opened: list[sqlite3.Connection] = []
    copy = SQLiteBackups._copy_checked

    def copying(self: Any, *args: Any) -> int:
        if not opened:  # a server starts on the target meanwhile: WAL mode, a shared lock held open
            conn = sqlite3.connect(target / "siftline.db", isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            conn.execute("BEGIN")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            opened.append(conn)
        return int(copy(self, *args))

    monkeypatch.setattr(SQLiteBackups, "_copy_checked", copying)
    try:
        with pytest.raises(BackupError, match="while the backup was copied"):
            backup.restore(_settings(target), tmp_path / "backup", force=True)
    finally:
        for conn in opened:
            conn.close()
    assert (target / "siftline.db").read_bytes() == before  # the old database, untouched
    assert not (target / "siftline.db.restoring").exists()
