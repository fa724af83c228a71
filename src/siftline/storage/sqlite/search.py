"""Vector and BM25 searches over a collection's features (the search half of the backend)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np

from siftline.errors import BadRequestError
from siftline.models import Collection, Feature
from siftline.pipeline.filters import Node
from siftline.storage.sqlite.db import Database
from siftline.storage.sqlite.documents import fts_query
from siftline.storage.sqlite.filter_sql import compile_filter
from siftline.storage.sqlite.vectors import ExactIndex


class SearchMixin:
    db: Database
    vectors_dir: Path
    _indexes: dict[int, ExactIndex]

    _feature_seq_read: Callable[[sqlite3.Connection, str, Feature], int]  # from the documents half

    def _snapshot_path(self, seq: int) -> Path:
        return self.vectors_dir / f"feature-{seq}.npz"

    def _index(self, collection: Collection, feature: Feature) -> ExactIndex | None:
        """The in-memory index of a dense feature, (re)loaded when the database moved past it."""
        with self.db.read() as conn:
            seq = self._feature_seq_read(conn, collection.collection_id, feature)
        if seq < 0:
            return None
        index = self._indexes.get(seq)
        if index is None:
            index = self._indexes.setdefault(
                seq, ExactIndex(feature.dimension or 0, feature.metric or "cosine")
            )
        if index.version >= collection.write_version:
            return index
        with index.lock:
            if index.version >= collection.write_version:
                return index
            self._load_index(index, seq, collection.collection_id)
        return index

    def _load_index(self, index: ExactIndex, seq: int, collection_id: str) -> None:
        with self.db.read() as conn:
            version = conn.execute(
                "SELECT write_version FROM collections WHERE collection_id = ?", (collection_id,)
            ).fetchone()
            version = int(version[0]) if version else 0
            snapshot = index.read_snapshot(self._snapshot_path(seq))
            if snapshot is not None and snapshot[3] == version:
                rowids, doc_ids, matrix, _ = snapshot
                index.load(rowids, doc_ids, matrix, version)
                return
            rows = conn.execute(
                "SELECT v.doc_rowid, d.document_id, v.vec FROM vectors v JOIN documents d ON d.rowid = v.doc_rowid "
                "WHERE v.feature_seq = ? ORDER BY v.doc_rowid",
                (seq,),
            ).fetchall()
        matrix = (
            np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), index.dimension)
            if rows
            else np.zeros((0, index.dimension), dtype=np.float32)
        )
        index.load(
            np.array([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows], matrix.copy(), version
        )
        index.dirty = True

    def _allowed_rowids(self, collection: Collection, filter: Node | None) -> np.ndarray | None:
        if filter is None:
            return None
        where, params = compile_filter(filter, "d")
        with self.db.read() as conn:
            rows = conn.execute(
                f"SELECT d.rowid FROM documents d WHERE d.collection_id = ? AND ({where})",
                [collection.collection_id, *params],
            ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def vector_search(
        self,
        collection: Collection,
        feature: Feature,
        query: np.ndarray,
        top_k: int,
        filter: Node | None = None,
    ) -> list[tuple[str, float]]:
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if feature.dimension is not None and query.shape[0] != feature.dimension:
            raise BadRequestError(
                f"The query vector has {query.shape[0]} dimensions but feature '{feature.uri}' "
                f"has {feature.dimension}; send a vector of {feature.dimension} numbers."
            )
        index = self._index(collection, feature)
        if index is None:
            return []
        return index.search(query, top_k, self._allowed_rowids(collection, filter))

    def text_search(
        self, collection: Collection, feature: Feature, query: str, top_k: int, filter: Node | None = None
    ) -> list[tuple[str, float]]:
        match = fts_query(query)
        if not match or top_k <= 0:
            return []
        with self.db.read() as conn:
            seq = self._feature_seq_read(conn, collection.collection_id, feature)
            if seq < 0:
                return []
            where, params = compile_filter(filter, "d")
            rows = conn.execute(
                f"SELECT d.document_id, -bm25(fts_{seq}) AS score FROM fts_{seq} "
                f"JOIN documents d ON d.rowid = fts_{seq}.rowid "
                f"WHERE fts_{seq} MATCH ? AND ({where}) ORDER BY bm25(fts_{seq}) LIMIT ?",
                [match, *params, top_k],
            ).fetchall()
        return [(doc_id, float(score)) for doc_id, score in rows]

    def save_snapshots(self) -> None:
        for seq, index in list(self._indexes.items()):
            if index.dirty and index.version >= 0:
                index.save(self._snapshot_path(seq))
