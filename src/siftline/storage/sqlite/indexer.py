"""The background builder of HNSW segments, one thread per storage.

Writes are acknowledged once durable in SQLite; they wait in each index's pending tail (searched
exactly) until this thread builds them into a segment. It builds when a feature has at least the HNSW
threshold of vectors and writes have paused for a second (so a bulk load is not slowed by building
under it), or when the oldest pending vector has waited two minutes, or when tombstones pile up. ``build(force=True)``
(``POST …/vector-index/build``) builds at once and drops every tombstone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from siftline.storage.sqlite.hnsw import Segment
from siftline.storage.sqlite.vectors import VectorIndex

log = logging.getLogger("siftline.indexer")


class Indexer:
    def __init__(self, indexes: Callable[[], list[VectorIndex]], poll_s: float = 0.25) -> None:
        self._indexes = indexes
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._locks: dict[int, threading.Lock] = {}
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def poke(self) -> None:
        """A write happened: start the thread if needed, and let it look soon."""
        with self._guard:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="siftline-indexer", daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._poll_s)
            self._wake.clear()
            for index in self._indexes():
                if self._stop.is_set():
                    return
                try:
                    if index.needs_build():
                        self.build(index)
                except Exception:  # a failed build leaves the pending tail searched exactly
                    log.exception("building a vector index segment failed")

    def build(self, index: VectorIndex, *, force: bool = False) -> None:
        """Build what ``index`` needs now (``force``: everything into one segment, no tombstones)."""
        lock = self._locks.setdefault(id(index), threading.Lock())
        with lock:
            if force and not index.needs_build(force=True):
                return
            plan = index.plan_build(force=force)
            if plan is None:
                return
            index.building = True
            try:
                segment = Segment.build(
                    index.rows, plan.slots, index.dimension, index.metric, index.config, self._stop.is_set
                )
                if segment is not None or plan.slots.size == 0:
                    index.install(plan, segment)
            finally:
                index.building = False

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
