"""Execution records in PostgreSQL: indexed columns for lists, the detail and documents as JSON text.

Each save is its own small transaction, visible to every server at once (a record started on one server
is followed from another); the SQLite backend's batching writer has no counterpart yet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from siftline.models import ExecutionRecord
from siftline.storage.postgres.db import Database
from siftline.storage.postgres.values import json_text, utc

_COLS = "execution_id, namespace_id, retriever_id, mode, status, created_at, completed_at, detail, owner"


def _record(row: tuple[Any, ...], documents: Any = None) -> ExecutionRecord:
    exec_id, ns_id, ret_id, mode, status, created, completed, detail, owner = row
    return ExecutionRecord(
        execution_id=exec_id,
        namespace_id=ns_id,
        retriever_id=ret_id,
        mode=mode,
        status=status,
        created_at=utc(created),  # type: ignore[arg-type]
        completed_at=utc(completed),
        detail=detail,
        documents=documents,
        owner=owner,
    )


class RecordsMixin:
    db: Database

    gone_owner_sql: Callable[[], tuple[str, tuple[Any, ...]]]  # servers.py

    def save_execution(self, record: ExecutionRecord) -> None:
        documents = None if record.documents is None else json_text(record.documents)
        with self.db.write() as conn:
            conn.execute(
                f"INSERT INTO executions({_COLS}, documents) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::json, %s, %s::json) "
                "ON CONFLICT (execution_id) DO UPDATE SET namespace_id = excluded.namespace_id, "
                "retriever_id = excluded.retriever_id, mode = excluded.mode, status = excluded.status, "
                "created_at = excluded.created_at, completed_at = excluded.completed_at, "
                "detail = excluded.detail, owner = excluded.owner, documents = excluded.documents",
                (
                    record.execution_id,
                    record.namespace_id,
                    record.retriever_id,
                    record.mode,
                    record.status,
                    record.created_at,
                    record.completed_at,
                    json_text(record.detail),
                    record.owner,
                    documents,
                ),
            )

    def get_execution(self, namespace_id: str, execution_id: str) -> ExecutionRecord | None:
        with self.db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLS}, documents FROM executions WHERE namespace_id = %s AND execution_id = %s",
                (namespace_id, execution_id),
            ).fetchone()
        return _record(row[:-1], row[-1]) if row else None

    def list_executions(
        self,
        namespace_id: str,
        *,
        retriever_id: str | None = None,
        mode: str | None = None,
        statuses: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> tuple[list[ExecutionRecord], int]:
        where, params = ["namespace_id = %s"], [namespace_id]
        for column, value in (("retriever_id", retriever_id), ("mode", mode)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        if statuses:
            where.append("status = ANY(%s)")
            params.append(list(statuses))  # type: ignore[arg-type]
        if since is not None:
            where.append("created_at >= %s")
            params.append(since)  # type: ignore[arg-type]
        if until is not None:
            where.append("created_at <= %s")
            params.append(until)  # type: ignore[arg-type]
        clause = " AND ".join(where)
        with self.db.read() as conn:
            total = conn.execute(f"SELECT count(*) FROM executions WHERE {clause}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT {_COLS} FROM executions WHERE {clause} ORDER BY created_at DESC, execution_id DESC "
                "LIMIT %s OFFSET %s",
                [*params, limit, offset],
            ).fetchall()
        return [_record(r) for r in rows], int(total)

    def fail_unfinished(self, error: str) -> int:
        gone, params = self.gone_owner_sql()
        with self.db.write() as conn:
            rows = conn.execute(
                f"SELECT {_COLS} FROM executions WHERE status IN ('pending', 'processing') AND {gone} "
                "FOR UPDATE SKIP LOCKED",
                params,
            ).fetchall()
            for row in rows:
                record = _record(row)
                record.detail["error"] = error
                record.detail["status"] = "failed"
                conn.execute(
                    "UPDATE executions SET status = 'failed', completed_at = coalesce(completed_at, created_at), "
                    "detail = %s::json WHERE execution_id = %s",
                    (json_text(record.detail), record.execution_id),
                )
        return len(rows)

    def drop_documents(self, keep_last: int | None, before: datetime | None) -> int:
        dropped = 0
        with self.db.write() as conn:
            if keep_last is not None:
                dropped += conn.execute(
                    "UPDATE executions SET documents = NULL WHERE documents IS NOT NULL AND execution_id NOT IN "
                    "(SELECT execution_id FROM executions ORDER BY created_at DESC, execution_id DESC LIMIT %s)",
                    (keep_last,),
                ).rowcount
            if before is not None:
                dropped += conn.execute(
                    "UPDATE executions SET documents = NULL WHERE documents IS NOT NULL AND created_at < %s",
                    (before,),
                ).rowcount
        return dropped
