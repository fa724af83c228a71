"""Keys, namespaces and collections in SQLite (the catalog half of the backend)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from siftline.errors import AlreadyExistsError
from siftline.models import ApiKey, Collection, Namespace, Rate, iso
from siftline.storage import rows
from siftline.storage.sqlite import payload_index
from siftline.storage.sqlite.db import Database
from siftline.storage.sqlite.record_writer import RecordWriter


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _key(row: sqlite3.Row | tuple[Any, ...]) -> ApiKey:
    key_id, name, prefix, namespaces, created_at, revoked_at, expires_at, per_second, burst = row
    return ApiKey(
        key_id=key_id,
        name=name,
        prefix=prefix,
        namespaces=tuple(json.loads(namespaces)) if namespaces else None,
        created_at=_ts(created_at),  # type: ignore[arg-type]
        revoked_at=_ts(revoked_at),
        expires_at=_ts(expires_at),
        rate=Rate(float(per_second), int(burst or 0)) if per_second is not None else None,
    )


def _namespace(row: tuple[Any, ...]) -> Namespace:
    ns_id, name, description, metadata, created_at, updated_at = row
    return Namespace(ns_id, name, description, json.loads(metadata), _ts(created_at), _ts(updated_at))  # type: ignore[arg-type]


def collection_config(collection: Collection) -> str:
    return json.dumps(rows.collection_config(collection))


def _collection(row: tuple[Any, ...]) -> Collection:
    col_id, ns_id, name, description, config, created_at, updated_at, version = row
    return rows.collection_of(
        col_id,
        ns_id,
        name,
        description,
        json.loads(config),
        rows.time_of(created_at),
        rows.time_of(updated_at),
        version,
    )


_KEY_COLS = (
    "key_id, name, prefix, namespaces, created_at, revoked_at, expires_at, rate_per_second, rate_burst"
)
_NS_COLS = "namespace_id, namespace_name, description, metadata, created_at, updated_at"
_COL_COLS = (
    "collection_id, namespace_id, collection_name, description, config, created_at, updated_at, write_version"
)


class CatalogMixin:
    """Needs ``_drop_collection_data`` and ``_create_feature_tables`` from the documents half."""

    db: Database
    _drop_collection_data: Callable[[sqlite3.Connection, str], None]
    _create_feature_tables: Callable[[sqlite3.Connection, Collection], None]
    _bump: Callable[[sqlite3.Connection, str], int]
    _advance_indexes: Callable[[Collection, int], None]
    _begin_apply: Callable[[str, int], None]
    _end_apply: Callable[[str, int], None]
    _forget_apply: Callable[[str, int], None]
    _apply_lock: threading.Lock
    _record_writer: RecordWriter

    # -- keys ---------------------------------------------------------------------------------

    def create_key(self, key: ApiKey, key_hash: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                f"INSERT INTO api_keys(key_hash, {_KEY_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    key_hash,
                    key.key_id,
                    key.name,
                    key.prefix,
                    json.dumps(list(key.namespaces)) if key.namespaces is not None else None,
                    iso(key.created_at),
                    iso(key.revoked_at) if key.revoked_at is not None else None,
                    iso(key.expires_at) if key.expires_at is not None else None,
                    key.rate.per_second if key.rate is not None else None,
                    key.rate.burst if key.rate is not None else None,
                ),
            )

    def key_by_hash(self, key_hash: str) -> ApiKey | None:
        row = self.db.row(f"SELECT {_KEY_COLS} FROM api_keys WHERE key_hash = ?", (key_hash,))
        return _key(row) if row else None

    def key_with_hash(self, key_id: str) -> tuple[ApiKey, str] | None:
        row = self.db.row(f"SELECT {_KEY_COLS}, key_hash FROM api_keys WHERE key_id = ?", (key_id,))
        return (_key(row[:-1]), row[-1]) if row else None

    def list_keys(self) -> list[ApiKey]:
        with self.db.read() as conn:
            rows = conn.execute(f"SELECT {_KEY_COLS} FROM api_keys ORDER BY created_at").fetchall()
        return [_key(r) for r in rows]

    def revoke_key(self, key_id_or_prefix: str) -> ApiKey | None:
        from siftline.models import utcnow

        with self.db.write() as conn:
            rows = conn.execute(
                "SELECT key_id FROM api_keys WHERE key_id = ? OR prefix = ?",
                (key_id_or_prefix, key_id_or_prefix),
            ).fetchall()
            if len(rows) != 1:
                return None
            conn.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE key_id = ?",
                (iso(utcnow()), rows[0][0]),
            )
            row = conn.execute(f"SELECT {_KEY_COLS} FROM api_keys WHERE key_id = ?", (rows[0][0],)).fetchone()
        return _key(row)

    def count_keys(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute("SELECT count(*) FROM api_keys").fetchone()[0])

    # -- namespaces ---------------------------------------------------------------------------

    def create_namespace(self, namespace: Namespace) -> None:
        with self.db.write() as conn:
            taken = conn.execute(
                "SELECT 1 FROM namespaces WHERE namespace_id = ? OR namespace_name = ?",
                (namespace.namespace_id, namespace.namespace_name),
            ).fetchone()
            if taken:
                raise AlreadyExistsError(
                    f"A namespace named '{namespace.namespace_name}' already exists; choose another name."
                )
            conn.execute(
                f"INSERT INTO namespaces({_NS_COLS}) VALUES (?,?,?,?,?,?)",
                (
                    namespace.namespace_id,
                    namespace.namespace_name,
                    namespace.description,
                    json.dumps(namespace.metadata),
                    iso(namespace.created_at),
                    iso(namespace.updated_at),
                ),
            )

    def get_namespace(self, id_or_name: str) -> Namespace | None:
        row = self.db.row(
            f"SELECT {_NS_COLS} FROM namespaces WHERE namespace_id = ? OR namespace_name = ? "
            "ORDER BY namespace_id = ? DESC LIMIT 1",
            (id_or_name, id_or_name, id_or_name),
        )
        return _namespace(row) if row else None

    def list_namespaces(
        self, limit: int, offset: int, allowed: Sequence[str] | None = None
    ) -> tuple[list[Namespace], int]:
        where, params = "", []
        if allowed is not None:
            where = f"WHERE namespace_id IN ({','.join('?' * len(allowed))})" if allowed else "WHERE 0"
            params = list(allowed)
        with self.db.read() as conn:
            total = conn.execute(f"SELECT count(*) FROM namespaces {where}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT {_NS_COLS} FROM namespaces {where} ORDER BY created_at, namespace_id LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [_namespace(r) for r in rows], int(total)

    def update_namespace(self, namespace: Namespace) -> None:
        with self.db.write() as conn:
            clash = conn.execute(
                "SELECT 1 FROM namespaces WHERE namespace_name = ? AND namespace_id != ?",
                (namespace.namespace_name, namespace.namespace_id),
            ).fetchone()
            if clash:
                raise AlreadyExistsError(f"A namespace named '{namespace.namespace_name}' already exists.")
            conn.execute(
                "UPDATE namespaces SET namespace_name = ?, description = ?, metadata = ?, updated_at = ? "
                "WHERE namespace_id = ?",
                (
                    namespace.namespace_name,
                    namespace.description,
                    json.dumps(namespace.metadata),
                    iso(namespace.updated_at),
                    namespace.namespace_id,
                ),
            )

    def delete_namespace(self, namespace_id: str) -> bool:
        self._record_writer.flush()  # its queued execution records go with it
        with self.db.write() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT collection_id FROM collections WHERE namespace_id = ?", (namespace_id,)
                )
            ]
            for collection_id in ids:
                self._drop_collection_data(conn, collection_id)
            conn.execute("DELETE FROM collections WHERE namespace_id = ?", (namespace_id,))
            conn.execute("DELETE FROM retrievers WHERE namespace_id = ?", (namespace_id,))
            conn.execute("DELETE FROM executions WHERE namespace_id = ?", (namespace_id,))
            conn.execute("DELETE FROM cache_entries WHERE namespace_id = ?", (namespace_id,))
            conn.execute("DELETE FROM interactions WHERE namespace_id = ?", (namespace_id,))
            conn.execute("DELETE FROM fusion_posteriors WHERE namespace_id = ?", (namespace_id,))
            conn.execute("DELETE FROM eval_datasets WHERE namespace_id = ?", (namespace_id,))
            conn.execute("DELETE FROM eval_runs WHERE namespace_id = ?", (namespace_id,))
            return conn.execute("DELETE FROM namespaces WHERE namespace_id = ?", (namespace_id,)).rowcount > 0

    # -- collections --------------------------------------------------------------------------

    def create_collection(self, collection: Collection) -> None:
        with self.db.write() as conn:
            taken = conn.execute(
                "SELECT 1 FROM collections WHERE namespace_id = ? AND collection_name = ?",
                (collection.namespace_id, collection.collection_name),
            ).fetchone()
            if taken:
                raise AlreadyExistsError(
                    f"A collection named '{collection.collection_name}' already exists in this namespace; "
                    "choose another name or delete the existing collection."
                )
            conn.execute(
                f"INSERT INTO collections({_COL_COLS}) VALUES (?,?,?,?,?,?,?,?)",
                (
                    collection.collection_id,
                    collection.namespace_id,
                    collection.collection_name,
                    collection.description,
                    collection_config(collection),
                    iso(collection.created_at),
                    iso(collection.updated_at),
                    0,
                ),
            )
            self._create_feature_tables(conn, collection)
            payload_index.sync_indexes(conn, collection)

    def get_collection(self, namespace_id: str, id_or_name: str) -> Collection | None:
        row = self.db.row(
            f"SELECT {_COL_COLS} FROM collections WHERE namespace_id = ? "
            "AND (collection_id = ? OR collection_name = ?) ORDER BY collection_id = ? DESC LIMIT 1",
            (namespace_id, id_or_name, id_or_name, id_or_name),
        )
        return _collection(row) if row else None

    def list_collections(self, namespace_id: str, limit: int, offset: int) -> tuple[list[Collection], int]:
        with self.db.read() as conn:
            total = conn.execute(
                "SELECT count(*) FROM collections WHERE namespace_id = ?", (namespace_id,)
            ).fetchone()[0]
            rows = conn.execute(
                f"SELECT {_COL_COLS} FROM collections WHERE namespace_id = ? ORDER BY seq LIMIT ? OFFSET ?",
                (namespace_id, limit, offset),
            ).fetchall()
        return [_collection(r) for r in rows], int(total)

    def update_collection(self, collection: Collection) -> None:
        with self.db.write_lock:  # the in-memory indexes follow the version bump in commit order
            version = -1
            try:
                with self.db.write() as conn:
                    clash = conn.execute(
                        "SELECT 1 FROM collections WHERE namespace_id = ? AND collection_name = ? AND collection_id != ?",
                        (collection.namespace_id, collection.collection_name, collection.collection_id),
                    ).fetchone()
                    if clash:
                        raise AlreadyExistsError(
                            f"A collection named '{collection.collection_name}' already exists in this namespace."
                        )
                    conn.execute(
                        "UPDATE collections SET collection_name = ?, description = ?, config = ?, updated_at = ? "
                        "WHERE collection_id = ?",
                        (
                            collection.collection_name,
                            collection.description,
                            collection_config(collection),
                            iso(collection.updated_at),
                            collection.collection_id,
                        ),
                    )
                    payload_index.sync_indexes(conn, collection)
                    version = self._bump(conn, collection.collection_id)  # cached results of it are stale now
                    self._begin_apply(collection.collection_id, version)
            except BaseException:  # the commit failed: nothing to wait for
                self._forget_apply(collection.collection_id, version)
                raise
            self._apply_lock.acquire()  # see DocumentsMixin._begin_apply
            try:
                self._advance_indexes(collection, version)
            finally:
                self._end_apply(collection.collection_id, version)

    def delete_collection(self, collection: Collection) -> bool:
        with self.db.write() as conn:
            self._drop_collection_data(conn, collection.collection_id)
            return (
                conn.execute(
                    "DELETE FROM collections WHERE collection_id = ?", (collection.collection_id,)
                ).rowcount
                > 0
            )
