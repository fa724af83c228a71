"""Keys and namespaces in PostgreSQL (the catalog of the PostgreSQL backend; collections come next)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb

from siftline.errors import AlreadyExistsError
from siftline.models import ApiKey, Namespace, Rate
from siftline.storage.postgres.ann import drop_vectors_tables
from siftline.storage.postgres.collections import dense_seqs
from siftline.storage.postgres.db import Database
from siftline.storage.postgres.values import utc

_KEY_COLS = (
    "key_id, name, prefix, namespaces, created_at, revoked_at, expires_at, rate_per_second, rate_burst"
)
_NS_COLS = "namespace_id, namespace_name, description, metadata, created_at, updated_at"


def _key(row: tuple[Any, ...]) -> ApiKey:
    key_id, name, prefix, namespaces, created_at, revoked_at, expires_at, per_second, burst = row
    return ApiKey(
        key_id=key_id,
        name=name,
        prefix=prefix,
        namespaces=tuple(namespaces) if namespaces is not None else None,
        created_at=utc(created_at),  # type: ignore[arg-type]
        revoked_at=utc(revoked_at),
        expires_at=utc(expires_at),
        rate=Rate(float(per_second), int(burst or 0)) if per_second is not None else None,
    )


def _namespace(row: tuple[Any, ...]) -> Namespace:
    ns_id, name, description, metadata, created_at, updated_at = row
    return Namespace(ns_id, name, description, metadata, utc(created_at), utc(updated_at))  # type: ignore[arg-type]


class CatalogMixin:
    db: Database

    # -- keys -------------------------------------------------------------------------------------

    def create_key(self, key: ApiKey, key_hash: str) -> None:
        namespaces = Jsonb(list(key.namespaces)) if key.namespaces is not None else None
        with self.db.write() as conn:
            conn.execute(
                f"INSERT INTO api_keys(key_hash, {_KEY_COLS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    key_hash,
                    key.key_id,
                    key.name,
                    key.prefix,
                    namespaces,
                    key.created_at,
                    key.revoked_at,
                    key.expires_at,
                    key.rate.per_second if key.rate is not None else None,
                    key.rate.burst if key.rate is not None else None,
                ),
            )

    def key_by_hash(self, key_hash: str) -> ApiKey | None:
        with self.db.session() as conn:
            row = conn.execute(
                f"SELECT {_KEY_COLS} FROM api_keys WHERE key_hash = %s", (key_hash,)
            ).fetchone()
        return _key(row) if row else None

    def key_with_hash(self, key_id: str) -> tuple[ApiKey, str] | None:
        with self.db.session() as conn:
            row = conn.execute(
                f"SELECT {_KEY_COLS}, key_hash FROM api_keys WHERE key_id = %s", (key_id,)
            ).fetchone()
        return (_key(row[:-1]), row[-1]) if row else None

    def list_keys(self) -> list[ApiKey]:
        with self.db.read() as conn:
            rows = conn.execute(f"SELECT {_KEY_COLS} FROM api_keys ORDER BY created_at, key_id").fetchall()
        return [_key(r) for r in rows]

    def revoke_key(self, key_id_or_prefix: str) -> ApiKey | None:
        with self.db.write() as conn:
            rows = conn.execute(
                "SELECT key_id FROM api_keys WHERE key_id = %s OR prefix = %s FOR UPDATE",
                (key_id_or_prefix, key_id_or_prefix),
            ).fetchall()
            if len(rows) != 1:
                return None
            row = conn.execute(
                f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = %s "
                f"RETURNING {_KEY_COLS}",
                (rows[0][0],),
            ).fetchone()
        return _key(row)

    def count_keys(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute("SELECT count(*) FROM api_keys").fetchone()[0])

    # -- namespaces -------------------------------------------------------------------------------

    def create_namespace(self, namespace: Namespace) -> None:
        with self.db.write() as conn:
            inserted = conn.execute(
                f"INSERT INTO namespaces({_NS_COLS}) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (
                    namespace.namespace_id,
                    namespace.namespace_name,
                    namespace.description,
                    Jsonb(namespace.metadata),
                    namespace.created_at,
                    namespace.updated_at,
                ),
            ).rowcount
        if not inserted:
            raise AlreadyExistsError(
                f"A namespace named '{namespace.namespace_name}' already exists; choose another name."
            )

    def get_namespace(self, id_or_name: str) -> Namespace | None:
        with self.db.session() as conn:
            row = conn.execute(
                f"SELECT {_NS_COLS} FROM namespaces WHERE namespace_id = %s OR namespace_name = %s "
                "ORDER BY namespace_id = %s DESC LIMIT 1",
                (id_or_name, id_or_name, id_or_name),
            ).fetchone()
        return _namespace(row) if row else None

    def list_namespaces(
        self, limit: int, offset: int, allowed: Sequence[str] | None = None
    ) -> tuple[list[Namespace], int]:
        where, params = ("", []) if allowed is None else ("WHERE namespace_id = ANY(%s)", [list(allowed)])
        with self.db.read() as conn:
            total = conn.execute(f"SELECT count(*) FROM namespaces {where}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT {_NS_COLS} FROM namespaces {where} ORDER BY created_at, namespace_id LIMIT %s OFFSET %s",
                [*params, limit, offset],
            ).fetchall()
        return [_namespace(r) for r in rows], int(total)

    def update_namespace(self, namespace: Namespace) -> None:
        with self.db.write() as conn:
            clash = conn.execute(
                "SELECT 1 FROM namespaces WHERE namespace_name = %s AND namespace_id != %s",
                (namespace.namespace_name, namespace.namespace_id),
            ).fetchone()
            if clash:
                raise AlreadyExistsError(
                    f"A namespace named '{namespace.namespace_name}' already exists; choose another name."
                )
            conn.execute(
                "UPDATE namespaces SET namespace_name = %s, description = %s, metadata = %s, updated_at = %s "
                "WHERE namespace_id = %s",
                (
                    namespace.namespace_name,
                    namespace.description,
                    Jsonb(namespace.metadata),
                    namespace.updated_at,
                    namespace.namespace_id,
                ),
            )

    def delete_namespace(self, namespace_id: str) -> bool:
        with self.db.write() as conn:
            drop_vectors_tables(conn, dense_seqs(conn, "namespace_id = %s", namespace_id))
            return bool(
                conn.execute("DELETE FROM namespaces WHERE namespace_id = %s", (namespace_id,)).rowcount
            )
