"""The PostgreSQL schema, as numbered migrations applied in order at start-up (``db.Database.migrate``).

A migration, once released, is never edited: a change of schema is a new migration with the next
number. ``siftline_migrations`` records which ones a database has.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "keys and namespaces",
        """
        CREATE TABLE api_keys (
            key_id text PRIMARY KEY,
            name text NOT NULL,
            key_hash text NOT NULL UNIQUE,
            prefix text NOT NULL,
            namespaces jsonb,                -- null: every namespace
            created_at timestamptz NOT NULL,
            revoked_at timestamptz
        );
        CREATE INDEX api_keys_by_prefix ON api_keys(prefix);
        CREATE TABLE namespaces (
            namespace_id text PRIMARY KEY,
            namespace_name text NOT NULL UNIQUE,
            description text,
            metadata jsonb NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL
        );
        """,
    ),
)
