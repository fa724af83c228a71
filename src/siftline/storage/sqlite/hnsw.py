"""HNSW segments (faiss) over slots of a :class:`~siftline.storage.sqlite.vectors.VectorIndex`.

A segment is one faiss ``IndexHNSWFlat`` built over a fixed set of slots; faiss label ``i`` is slot
``slots[i]``. Segments are immutable once built, so searches never race a build: the builder makes a
new segment off the index lock and installs it under the lock. Deleted or replaced vectors stay in
their segment as tombstones, excluded at search time by a bitmap selector (faiss filters inside the
graph walk, so the top-k are all live), until a rebuild drops them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np

from siftline.models import Metric

EF_REFERENCE = 100_000  # the segment size ef_search is meant for (see HnswConfig.ef_for)
ADD_CHUNK = 20_000  # vectors added per faiss call while building (the builder checks for shutdown between)
faiss: Any = _faiss  # its type stubs lack the HNSW search parameters and counters
_STATS_LOCK = threading.Lock()  # faiss keeps its HNSW counters in one global


@dataclass(frozen=True)
class HnswConfig:
    threshold: int = 20_000
    m: int = 32
    ef_construction: int = 64
    ef_search: int = 96
    exact_filter_max: float = 0.02
    exact_filter_floor: int = 2_000

    def ef_for(self, size: int, share: float = 1.0) -> int:
        """The candidate list for a segment of ``size`` vectors when a filter passes ``share`` of them.

        ``ef_search`` holds up to ``EF_REFERENCE`` vectors; a larger graph is walked wider, by
        sqrt(size / EF_REFERENCE), which keeps recall@10 about level (on the scale benchmark's vectors
        faiss gave 0.914 at 1M with 96 and 0.955 with 256: "ANN library choice" in docs/BENCHMARKS.md);
        a filter widens it by
        1 / sqrt(share) (share at least 5 %), since the walk skips the vectors it does not pass.
        """
        wider = max(1.0, size / EF_REFERENCE) ** 0.5 / max(share, 0.05) ** 0.5
        return int(min(4096, self.ef_search * wider))

    def exact_filter_limit(self, live: int) -> int:
        """A filter passing at most this many of ``live`` vectors is searched exactly."""
        return max(self.exact_filter_floor, int(self.exact_filter_max * live))


def faiss_metric(metric: Metric) -> int:
    return int(faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT)


class Segment:
    def __init__(self, index: faiss.IndexHNSWFlat, slots: np.ndarray, metric: Metric) -> None:
        self.index = index
        self.slots = np.ascontiguousarray(slots, dtype=np.int64)
        self.metric = metric

    def __len__(self) -> int:
        return int(self.slots.shape[0])

    @classmethod
    def build(
        cls,
        rows: Callable[[np.ndarray], np.ndarray],
        slots: np.ndarray,
        dimension: int,
        metric: Metric,
        config: HnswConfig,
        stop: Callable[[], bool] = lambda: False,
    ) -> Segment | None:
        """A segment over ``slots`` (``rows(chunk)`` gives their vectors), or None if ``stop()`` turned true."""
        index = faiss.IndexHNSWFlat(dimension, config.m, faiss_metric(metric))
        index.hnsw.efConstruction = config.ef_construction
        for start in range(0, slots.shape[0], ADD_CHUNK):
            if stop():
                return None
            index.add(np.ascontiguousarray(rows(slots[start : start + ADD_CHUNK]), dtype=np.float32))
        return cls(index, slots, metric)

    def search(
        self, query: np.ndarray, k: int, ef: int, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """(slots, scores, distances computed) of the best ``k`` whose ``mask`` (per label) is set."""
        k = min(k, len(self))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), 0
        params = faiss.SearchParametersHNSW(efSearch=max(ef, k))
        if mask is not None:
            bits = np.packbits(mask, bitorder="little")
            params.sel = faiss.IDSelectorBitmap(len(self), faiss.swig_ptr(bits))
        with _STATS_LOCK:
            faiss.cvar.hnsw_stats.reset()
            distances, labels = self.index.search(query.reshape(1, -1), k, params=params)
            examined = int(faiss.cvar.hnsw_stats.ndis)
        labels, distances = labels[0], distances[0]
        found = labels >= 0
        labels, distances = labels[found], distances[found]
        scores = -np.sqrt(np.maximum(distances, 0)) if self.metric == "euclidean" else distances
        return self.slots[labels], scores.astype(np.float32), examined

    # -- files ----------------------------------------------------------------------------------

    def write(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def read(cls, path: Path, slots: np.ndarray, metric: Metric) -> Segment:
        index = faiss.read_index(str(path))
        if not isinstance(index, faiss.IndexHNSWFlat) or index.ntotal != slots.shape[0]:
            raise ValueError(f"{path.name} does not hold the segment it was saved for")
        return cls(index, slots, metric)
