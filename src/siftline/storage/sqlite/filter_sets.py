"""The documents a filter passes, kept per collection version: push-down answers it without SQL.

``match_documents`` (the optimizer's pushed-down filters) asks "which of these ids pass?" for every
execution; a pipeline repeats the same filter over and over. The first time a filter is asked at a
collection's write version, the ids are checked by SQL; the second time, the ids of every passing
document are read once and kept, keyed by (collection, write version, filter), so later questions
are set lookups. Filtered searches keep the passing rowids the same way (:class:`RowidSets`, from
the first time: reading them is their whole cost). A write bumps the version, so a kept set is never
stale; sets are evicted least recently used first, bounded by the number of items held in all.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sized
from typing import Generic, TypeVar

import numpy as np

MAX_IDS = 2_000_000  # ids held across all kept sets (a few hundred MB at most)
MAX_SETS = 64

Key = tuple[str, int, str]  # collection id, write version, repr of the bound filter
T = TypeVar("T", bound=Sized)


class _Kept(Generic[T]):
    """Values kept per (collection, write version, filter), least recently used evicted first, bounded
    by the items held in all (``len`` of each value) and by their number; a newer version of a
    collection drops its older ones (they can never be asked for again)."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._sets: OrderedDict[Key, T] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def get(self, key: Key) -> T | None:
        with self._lock:
            found = self._sets.get(key)
            if found is not None:
                self._sets.move_to_end(key)
            return found

    def put(self, key: Key, value: T) -> None:
        if len(value) > self.max_items:
            return
        with self._lock:
            for old in [k for k in self._sets if k[0] == key[0] and k[1] < key[1]]:
                self._held -= len(self._sets.pop(old))
            if key in self._sets:
                return
            self._sets[key] = value
            self._held += len(value)
            while self._held > self.max_items or len(self._sets) > MAX_SETS:
                _, dropped = self._sets.popitem(last=False)
                self._held -= len(dropped)


class FilterSets(_Kept[frozenset[str]]):
    """The document ids a filter passes (for push-down), kept from the second time it is asked."""

    def __init__(self, max_ids: int = MAX_IDS) -> None:
        super().__init__(max_ids)
        self._asked: dict[Key, int] = {}

    def asked_before(self, key: Key) -> bool:
        """Count a question; True from the second one on (then it pays to keep the whole set)."""
        with self._lock:
            if len(self._asked) > 4 * MAX_SETS:
                self._asked.clear()
            self._asked[key] = self._asked.get(key, 0) + 1
            return self._asked[key] >= 2


class RowidSets(_Kept[np.ndarray]):
    """The rowids a filter passes, for filtered searches (kept the first time: reading them is the cost)."""

    def __init__(self, max_rowids: int = 4 * MAX_IDS) -> None:
        super().__init__(max_rowids)
