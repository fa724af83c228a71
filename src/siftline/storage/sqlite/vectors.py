"""The in-memory vector index of one dense feature: exact below a threshold, HNSW segments above it.

SQLite's ``vec_<feature seq>`` table is the source of truth; this index is built from it on first use and kept
in step by every write of this process. It carries the collection's ``write_version``: when another
process (``siftline load``) wrote meanwhile, the version in the database moves ahead and the index
reloads.

Layout: every vector written gets a *slot* (a row of ``_rows``, a :class:`BlockMatrix`); slots never move while the
process runs. A replaced or deleted vector's slot becomes a tombstone (``_live`` false). Slots from
``_indexed`` on are the *pending tail*: acknowledged (durable in SQLite) but not yet in an HNSW
segment; searches scan that tail exactly, so a write is searchable the moment it is acknowledged.
The background builder (:mod:`siftline.storage.sqlite.indexer`) turns the tail into segments, and
rebuilds everything into one segment when segments pile up or tombstones pass a quarter of them.

A search with fewer live vectors than ``threshold`` is exact (one matrix product). A filtered search
whose filter passes few vectors is exact over the passing ones; otherwise each segment is searched
with a bitmap of the passing, live labels (faiss filters inside the graph walk).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from siftline.models import Metric
from siftline.storage.sqlite.blocks import BLOCK, BlockMatrix
from siftline.storage.sqlite.hnsw import HnswConfig, Segment

MAX_SEGMENTS = 4
REBUILD_TOMBSTONES = 0.25  # share of a segment's labels that are dead before a rebuild drops them


def prepare(vectors: np.ndarray, metric: Metric) -> np.ndarray:
    """Vectors as stored for ``metric``: unit-normalised for cosine, unchanged otherwise."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
        vectors = vectors / np.clip(norms, 1e-12, None)
    return vectors


@dataclass
class SearchStats:
    """What one vector search did (reported in the feature_search stage's metadata)."""

    path: str = "exact"
    ef_search: int | None = None
    candidates_examined: int = 0
    pending_scanned: int = 0
    segments: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {
            "path": self.path,
            "ef_search": self.ef_search,
            "candidates_examined": self.candidates_examined,
            "pending_scanned": self.pending_scanned,
            "segments": self.segments,
        }
        return {**out, **self.extra}


@dataclass
class View:
    """What a search reads, published whole after every change and never changed after (the segments'
    live masks fill in lazily). Searches take the current view and need no lock: a write copies
    ``live`` before marking a slot dead, and appends land beyond ``size``."""

    rows: BlockMatrix
    live: np.ndarray
    doc_ids: list[str]
    size: int
    indexed: int
    count: int
    segments: tuple[Segment, ...]
    masks: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class BuildPlan:
    """Slots to put into one new segment, and whether it replaces every existing segment."""

    slots: np.ndarray
    replace_all: bool
    upto: int


class VectorIndex:
    """Rows of float32 vectors keyed by document rowid, searched exactly or through HNSW segments."""

    def __init__(self, dimension: int, metric: Metric, config: HnswConfig | None = None) -> None:
        self.dimension = dimension
        self.metric = metric
        self.config = config or HnswConfig()
        self.version = -1
        self.lock = threading.RLock()
        self.dirty = False
        self.building = False
        self.last_write = 0.0
        self.pending_since = 0.0  # when the oldest vector of the pending tail was written
        self._rows = BlockMatrix(dimension)
        self._slot_rowid = np.zeros(0, dtype=np.int64)
        self._live = np.zeros(0, dtype=bool)
        self._doc_ids: list[str] = []
        self._slot_of = np.zeros(0, dtype=np.int32)  # by document rowid: its live slot, or -1
        self._count = 0  # live vectors
        self._size = 0  # slots used
        self._indexed = 0  # slots below this are in a segment (or dead)
        self._segments: list[Segment] = []
        self._publish()

    def __len__(self) -> int:
        return self._count

    def _publish(self) -> None:
        self._view = View(
            self._rows,
            self._live,
            self._doc_ids,
            self._size,
            self._indexed,
            self._count,
            tuple(self._segments),
        )

    # -- loading and writing ----------------------------------------------------------------------

    def load(self, rowids: np.ndarray, doc_ids: list[str], rows: BlockMatrix, version: int) -> None:
        """Replace the contents with ``rows`` (slots ``0 … len(doc_ids)``; every vector pending)."""
        with self.lock:
            n = len(doc_ids)
            self._rows = rows
            self._slot_rowid = np.asarray(rowids, dtype=np.int64).copy()
            self._live = np.ones(n, dtype=bool)
            self._doc_ids = list(doc_ids)
            self._slot_of = np.full(int(self._slot_rowid.max(initial=-1)) + 1, -1, dtype=np.int32)
            self._slot_of[self._slot_rowid] = np.arange(n, dtype=np.int32)
            self._count = n
            self._size, self._indexed = n, 0
            self._segments = []
            self.version = version
            self.last_write = self.pending_since = time.monotonic()
            self._publish()

    def _grow(self, needed: int) -> None:
        self._rows.ensure(needed)
        capacity = self._slot_rowid.shape[0]
        if needed <= capacity:
            return
        new_cap = max(needed, capacity * 2, 1024)
        rowids = np.zeros(new_cap, dtype=np.int64)
        rowids[: self._size] = self._slot_rowid[: self._size]
        live = np.zeros(new_cap, dtype=bool)
        live[: self._size] = self._live[: self._size]
        self._slot_rowid, self._live = rowids, live

    def upsert(self, rowids: Sequence[int], doc_ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add or replace vectors (already :func:`prepare`-d); a replaced vector's old slot dies."""
        with self.lock:
            self.remove(rowids)
            n = len(rowids)
            self._grow(self._size + n)
            start = self._size
            if self._indexed >= self._size:  # the tail was empty: these vectors start it
                self.pending_since = time.monotonic()
            self._rows.put(start, np.asarray(vectors, dtype=np.float32))
            self._slot_rowid[start : start + n] = rowids
            self._live[start : start + n] = True
            self._doc_ids.extend(doc_ids)
            ids = np.asarray(rowids, dtype=np.int64)
            if ids.size and int(ids.max()) >= self._slot_of.shape[0]:
                grown = np.full(max(int(ids.max()) + 1, 2 * self._slot_of.shape[0]), -1, dtype=np.int32)
                grown[: self._slot_of.shape[0]] = self._slot_of
                self._slot_of = grown
            self._slot_of[ids] = np.arange(start, start + n, dtype=np.int32)
            self._count += n
            self._size += n
            self.dirty = True
            self.last_write = time.monotonic()
            self._publish()

    def remove(self, rowids: Sequence[int]) -> None:
        with self.lock:
            ids = np.unique(np.asarray(rowids, dtype=np.int64))
            ids = ids[(ids >= 0) & (ids < self._slot_of.shape[0])]
            dead = self._slot_of[ids]
            dead = dead[dead >= 0]
            if dead.size:
                self._slot_of[ids] = -1
                self._count -= int(dead.size)
                self._live = self._live.copy()  # the published view keeps the old one
                self._live[dead] = False
                self.dirty = True
                self.last_write = time.monotonic()
                self._publish()

    # -- searching --------------------------------------------------------------------------------

    def search(
        self,
        query: np.ndarray,
        top_k: int,
        allowed_rowids: np.ndarray | None = None,
        stats: SearchStats | None = None,
    ) -> list[tuple[str, float]]:
        """Best ``top_k`` (document_id, score); ``allowed_rowids`` restricts the candidates. No lock: the
        search reads the view current when it starts."""
        stats = stats if stats is not None else SearchStats()
        query = prepare(query.reshape(1, -1), self.metric)[0]
        v = self._view
        if v.count == 0 or top_k <= 0:
            return []
        allowed = None
        if allowed_rowids is not None:
            allowed = self._slots_of(allowed_rowids, v)
            stats.extra["filter_passes"] = int(allowed.size)
            if allowed.size == 0:
                return []
        use_hnsw = v.count >= self.config.threshold and bool(v.segments)
        if allowed is not None and allowed.size <= self.config.exact_filter_limit(v.count):
            use_hnsw = False
        if not use_hnsw:
            found = self._exact(v, query, top_k, allowed, 0)
            stats.candidates_examined = int(allowed.size if allowed is not None else v.size)
            return self._named(v, found, top_k)
        return self._named(v, self._hnsw(v, query, top_k, allowed, stats), top_k)

    def _slots_of(self, rowids: np.ndarray, v: View) -> np.ndarray:
        ids = rowids[(rowids >= 0) & (rowids < self._slot_of.shape[0])]
        slots = self._slot_of[ids].astype(np.int64)
        slots = slots[(slots >= 0) & (slots < v.size)]  # a write after the view was taken: not in it
        return slots[v.live[slots]]

    def _scores(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        if self.metric == "euclidean":
            diff = rows - query
            return -np.sqrt(np.einsum("ij,ij->i", diff, diff))
        return rows @ query

    def _exact(
        self, v: View, query: np.ndarray, top_k: int, slots: np.ndarray | None, start: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(slots, scores) of the best live ``top_k`` among ``slots`` (or every slot from ``start``)."""
        if slots is None:
            pieces = [self._scores(rows, query) for _, rows in v.rows.spans(start, v.size)]
            scores = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
            live = v.live[start : v.size]
            if not live.all():
                scores = np.where(live, scores, -np.inf)
            candidates = np.arange(start, v.size)
        else:
            scores = self._scores(v.rows.take(slots), query)
            candidates = slots
        k = min(top_k, scores.shape[0])
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if scores.shape[0] > k:  # every tie at the cut too, so that document ids decide among them
            kth = np.partition(scores, scores.shape[0] - k)[scores.shape[0] - k]
            best = np.flatnonzero(scores >= kth)
        else:
            best = np.arange(scores.shape[0])
        best = best[np.isfinite(scores[best])]
        return candidates[best], scores[best]

    def _hnsw(
        self, v: View, query: np.ndarray, top_k: int, allowed: np.ndarray | None, stats: SearchStats
    ) -> tuple[np.ndarray, np.ndarray]:
        passing, share = None, 1.0
        if allowed is not None:
            passing = np.zeros(v.size, dtype=bool)
            passing[allowed] = True
            share = allowed.size / max(1, v.count)
        stats.path, stats.segments, stats.ef_search = "hnsw", len(v.segments), 0
        found_slots, found_scores = [], []
        for i, segment in enumerate(v.segments):
            mask = self._segment_mask(v, i, segment)
            if passing is not None:
                mask = passing[segment.slots] if mask is None else mask & passing[segment.slots]
            ef = max(self.config.ef_for(len(segment), share), top_k)
            stats.ef_search = max(stats.ef_search or 0, ef)
            slots, scores, examined = segment.search(query, top_k, ef, mask)
            stats.candidates_examined += examined
            found_slots.append(slots)
            found_scores.append(scores)
        tail = v.size - v.indexed
        if tail > 0:
            tail_slots = (
                None if allowed is None else allowed[allowed >= v.indexed]
            )  # the pending tail, scanned exactly
            slots, scores = self._exact(v, query, top_k, tail_slots, v.indexed)
            stats.pending_scanned = int(tail if tail_slots is None else tail_slots.size)
            stats.candidates_examined += stats.pending_scanned
            found_slots.append(slots)
            found_scores.append(scores)
        return np.concatenate(found_slots), np.concatenate(found_scores)

    @staticmethod
    def _segment_mask(v: View, i: int, segment: Segment) -> np.ndarray | None:
        """The live labels of segment ``i`` of view ``v`` (None when all are live); labels of a snapshot's
        dead slots are -1. Cached in the view, so computed once between writes."""
        mask = v.masks.get(i)
        if mask is None:
            slots = segment.slots
            mask = v.masks[i] = v.live[np.maximum(slots, 0)] & (slots >= 0)
        return None if mask.all() else mask

    def _named(self, v: View, found: tuple[np.ndarray, np.ndarray], top_k: int) -> list[tuple[str, float]]:
        slots, scores = found
        names = v.doc_ids
        hits = list(zip(map(names.__getitem__, slots.tolist()), scores.tolist(), strict=True))
        if scores.shape[0] > 1 and not bool(np.all(scores[:-1] > scores[1:])):  # ties or unsorted pieces
            hits.sort(key=lambda h: (-h[1], h[0]))
        return hits[:top_k]

    # -- building -----------------------------------------------------------------------------------

    def tombstones(self) -> int:
        """Dead labels still inside segments (from the per-segment live masks, cached between writes)."""
        v = self._view
        return sum(
            len(s) - int(mask.sum()) if (mask := self._segment_mask(v, i, s)) is not None else 0
            for i, s in enumerate(v.segments)
        )

    def needs_build(self, *, force: bool = False, idle_s: float = 1.0, max_wait_s: float = 120.0) -> bool:
        """Whether the builder should run now: writes paused for ``idle_s`` (a bulk load is not slowed by
        building under it; a pause of a WAL checkpoint may start a build early, which then shares the
        cores with the rest of the load but blocks no write), or the oldest
        pending vector has waited ``max_wait_s`` under a steady trickle of writes, or tombstones piled up."""
        with self.lock:
            live = self._count
            if live < self.config.threshold and not force:
                return False
            pending = int(self._live[self._indexed : self._size].sum())
            in_segments = sum(len(s) for s in self._segments)
            too_dead = in_segments and self.tombstones() > REBUILD_TOMBSTONES * in_segments
            if force:
                return pending > 0 or self.tombstones() > 0 or (not self._segments and live > 0)
            if not pending and not too_dead:
                return False
            now = time.monotonic()
            waited = now - self.pending_since if pending else 0.0
            return now - self.last_write >= idle_s or waited >= max_wait_s or bool(too_dead)

    def plan_build(self, *, force: bool = False) -> BuildPlan | None:
        """What the next build does; vectors are copied so the build runs off the lock."""
        with self.lock:
            pending = np.arange(self._indexed, self._size)[self._live[self._indexed : self._size]]
            in_segments = sum(len(s) for s in self._segments)
            dead = self.tombstones()
            replace_all = (
                force
                or len(self._segments) >= MAX_SEGMENTS
                or dead > REBUILD_TOMBSTONES * max(1, in_segments)
                or pending.size >= in_segments // 2
            )
            slots = np.flatnonzero(self._live[: self._size]) if replace_all else pending
            if slots.size == 0 and not replace_all:
                return None
            return BuildPlan(slots, replace_all, self._size)

    def rows(self, slots: np.ndarray) -> np.ndarray:
        """A copy of the vectors of ``slots`` (the builder reads its input a chunk at a time)."""
        with self.lock:
            return self._rows.take(slots)

    def install(self, plan: BuildPlan, segment: Segment | None) -> None:
        """Put a built segment in place; slots that died meanwhile stay tombstones inside it."""
        with self.lock:
            keep = [] if plan.replace_all else self._segments
            self._segments = [*keep, segment] if segment is not None and len(segment) else keep
            self._indexed = plan.upto
            self.pending_since = time.monotonic()  # what is still pending was written after the plan
            self._publish()

    def status(self) -> dict[str, Any]:
        """``pending``: vectors waiting for a build (none below the threshold, where search is exact)."""
        with self.lock:
            live = self._count
            tail = int(self._live[self._indexed : self._size].sum())
            pending = tail if live >= self.config.threshold else 0
            return {
                "path": "hnsw" if live >= self.config.threshold and self._segments else "exact",
                "vectors": live,
                "indexed": live - tail,
                "pending": pending,
                "tombstones": self.tombstones(),
                "segments": len(self._segments),
                "building": self.building,
                "m": self.config.m,
                "ef_construction": self.config.ef_construction,
                "ef_search": self.config.ef_search,
                "threshold": self.config.threshold,
            }

    # -- snapshot -----------------------------------------------------------------------------------

    def live_contents(
        self,
    ) -> tuple[np.ndarray, list[str], list[np.ndarray], list[tuple[Segment, np.ndarray]]]:
        """(rowids, doc_ids, row parts, segments with their labels renumbered) of the live slots, compacted.

        Used to snapshot: slots are renumbered densely, and each segment's slots are mapped into the new
        numbering (dead ones to -1, which a loaded segment keeps as tombstones).
        """
        with self.lock:
            live = np.flatnonzero(self._live[: self._size])
            renumber = np.full(self._size, -1, dtype=np.int64)
            renumber[live] = np.arange(live.size)
            segs = [(s, renumber[s.slots]) for s in self._segments]
            if live.size == self._size:  # nothing dead: views of the blocks, no copy
                return self._slot_rowid[: self._size], self._doc_ids, self._rows.parts(self._size), segs
            doc_ids = [self._doc_ids[i] for i in live.tolist()]
            parts = [self._rows.take(live[i : i + BLOCK]) for i in range(0, live.size, BLOCK)]
            return self._slot_rowid[live], doc_ids, parts, segs

    def adopt(self, segments: list[Segment], indexed: int) -> None:
        """After :meth:`load`: segments read from a snapshot, covering slots below ``indexed``."""
        with self.lock:
            self._segments = segments
            self._indexed = indexed
            self._publish()
