"""Retrievers in SQLite: one row each, the definition as JSON."""

from __future__ import annotations

import json
from typing import Any

from siftline.errors import AlreadyExistsError
from siftline.models import Retriever, iso
from siftline.storage.rows import retriever_config, retriever_of, time_of
from siftline.storage.sqlite.db import Database

_COLS = "retriever_id, namespace_id, retriever_name, config, created_at, updated_at, version"


def _config(r: Retriever) -> str:
    return json.dumps(retriever_config(r), ensure_ascii=False)


def _retriever(row: tuple[Any, ...]) -> Retriever:
    rid, ns_id, name, config, created_at, updated_at, version = row
    return retriever_of(
        rid, ns_id, name, json.loads(config), time_of(created_at), time_of(updated_at), version
    )


class RetrieversMixin:
    db: Database

    def _name_taken(self, conn: Any, r: Retriever) -> bool:
        return (
            conn.execute(
                "SELECT 1 FROM retrievers WHERE namespace_id = ? AND retriever_name = ? AND retriever_id != ?",
                (r.namespace_id, r.retriever_name, r.retriever_id),
            ).fetchone()
            is not None
        )

    def create_retriever(self, retriever: Retriever) -> None:
        with self.db.write() as conn:
            if self._name_taken(conn, retriever):
                raise AlreadyExistsError(
                    f"A retriever named '{retriever.retriever_name}' already exists in this namespace; "
                    "choose another name, or clone the existing one."
                )
            conn.execute(
                f"INSERT INTO retrievers({_COLS}) VALUES (?,?,?,?,?,?,?)",
                (
                    retriever.retriever_id,
                    retriever.namespace_id,
                    retriever.retriever_name,
                    _config(retriever),
                    iso(retriever.created_at),
                    iso(retriever.updated_at),
                    retriever.version,
                ),
            )

    def get_retriever(self, namespace_id: str, id_or_name: str) -> Retriever | None:
        with self.db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLS} FROM retrievers WHERE namespace_id = ? AND (retriever_id = ? OR retriever_name = ?) "
                "ORDER BY retriever_id = ? DESC LIMIT 1",
                (namespace_id, id_or_name, id_or_name, id_or_name),
            ).fetchone()
        return _retriever(row) if row else None

    def list_retrievers(self, namespace_id: str, limit: int, offset: int) -> tuple[list[Retriever], int]:
        with self.db.read() as conn:
            total = conn.execute(
                "SELECT count(*) FROM retrievers WHERE namespace_id = ?", (namespace_id,)
            ).fetchone()[0]
            rows = conn.execute(
                f"SELECT {_COLS} FROM retrievers WHERE namespace_id = ? ORDER BY created_at DESC, retriever_id "
                "LIMIT ? OFFSET ?",
                (namespace_id, limit, offset),
            ).fetchall()
        return [_retriever(r) for r in rows], int(total)

    def update_retriever(self, retriever: Retriever) -> None:
        with self.db.write() as conn:
            if self._name_taken(conn, retriever):
                raise AlreadyExistsError(f"A retriever named '{retriever.retriever_name}' already exists.")
            conn.execute(
                "UPDATE retrievers SET retriever_name = ?, config = ?, updated_at = ?, version = ? "
                "WHERE retriever_id = ? AND namespace_id = ?",
                (
                    retriever.retriever_name,
                    _config(retriever),
                    iso(retriever.updated_at),
                    retriever.version,
                    retriever.retriever_id,
                    retriever.namespace_id,
                ),
            )

    def delete_retriever(self, namespace_id: str, retriever_id: str) -> bool:
        with self.db.write() as conn:
            conn.execute(
                "DELETE FROM cache_entries WHERE namespace_id = ? AND retriever_id = ?",
                (namespace_id, retriever_id),
            )
            return (
                conn.execute(
                    "DELETE FROM retrievers WHERE retriever_id = ? AND namespace_id = ?",
                    (retriever_id, namespace_id),
                ).rowcount
                > 0
            )
