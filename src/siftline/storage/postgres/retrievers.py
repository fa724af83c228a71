"""Retrievers in PostgreSQL: one row each, the definition as JSON text."""

from __future__ import annotations

from typing import Any

from siftline.errors import AlreadyExistsError
from siftline.models import Retriever
from siftline.storage.postgres.db import Database
from siftline.storage.postgres.values import json_text, utc_of
from siftline.storage.rows import retriever_config, retriever_of

_COLS = "retriever_id, namespace_id, retriever_name, config, created_at, updated_at, version"


def _config(r: Retriever) -> str:
    return json_text(retriever_config(r))


def _retriever(row: tuple[Any, ...]) -> Retriever:
    rid, ns_id, name, cfg, created_at, updated_at, version = row
    return retriever_of(rid, ns_id, name, cfg, utc_of(created_at), utc_of(updated_at), version)


def _taken(conn: Any, r: Retriever) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM retrievers WHERE namespace_id = %s AND retriever_name = %s AND retriever_id != %s",
            (r.namespace_id, r.retriever_name, r.retriever_id),
        ).fetchone()
        is not None
    )


class RetrieversMixin:
    db: Database

    def create_retriever(self, retriever: Retriever) -> None:
        with self.db.write() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (retriever.namespace_id,))
            if _taken(conn, retriever):
                raise AlreadyExistsError(
                    f"A retriever named '{retriever.retriever_name}' already exists in this namespace; "
                    "choose another name, or clone the existing one."
                )
            conn.execute(
                f"INSERT INTO retrievers({_COLS}) VALUES (%s, %s, %s, %s::json, %s, %s, %s)",
                (
                    retriever.retriever_id,
                    retriever.namespace_id,
                    retriever.retriever_name,
                    _config(retriever),
                    retriever.created_at,
                    retriever.updated_at,
                    retriever.version,
                ),
            )

    def get_retriever(self, namespace_id: str, id_or_name: str) -> Retriever | None:
        with self.db.session() as conn:
            row = conn.execute(
                f"SELECT {_COLS} FROM retrievers WHERE namespace_id = %s "
                "AND (retriever_id = %s OR retriever_name = %s) ORDER BY retriever_id = %s DESC LIMIT 1",
                (namespace_id, id_or_name, id_or_name, id_or_name),
            ).fetchone()
        return _retriever(row) if row else None

    def list_retrievers(self, namespace_id: str, limit: int, offset: int) -> tuple[list[Retriever], int]:
        with self.db.read() as conn:
            total = conn.execute(
                "SELECT count(*) FROM retrievers WHERE namespace_id = %s", (namespace_id,)
            ).fetchone()[0]
            rows = conn.execute(
                f"SELECT {_COLS} FROM retrievers WHERE namespace_id = %s "
                "ORDER BY created_at DESC, retriever_id LIMIT %s OFFSET %s",
                (namespace_id, limit, offset),
            ).fetchall()
        return [_retriever(r) for r in rows], int(total)

    def update_retriever(self, retriever: Retriever) -> None:
        with self.db.write() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (retriever.namespace_id,))
            if _taken(conn, retriever):
                raise AlreadyExistsError(f"A retriever named '{retriever.retriever_name}' already exists.")
            conn.execute(
                "UPDATE retrievers SET retriever_name = %s, config = %s::json, updated_at = %s, version = %s "
                "WHERE retriever_id = %s AND namespace_id = %s",
                (
                    retriever.retriever_name,
                    _config(retriever),
                    retriever.updated_at,
                    retriever.version,
                    retriever.retriever_id,
                    retriever.namespace_id,
                ),
            )

    def delete_retriever(self, namespace_id: str, retriever_id: str) -> bool:
        with self.db.write() as conn:
            conn.execute(
                "DELETE FROM cache_entries WHERE namespace_id = %s AND retriever_id = %s",
                (namespace_id, retriever_id),
            )
            deleted = conn.execute(
                "DELETE FROM retrievers WHERE retriever_id = %s AND namespace_id = %s",
                (retriever_id, namespace_id),
            ).rowcount
        return bool(deleted)
