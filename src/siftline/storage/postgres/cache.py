"""Cached results and stage outputs in PostgreSQL, bounded and evicted least recently used first.

As on SQLite (``storage/sqlite/cache.py``): a read marks the entry used at most once per
``TOUCH_EVERY_S``; every insert purges expired entries and evicts beyond the bounds in its own
transaction. Servers sharing the database share the cache: inserts take a transaction-scoped advisory
lock, so two servers' evictions never undercount each other. Keys carry the collections' write
versions, so an entry is never stale whichever server wrote since.
"""

from __future__ import annotations

from typing import Any

from siftline.models import CacheEntry
from siftline.storage.postgres.db import Database

TOUCH_EVERY_S = 5.0
CACHE_LOCK = 0x5F1CAC4E


class CacheMixin:
    db: Database

    def cache_get(self, cache_key: str, now: float) -> CacheEntry | None:
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT namespace_id, kind, value, created_at, expires_at, retriever_id, execution_id, last_used "
                "FROM cache_entries WHERE cache_key = %s",
                (cache_key,),
            ).fetchone()
        if row is None:
            return None
        namespace_id, kind, value, created_at, expires_at, retriever_id, execution_id, last_used = row
        if expires_at is not None and expires_at <= now:
            return None
        if now - last_used >= TOUCH_EVERY_S:
            with self.db.write() as conn:
                conn.execute(
                    "UPDATE cache_entries SET last_used = greatest(last_used, %s) WHERE cache_key = %s",
                    (now, cache_key),
                )
        return CacheEntry(
            cache_key, namespace_id, kind, bytes(value), created_at, expires_at, retriever_id, execution_id
        )

    def cache_put(self, entry: CacheEntry, max_entries: int, max_bytes: int) -> None:
        size = len(entry.value) + len(entry.cache_key)
        if size > max_bytes:  # would evict everything else and still not fit
            return
        with self.db.write() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (CACHE_LOCK,))
            conn.execute(
                "INSERT INTO cache_entries(cache_key, namespace_id, kind, retriever_id, execution_id, created_at, "
                "expires_at, last_used, size, value) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (cache_key) DO UPDATE SET namespace_id = excluded.namespace_id, kind = excluded.kind, "
                "retriever_id = excluded.retriever_id, execution_id = excluded.execution_id, "
                "created_at = excluded.created_at, expires_at = excluded.expires_at, "
                "last_used = excluded.last_used, size = excluded.size, value = excluded.value",
                (entry.cache_key, entry.namespace_id, entry.kind, entry.retriever_id, entry.execution_id,
                 entry.created_at, entry.expires_at, entry.created_at, size, entry.value),
            )  # fmt: skip
            conn.execute(
                "DELETE FROM cache_entries WHERE expires_at IS NOT NULL AND expires_at <= %s",
                (entry.created_at,),
            )
            count, total = conn.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM cache_entries"
            ).fetchone()
            if count <= max_entries and total <= max_bytes:
                return
            evict, freed = 0, 0
            for (used_size,) in conn.execute("SELECT size FROM cache_entries ORDER BY last_used, cache_key"):
                if count - evict <= max_entries and total - freed <= max_bytes:
                    break
                evict += 1
                freed += used_size
            conn.execute(
                "DELETE FROM cache_entries WHERE cache_key IN "
                "(SELECT cache_key FROM cache_entries ORDER BY last_used, cache_key LIMIT %s)",
                (evict,),
            )

    def cache_clear(self, namespace_id: str | None = None, retriever_id: str | None = None) -> int:
        where, params = [], []
        if namespace_id is not None:
            where.append("namespace_id = %s")
            params.append(namespace_id)
        if retriever_id is not None:
            where.append("retriever_id = %s")
            params.append(retriever_id)
        clause = " WHERE " + " AND ".join(where) if where else ""
        with self.db.write() as conn:
            return int(conn.execute(f"DELETE FROM cache_entries{clause}", params).rowcount)

    def cache_stats(self) -> dict[str, Any]:
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT kind, count(*), coalesce(sum(size), 0) FROM cache_entries GROUP BY kind"
            ).fetchall()
        return {
            "entries": sum(r[1] for r in rows),
            "bytes": int(sum(r[2] for r in rows)),
            "by_kind": {r[0]: r[1] for r in rows},
        }
