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
    Migration(
        3,
        "collections, documents, vectors and BM25 postings",
        # documents: payload and internal as jsonvalues.exact_json, folded the case-folded copy the
        # filters read; rowid orders default listings and keeps its value when a document is replaced.
        # vectors: one table for every dense feature (exact search; HNSW indexes come per feature).
        # bm25: the postings and lengths of storage/text.py's analysis, scored in SQL.
        """
        CREATE TABLE collections (
            seq bigserial UNIQUE NOT NULL,
            collection_id text PRIMARY KEY,
            namespace_id text NOT NULL REFERENCES namespaces(namespace_id) ON DELETE CASCADE,
            collection_name text NOT NULL,
            description text,
            config json NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            write_version bigint NOT NULL DEFAULT 0,
            UNIQUE (namespace_id, collection_name)
        );
        CREATE TABLE features (
            seq bigserial PRIMARY KEY,
            collection_id text NOT NULL REFERENCES collections(collection_id) ON DELETE CASCADE,
            name text NOT NULL,
            kind text NOT NULL,
            UNIQUE (collection_id, name, kind)
        );
        CREATE TABLE documents (
            rowid bigserial PRIMARY KEY,
            collection_id text NOT NULL REFERENCES collections(collection_id) ON DELETE CASCADE,
            document_id text NOT NULL,
            payload jsonb NOT NULL,
            internal jsonb NOT NULL,
            folded jsonb NOT NULL,
            UNIQUE (collection_id, document_id)
        );
        CREATE TABLE vectors (
            feature_seq bigint NOT NULL REFERENCES features(seq) ON DELETE CASCADE,
            rowid bigint NOT NULL REFERENCES documents(rowid) ON DELETE CASCADE,
            embedding vector NOT NULL,
            PRIMARY KEY (feature_seq, rowid)
        );
        CREATE INDEX vectors_by_document ON vectors(rowid);
        CREATE TABLE bm25_docs (
            feature_seq bigint NOT NULL REFERENCES features(seq) ON DELETE CASCADE,
            rowid bigint NOT NULL REFERENCES documents(rowid) ON DELETE CASCADE,
            length integer NOT NULL,
            PRIMARY KEY (feature_seq, rowid)
        );
        CREATE INDEX bm25_docs_by_document ON bm25_docs(rowid);
        CREATE TABLE bm25_postings (
            feature_seq bigint NOT NULL,
            term text NOT NULL,
            rowid bigint NOT NULL,
            tf integer NOT NULL,
            PRIMARY KEY (feature_seq, term, rowid),
            FOREIGN KEY (feature_seq, rowid) REFERENCES bm25_docs(feature_seq, rowid) ON DELETE CASCADE
        );
        CREATE INDEX bm25_postings_by_document ON bm25_postings(feature_seq, rowid);
        """,
    ),
)
