"""Document counts for the metrics gauges, kept per collection write version (every backend).

Counting every document on every scrape reads the whole documents table; counting one collection's is
an index range. A backend lists each collection's ``write_version`` (every document write and delete
moves it) and :class:`DocumentTally` counts again only the collections whose version moved since the
last reading. Read the versions first, then count: a write that commits in between makes a count newer
than its version, and the next reading counts that collection again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any


class DocumentTally:
    def __init__(self) -> None:
        self._kept: dict[str, tuple[int, int]] = {}  # collection id → (write version, documents)
        self._lock = threading.Lock()

    def total(self, versions: Iterable[tuple[str, int]], count: Callable[[str], int]) -> tuple[int, int]:
        """(collections, documents) of the collections ``versions`` lists as (id, write version);
        ``count(collection_id)`` is called for those not counted at that version yet."""
        with self._lock:
            kept: dict[str, tuple[int, int]] = {}
            for collection_id, version in versions:
                found = self._kept.get(collection_id)
                if found is None or found[0] != int(version):
                    found = (int(version), int(count(collection_id)))
                kept[collection_id] = found
            self._kept = kept  # deleted collections drop out
            return len(kept), sum(documents for _, documents in kept.values())

    def read(self, conn: Any, placeholder: str) -> tuple[int, int]:
        """(collections, documents) through a DB-API connection of either backend, inside one snapshot;
        ``placeholder`` is its parameter mark (``?`` or ``%s``)."""
        versions = conn.execute("SELECT collection_id, write_version FROM collections").fetchall()
        return self.total(
            versions,
            lambda cid: conn.execute(
                f"SELECT count(*) FROM documents WHERE collection_id = {placeholder}", (cid,)
            ).fetchone()[0],
        )
