"""Interactions in SQLite: indexed columns for the list filters, the rest of each one as JSON.

Adding checks for a recent identical interaction (same namespace and ``dedupe_key``, recorded since
``dedupe_since``) and inserts in one write transaction, so concurrent retries store one copy and
concurrent distinct interactions are all stored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from siftline.models import Interaction, InteractionQuery, iso
from siftline.storage.rows import interaction_body, interaction_of, time_of
from siftline.storage.sqlite.db import Database

_COLS = (
    "interaction_id, namespace_id, execution_id, retriever_id, feature_id, types, position, user_id, "
    "session_id, recorded_at, occurred_at, dedupe_key, body"
)


def _row(i: Interaction) -> tuple[Any, ...]:
    return (
        i.interaction_id, i.namespace_id, i.execution_id, i.retriever_id, i.feature_id,
        json.dumps(list(i.interaction_types)), i.position, i.user_id, i.session_id, iso(i.recorded_at),
        iso(i.occurred_at), i.dedupe_key, json.dumps(interaction_body(i), ensure_ascii=False, default=str),
    )  # fmt: skip


def _interaction(row: tuple[Any, ...]) -> Interaction:
    return interaction_of(row, json.loads(row[5]), time_of(row[9]), time_of(row[10]), json.loads(row[12]))


class InteractionsMixin:
    db: Database

    def add_interactions(
        self, interactions: Sequence[Interaction], dedupe_since: datetime
    ) -> list[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        seen: dict[tuple[str, str], str] = {}
        with self.db.write() as conn:
            for item in interactions:
                key = (item.namespace_id, item.dedupe_key)
                earlier = seen.get(key)
                if earlier is None:
                    row = conn.execute(
                        "SELECT interaction_id FROM interactions WHERE namespace_id = ? AND dedupe_key = ? "
                        "AND recorded_at >= ? ORDER BY recorded_at LIMIT 1",
                        (*key, iso(dedupe_since)),
                    ).fetchone()
                    earlier = row[0] if row else None
                if earlier is not None:
                    out.append((earlier, False))
                    continue
                conn.execute(f"INSERT INTO interactions({_COLS}) VALUES ({','.join('?' * 13)})", _row(item))
                seen[key] = item.interaction_id
                out.append((item.interaction_id, True))
        return out

    def get_interaction(self, namespace_id: str, interaction_id: str) -> Interaction | None:
        with self.db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLS} FROM interactions WHERE namespace_id = ? AND interaction_id = ?",
                (namespace_id, interaction_id),
            ).fetchone()
        return _interaction(row) if row else None

    def delete_interaction(self, namespace_id: str, interaction_id: str) -> bool:
        with self.db.write() as conn:
            return (
                conn.execute(
                    "DELETE FROM interactions WHERE namespace_id = ? AND interaction_id = ?",
                    (namespace_id, interaction_id),
                ).rowcount
                > 0
            )

    def list_interactions(
        self, namespace_id: str, query: InteractionQuery, limit: int, offset: int
    ) -> tuple[list[Interaction], int]:
        where, params = ["namespace_id = ?"], [namespace_id]
        for column in ("execution_id", "retriever_id", "session_id", "user_id", "feature_id"):
            value = getattr(query, column)
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if query.interaction_type is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(types) WHERE value = ?)")
            params.append(query.interaction_type)
        if query.since is not None:
            where.append("occurred_at >= ?")
            params.append(iso(query.since))
        if query.until is not None:
            where.append("occurred_at <= ?")
            params.append(iso(query.until))
        clause = " AND ".join(where)
        with self.db.read() as conn:
            total = conn.execute(f"SELECT count(*) FROM interactions WHERE {clause}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT {_COLS} FROM interactions WHERE {clause} "
                "ORDER BY occurred_at DESC, interaction_id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [_interaction(r) for r in rows], int(total)
