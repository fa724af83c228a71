"""The documents a filter passes, kept per collection version: push-down answers it without SQL.

``match_documents`` (the optimizer's pushed-down filters) asks "which of these ids pass?" for every
execution; a pipeline repeats the same filter over and over. The first time a filter is asked at a
collection's write version, the ids are checked by SQL; the second time, the ids of every passing
document are read once and kept, keyed by (collection, write version, filter), so later questions
are set lookups. A write bumps the version, so a kept set is never stale; sets are evicted least
recently used first, bounded by the number of ids held in all.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

MAX_IDS = 2_000_000  # ids held across all kept sets (a few hundred MB at most)
MAX_SETS = 64

Key = tuple[str, int, str]  # collection id, write version, repr of the bound filter


class FilterSets:
    def __init__(self, max_ids: int = MAX_IDS) -> None:
        self.max_ids = max_ids
        self._sets: OrderedDict[Key, frozenset[str]] = OrderedDict()
        self._asked: dict[Key, int] = {}
        self._held = 0
        self._lock = threading.Lock()

    def get(self, key: Key) -> frozenset[str] | None:
        with self._lock:
            found = self._sets.get(key)
            if found is not None:
                self._sets.move_to_end(key)
            return found

    def asked_before(self, key: Key) -> bool:
        """Count a question; True from the second one on (then it pays to keep the whole set)."""
        with self._lock:
            if len(self._asked) > 4 * MAX_SETS:
                self._asked.clear()
            self._asked[key] = self._asked.get(key, 0) + 1
            return self._asked[key] >= 2

    def put(self, key: Key, ids: frozenset[str]) -> None:
        if len(ids) > self.max_ids:
            return
        with self._lock:
            for old in [k for k in self._sets if k[0] == key[0] and k[1] < key[1]]:  # older versions: dead
                self._held -= len(self._sets.pop(old))
            if key in self._sets:
                return
            self._sets[key] = ids
            self._held += len(ids)
            while self._held > self.max_ids or len(self._sets) > MAX_SETS:
                _, dropped = self._sets.popitem(last=False)
                self._held -= len(dropped)


class RowidSets:
    """The rowids a filter passes at a collection version, for filtered searches (least recently used
    evicted first, bounded by the rowids held in all). A write bumps the version, so none is stale."""

    def __init__(self, max_rowids: int = 4 * MAX_IDS) -> None:
        self.max_rowids = max_rowids
        self._sets: OrderedDict[Key, np.ndarray] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def get(self, key: Key) -> np.ndarray | None:
        with self._lock:
            found = self._sets.get(key)
            if found is not None:
                self._sets.move_to_end(key)
            return found

    def put(self, key: Key, rowids: np.ndarray) -> None:
        if len(rowids) > self.max_rowids:
            return
        with self._lock:
            for old in [k for k in self._sets if k[0] == key[0] and k[1] < key[1]]:  # older versions: dead
                self._held -= len(self._sets.pop(old))
            if key in self._sets:
                return
            self._sets[key] = rowids
            self._held += len(rowids)
            while self._held > self.max_rowids or len(self._sets) > MAX_SETS:
                _, dropped = self._sets.popitem(last=False)
                self._held -= len(dropped)
