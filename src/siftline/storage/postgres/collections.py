"""Collections in PostgreSQL: one row each (its definition as JSON text), its features numbered in
``features`` (the vectors and BM25 postings are keyed by that number; each dense feature's vectors have
a table of their own, made and dropped here), and its write version."""

from __future__ import annotations

from typing import Any

from siftline.errors import AlreadyExistsError
from siftline.models import Collection
from siftline.storage import rows
from siftline.storage.postgres.ann import create_vectors_table, drop_vectors_tables
from siftline.storage.postgres.db import Database
from siftline.storage.postgres.values import json_text, utc_of

_COLS = (
    "collection_id, namespace_id, collection_name, description, config, created_at, updated_at, write_version"
)


def _config(collection: Collection) -> str:
    return json_text(rows.collection_config(collection))


def collection_of(row: tuple[Any, ...]) -> Collection:
    col_id, ns_id, name, description, cfg, created_at, updated_at, version = row
    return rows.collection_of(
        col_id, ns_id, name, description, cfg, utc_of(created_at), utc_of(updated_at), version
    )


def _clash(conn: Any, collection: Collection) -> bool:
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("collections:" + collection.namespace_id,))
    return (
        conn.execute(
            "SELECT 1 FROM collections WHERE namespace_id = %s AND collection_name = %s AND collection_id != %s",
            (collection.namespace_id, collection.collection_name, collection.collection_id),
        ).fetchone()
        is not None
    )


def dense_seqs(conn: Any, where: str, *params: Any) -> list[int]:
    """The dense features of the collections ``where`` selects, in ascending order (every transaction
    that locks several features' tables takes them in this order, so none waits on another in a cycle)."""
    return [
        r[0]
        for r in conn.execute(
            f"SELECT f.seq FROM features f JOIN collections c USING (collection_id) WHERE f.kind = 'dense' "
            f"AND c.{where} ORDER BY f.seq",
            params,
        )
    ]


class CollectionsMixin:
    db: Database

    def create_collection(self, collection: Collection) -> None:
        with self.db.write() as conn:
            if _clash(conn, collection):
                raise AlreadyExistsError(
                    f"A collection named '{collection.collection_name}' already exists in this namespace."
                )
            conn.execute(
                f"INSERT INTO collections({_COLS}) VALUES (%s, %s, %s, %s, %s::json, %s, %s, 0)",
                (
                    collection.collection_id,
                    collection.namespace_id,
                    collection.collection_name,
                    collection.description,
                    _config(collection),
                    collection.created_at,
                    collection.updated_at,
                ),
            )
            for f in collection.features:
                seq = conn.execute(
                    "INSERT INTO features(collection_id, name, kind) VALUES (%s, %s, %s) RETURNING seq",
                    (collection.collection_id, f.name, f.kind),
                ).fetchone()[0]
                if f.kind == "dense":
                    create_vectors_table(conn, seq)

    def get_collection(self, namespace_id: str, id_or_name: str) -> Collection | None:
        with self.db.session() as conn:
            row = conn.execute(
                f"SELECT {_COLS} FROM collections WHERE namespace_id = %s "
                "AND (collection_id = %s OR collection_name = %s) ORDER BY collection_id = %s DESC LIMIT 1",
                (namespace_id, id_or_name, id_or_name, id_or_name),
            ).fetchone()
        return collection_of(row) if row else None

    def list_collections(self, namespace_id: str, limit: int, offset: int) -> tuple[list[Collection], int]:
        with self.db.read() as conn:
            total = conn.execute(
                "SELECT count(*) FROM collections WHERE namespace_id = %s", (namespace_id,)
            ).fetchone()[0]
            rows = conn.execute(
                f"SELECT {_COLS} FROM collections WHERE namespace_id = %s ORDER BY seq LIMIT %s OFFSET %s",
                (namespace_id, limit, offset),
            ).fetchall()
        return [collection_of(r) for r in rows], int(total)

    def update_collection(self, collection: Collection) -> None:
        with self.db.write() as conn:
            if _clash(conn, collection):
                raise AlreadyExistsError(
                    f"A collection named '{collection.collection_name}' already exists in this namespace."
                )
            conn.execute(
                "UPDATE collections SET collection_name = %s, description = %s, config = %s::json, "
                "updated_at = %s, write_version = write_version + 1 WHERE collection_id = %s",
                (
                    collection.collection_name,
                    collection.description,
                    _config(collection),
                    collection.updated_at,
                    collection.collection_id,
                ),
            )

    def delete_collection(self, collection: Collection) -> bool:
        with self.db.write() as conn:
            drop_vectors_tables(conn, dense_seqs(conn, "collection_id = %s", collection.collection_id))
            return bool(
                conn.execute(
                    "DELETE FROM collections WHERE collection_id = %s", (collection.collection_id,)
                ).rowcount
            )
