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
    Migration(
        2,
        "retrievers and execution records",
        # the definitions and records are stored as ``json`` (their text as written: key order and
        # integers past 64 bits kept), never queried inside; deleting a namespace deletes them
        """
        CREATE TABLE retrievers (
            retriever_id text PRIMARY KEY,
            namespace_id text NOT NULL REFERENCES namespaces(namespace_id) ON DELETE CASCADE,
            retriever_name text NOT NULL,
            config json NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            version integer NOT NULL,
            UNIQUE (namespace_id, retriever_name)
        );
        CREATE TABLE executions (
            execution_id text PRIMARY KEY,
            namespace_id text NOT NULL REFERENCES namespaces(namespace_id) ON DELETE CASCADE,
            retriever_id text,
            mode text NOT NULL,
            status text NOT NULL,
            created_at timestamptz NOT NULL,
            completed_at timestamptz,
            detail json NOT NULL,
            documents json
        );
        CREATE INDEX executions_by_retriever ON executions(namespace_id, retriever_id, created_at);
        CREATE INDEX executions_by_mode ON executions(namespace_id, mode, created_at);
        CREATE INDEX executions_by_time ON executions(namespace_id, created_at);
        CREATE INDEX executions_unfinished ON executions(status) WHERE status IN ('pending', 'processing');
        """,
    ),
)
