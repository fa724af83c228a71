"""Interactions in PostgreSQL: indexed columns for the list filters, the rest of each one as JSON text.

Adding one checks for a recent identical interaction (same namespace and ``dedupe_key``, recorded since
``dedupe_since``) under a transaction-scoped advisory lock on that key, so retries arriving at two
servers at once store one copy, and distinct interactions never wait for each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from siftline.models import Interaction, InteractionQuery
from siftline.storage.postgres.db import Database
from siftline.storage.postgres.values import json_text, utc_of
from siftline.storage.rows import interaction_body, interaction_of

_COLS = (
    "interaction_id, namespace_id, execution_id, retriever_id, feature_id, types, position, user_id, "
    "session_id, recorded_at, occurred_at, dedupe_key, body"
)


def _row(i: Interaction) -> tuple[Any, ...]:
    return (
        i.interaction_id, i.namespace_id, i.execution_id, i.retriever_id, i.feature_id,
        Jsonb(list(i.interaction_types)), i.position, i.user_id, i.session_id, i.recorded_at,
        i.occurred_at, i.dedupe_key, json_text(interaction_body(i)),
    )  # fmt: skip


def _interaction(row: tuple[Any, ...]) -> Interaction:
    return interaction_of(row, row[5], utc_of(row[9]), utc_of(row[10]), row[12])


class InteractionsMixin:
    db: Database

    def add_interactions(
        self, interactions: Sequence[Interaction], dedupe_since: datetime
    ) -> list[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        seen: dict[tuple[str, str], str] = {}
        with self.db.write() as conn:
            for key in sorted(
                {(i.namespace_id, i.dedupe_key) for i in interactions}
            ):  # one order: no deadlock
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", ("interaction:" + "\x1f".join(key),)
                )
            for item in interactions:
                key = (item.namespace_id, item.dedupe_key)
                earlier = seen.get(key)
                if earlier is None:
                    row = conn.execute(
                        "SELECT interaction_id FROM interactions WHERE namespace_id = %s AND dedupe_key = %s "
                        "AND recorded_at >= %s ORDER BY recorded_at LIMIT 1",
                        (*key, dedupe_since),
                    ).fetchone()
                    earlier = row[0] if row else None
                if earlier is not None:
                    out.append((earlier, False))
                    continue
                conn.execute(
                    f"INSERT INTO interactions({_COLS}) VALUES ({', '.join(['%s'] * 12)}, %s::json)",
                    _row(item),
                )
                seen[key] = item.interaction_id
                out.append((item.interaction_id, True))
        return out

    def get_interaction(self, namespace_id: str, interaction_id: str) -> Interaction | None:
        with self.db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLS} FROM interactions WHERE namespace_id = %s AND interaction_id = %s",
                (namespace_id, interaction_id),
            ).fetchone()
        return _interaction(row) if row else None

    def delete_interaction(self, namespace_id: str, interaction_id: str) -> bool:
        with self.db.write() as conn:
            return bool(
                conn.execute(
                    "DELETE FROM interactions WHERE namespace_id = %s AND interaction_id = %s",
                    (namespace_id, interaction_id),
                ).rowcount
            )

    def list_interactions(
        self, namespace_id: str, query: InteractionQuery, limit: int, offset: int
    ) -> tuple[list[Interaction], int]:
        where, params = ["namespace_id = %s"], [namespace_id]
        for column in ("execution_id", "retriever_id", "session_id", "user_id", "feature_id"):
            value = getattr(query, column)
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        if query.interaction_type is not None:
            where.append("types ? %s")
            params.append(query.interaction_type)
        if query.since is not None:
            where.append("occurred_at >= %s")
            params.append(query.since)  # type: ignore[arg-type]
        if query.until is not None:
            where.append("occurred_at <= %s")
            params.append(query.until)  # type: ignore[arg-type]
        clause = " AND ".join(where)
        with self.db.read() as conn:
            total = conn.execute(f"SELECT count(*) FROM interactions WHERE {clause}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT {_COLS} FROM interactions WHERE {clause} "
                "ORDER BY occurred_at DESC, interaction_id DESC LIMIT %s OFFSET %s",
                [*params, limit, offset],
            ).fetchall()
        return [_interaction(r) for r in rows], int(total)
