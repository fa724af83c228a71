"""Execution records in SQLite: indexed columns for lists, the detail and documents as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson

from siftline.models import ExecutionRecord, iso
from siftline.storage.sqlite.db import Database
from siftline.storage.sqlite.record_writer import RecordWriter

_COLS = "execution_id, namespace_id, retriever_id, mode, status, created_at, completed_at, detail, owner"


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:  # integers past 64 bits
        return json.dumps(value, ensure_ascii=False, default=str)


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _record(row: tuple[Any, ...], documents: str | None = None) -> ExecutionRecord:
    exec_id, ns_id, ret_id, mode, status, created, completed, detail, owner = row
    return ExecutionRecord(
        execution_id=exec_id,
        namespace_id=ns_id,
        retriever_id=ret_id,
        mode=mode,
        status=status,
        created_at=_ts(created),  # type: ignore[arg-type]
        completed_at=_ts(completed),
        detail=json.loads(detail),
        documents=json.loads(documents) if documents is not None else None,
        owner=owner,
    )


class RecordsMixin:
    db: Database
    _record_writer: RecordWriter
    server_alive: Callable[[str | None], bool]  # servers.LocalServers

    def _write_record_rows(self, rows: list[tuple[Any, ...]]) -> None:
        with self.db.write() as conn:
            conn.executemany(
                f"INSERT OR REPLACE INTO executions({_COLS}, documents) VALUES (?,?,?,?,?,?,?,?,?,?)", rows
            )

    def save_execution(self, record: ExecutionRecord) -> None:
        """Queued for the record writer (see :mod:`.record_writer`): committed within milliseconds, and
        visible to every read of this backend at once."""
        documents = None if record.documents is None else _dumps(record.documents)
        row = (
            record.execution_id,
            record.namespace_id,
            record.retriever_id,
            record.mode,
            record.status,
            iso(record.created_at),
            iso(record.completed_at) if record.completed_at else None,
            _dumps(record.detail),
            record.owner,
            documents,
        )
        self._record_writer.put(record.execution_id, row)

    def get_execution(self, namespace_id: str, execution_id: str) -> ExecutionRecord | None:
        queued = self._record_writer.lookup(execution_id)
        if queued is not None:  # saved, not committed yet: the queued row is the newest
            return _record(queued[:-1], queued[-1]) if queued[1] == namespace_id else None
        with self.db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLS}, documents FROM executions WHERE namespace_id = ? AND execution_id = ?",
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
        where, params = ["namespace_id = ?"], [namespace_id]
        if retriever_id is not None:
            where.append("retriever_id = ?")
            params.append(retriever_id)
        if mode is not None:
            where.append("mode = ?")
            params.append(mode)
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            params += list(statuses)
        if since is not None:
            where.append("created_at >= ?")
            params.append(iso(since))
        if until is not None:
            where.append("created_at <= ?")
            params.append(iso(until))
        clause = " AND ".join(where)
        self._record_writer.flush()
        with self.db.read() as conn:
            total = conn.execute(f"SELECT count(*) FROM executions WHERE {clause}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT {_COLS} FROM executions WHERE {clause} ORDER BY created_at DESC, execution_id DESC "
                "LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [_record(r) for r in rows], int(total)

    def fail_unfinished(self, error: str) -> int:
        self._record_writer.flush()
        with self.db.write() as conn:
            found = conn.execute(
                f"SELECT {_COLS} FROM executions WHERE status IN ('pending', 'processing')"
            ).fetchall()
            rows = [row for row in found if not self.server_alive(row[-1])]  # owner: the last column
            for row in rows:
                record = _record(row)
                record.detail["error"] = error
                record.detail["status"] = "failed"
                conn.execute(
                    "UPDATE executions SET status = 'failed', completed_at = coalesce(completed_at, created_at), "
                    "detail = ? WHERE execution_id = ?",
                    (_dumps(record.detail), record.execution_id),
                )
            return len(rows)

    def drop_documents(self, keep_last: int | None, before: datetime | None) -> int:
        dropped = 0
        self._record_writer.flush()
        with self.db.write() as conn:
            if keep_last is not None:
                dropped += conn.execute(
                    "UPDATE executions SET documents = NULL WHERE documents IS NOT NULL AND execution_id NOT IN "
                    "(SELECT execution_id FROM executions ORDER BY created_at DESC, execution_id DESC LIMIT ?)",
                    (keep_last,),
                ).rowcount
            if before is not None:
                dropped += conn.execute(
                    "UPDATE executions SET documents = NULL WHERE documents IS NOT NULL AND created_at < ?",
                    (iso(before),),
                ).rowcount
        return dropped
