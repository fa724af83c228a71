"""The cache table of the embedded backend: cached results and stage outputs, bounded, LRU-evicted.

One row per key in ``cache_entries``; the value is opaque bytes. Reading an entry marks it used, but
at most once per ``TOUCH_EVERY_S`` (a hit would otherwise take the write lock just to bump a clock),
so the eviction order is least-recently-used to within that many seconds. Every insert purges the
expired entries and evicts the least recently used ones beyond the entry and byte bounds, in the same
transaction, so the table never grows past its bounds.
"""

from __future__ import annotations

from typing import Any

from siftline.models import CacheEntry
from siftline.storage.sqlite.db import Database

TOUCH_EVERY_S = 5.0


class CacheMixin:
    db: Database

    def cache_get(self, cache_key: str, now: float) -> CacheEntry | None:
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT namespace_id, kind, value, created_at, expires_at, retriever_id, execution_id, last_used "
                "FROM cache_entries WHERE cache_key = ?",
                (cache_key,),
            ).fetchone()
        if row is None:
            return None
        namespace_id, kind, value, created_at, expires_at, retriever_id, execution_id, last_used = row
        if expires_at is not None and expires_at <= now:
            return None
        if now - last_used >= TOUCH_EVERY_S:
            with self.db.write() as conn:
                conn.execute("UPDATE cache_entries SET last_used = ? WHERE cache_key = ?", (now, cache_key))
        return CacheEntry(
            cache_key, namespace_id, kind, bytes(value), created_at, expires_at, retriever_id, execution_id
        )

    def cache_put(self, entry: CacheEntry, max_entries: int, max_bytes: int) -> None:
        size = len(entry.value) + len(entry.cache_key)
        if size > max_bytes:  # would evict everything else and still not fit
            return
        with self.db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO cache_entries(cache_key, namespace_id, kind, retriever_id, execution_id, "
                "created_at, expires_at, last_used, size, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.cache_key,
                    entry.namespace_id,
                    entry.kind,
                    entry.retriever_id,
                    entry.execution_id,
                    entry.created_at,
                    entry.expires_at,
                    entry.created_at,
                    size,
                    entry.value,
                ),
            )
            conn.execute(
                "DELETE FROM cache_entries WHERE expires_at IS NOT NULL AND expires_at <= ?",
                (entry.created_at,),
            )
            count, total = conn.execute("SELECT count(*), total(size) FROM cache_entries").fetchone()
            if count <= max_entries and total <= max_bytes:
                return
            evict, freed = 0, 0.0
            for (used_size,) in conn.execute("SELECT size FROM cache_entries ORDER BY last_used, cache_key"):
                if count - evict <= max_entries and total - freed <= max_bytes:
                    break
                evict += 1
                freed += used_size
            conn.execute(
                "DELETE FROM cache_entries WHERE cache_key IN "
                "(SELECT cache_key FROM cache_entries ORDER BY last_used, cache_key LIMIT ?)",
                (evict,),
            )

    def cache_clear(self, namespace_id: str | None = None, retriever_id: str | None = None) -> int:
        with self.db.write() as conn:
            if namespace_id is None and retriever_id is None:
                return conn.execute("DELETE FROM cache_entries").rowcount
            if namespace_id is None:
                return conn.execute(
                    "DELETE FROM cache_entries WHERE retriever_id = ?", (retriever_id,)
                ).rowcount
            if retriever_id is None:
                return conn.execute(
                    "DELETE FROM cache_entries WHERE namespace_id = ?", (namespace_id,)
                ).rowcount
            return conn.execute(
                "DELETE FROM cache_entries WHERE namespace_id = ? AND retriever_id = ?",
                (namespace_id, retriever_id),
            ).rowcount

    def cache_stats(self) -> dict[str, Any]:
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT kind, count(*), total(size) FROM cache_entries GROUP BY kind"
            ).fetchall()
        return {
            "entries": sum(r[1] for r in rows),
            "bytes": int(sum(r[2] for r in rows)),
            "by_kind": {r[0]: r[1] for r in rows},
        }
