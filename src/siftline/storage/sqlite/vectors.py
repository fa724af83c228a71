"""Exact (brute-force) vector index held in memory, one per dense feature.

SQLite's ``vectors`` table is the source of truth; the in-memory matrix is built from it on first
use and kept in step by every write of this process. It carries the collection's
``write_version``: when another process (``siftline load``) wrote meanwhile, the version in the
database moves ahead and the index reloads. On close the matrix is snapshotted to
``vectors/<feature_seq>.npz`` beside the database and reused at the next start when its version
still matches.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from siftline.models import Metric


def prepare(vectors: np.ndarray, metric: Metric) -> np.ndarray:
    """Vectors as stored for ``metric``: unit-normalised for cosine, unchanged otherwise."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
        vectors = vectors / np.clip(norms, 1e-12, None)
    return vectors


class ExactIndex:
    """Rows of float32 vectors keyed by document rowid; search is one matrix product."""

    def __init__(self, dimension: int, metric: Metric) -> None:
        self.dimension = dimension
        self.metric = metric
        self.version = -1
        self._matrix = np.zeros((0, dimension), dtype=np.float32)
        self._rowids = np.zeros(0, dtype=np.int64)
        self._doc_ids: list[str] = []
        self._pos: dict[int, int] = {}
        self._size = 0
        self.lock = threading.RLock()
        self.dirty = False

    def __len__(self) -> int:
        return self._size

    def load(self, rowids: np.ndarray, doc_ids: list[str], matrix: np.ndarray, version: int) -> None:
        with self.lock:
            self._matrix = np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1, self.dimension)
            self._rowids = np.asarray(rowids, dtype=np.int64)
            self._doc_ids = list(doc_ids)
            self._size = len(self._doc_ids)
            self._pos = {int(r): i for i, r in enumerate(self._rowids[: self._size])}
            self.version = version

    def _grow(self, needed: int) -> None:
        capacity = self._matrix.shape[0]
        if needed <= capacity:
            return
        new_cap = max(needed, capacity * 2, 1024)
        matrix = np.zeros((new_cap, self.dimension), dtype=np.float32)
        matrix[: self._size] = self._matrix[: self._size]
        rowids = np.zeros(new_cap, dtype=np.int64)
        rowids[: self._size] = self._rowids[: self._size]
        self._matrix, self._rowids = matrix, rowids

    def upsert(self, rowids: Sequence[int], doc_ids: Sequence[str], vectors: np.ndarray) -> None:
        with self.lock:
            self._grow(self._size + len(rowids))
            for rowid, doc_id, vec in zip(rowids, doc_ids, vectors, strict=True):
                pos = self._pos.get(rowid)
                if pos is None:
                    pos = self._size
                    self._size += 1
                    self._pos[rowid] = pos
                    self._doc_ids.append(doc_id)
                    self._rowids[pos] = rowid
                self._matrix[pos] = vec
            self.dirty = True

    def remove(self, rowids: Sequence[int]) -> None:
        with self.lock:
            for rowid in rowids:
                pos = self._pos.pop(int(rowid), None)
                if pos is None:
                    continue
                last = self._size - 1
                if pos != last:  # move the last row into the hole
                    moved = int(self._rowids[last])
                    self._matrix[pos] = self._matrix[last]
                    self._rowids[pos] = moved
                    self._doc_ids[pos] = self._doc_ids[last]
                    self._pos[moved] = pos
                self._doc_ids.pop()
                self._size = last
            self.dirty = True

    def search(
        self, query: np.ndarray, top_k: int, allowed_rowids: np.ndarray | None = None
    ) -> list[tuple[str, float]]:
        """Best ``top_k`` (document_id, score); ``allowed_rowids`` restricts the candidates."""
        query = prepare(query.reshape(1, -1), self.metric)[0]
        with self.lock:
            n = self._size
            if n == 0 or top_k <= 0:
                return []
            matrix = self._matrix[:n]
            if allowed_rowids is not None:
                positions = np.fromiter(
                    (p for r in allowed_rowids.tolist() if (p := self._pos.get(r)) is not None),
                    dtype=np.int64,
                )
                if positions.size == 0:
                    return []
                scores = self._score(matrix[positions], query)
            else:
                positions = None
                scores = self._score(matrix, query)
            k = min(top_k, scores.shape[0])
            best = np.argpartition(-scores, k - 1)[:k]
            best = best[np.argsort(-scores[best], kind="stable")]
            rows = positions[best] if positions is not None else best
            return [(self._doc_ids[int(r)], float(scores[b])) for r, b in zip(rows, best, strict=True)]

    def _score(self, matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
        if self.metric == "euclidean":
            diff = matrix - query
            return -np.sqrt(np.einsum("ij,ij->i", diff, diff))
        return matrix @ query

    # -- snapshots beside the database --------------------------------------------------------

    def save(self, path: Path) -> None:
        with self.lock:
            tmp = path.with_suffix(".tmp.npz")
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    matrix=self._matrix[: self._size],
                    rowids=self._rowids[: self._size],
                    doc_ids=np.array(json.dumps(self._doc_ids)),
                    version=np.array(self.version),
                )
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            self.dirty = False

    def read_snapshot(self, path: Path) -> tuple[np.ndarray, list[str], np.ndarray, int] | None:
        """(rowids, doc_ids, matrix, version) from a snapshot that fits this index, else None.

        A snapshot is only a cache of the ``vectors`` table: anything unreadable (truncated, empty,
        not a zip) or not fitting (other dimension, counts that disagree) is deleted and ignored.
        """
        if not path.exists():
            return None
        try:
            with np.load(path) as data:
                rowids, matrix = data["rowids"], data["matrix"]
                doc_ids = json.loads(str(data["doc_ids"]))
                version = int(data["version"])
            fits = (
                matrix.ndim == 2
                and matrix.shape == (len(rowids), self.dimension)
                and len(doc_ids) == len(rowids)
                and rowids.dtype.kind == "i"
            )
            if fits:
                return rowids, doc_ids, matrix, version
        except Exception:
            pass
        with contextlib.suppress(OSError):
            path.unlink()
        return None
