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
    Migration(
        4,
        "caches, interactions, fusion posteriors, evaluations",
        # every row belongs to a namespace and goes with it; times as the SQLite backend keeps them
        """
        CREATE TABLE cache_entries (
            cache_key text PRIMARY KEY,
            namespace_id text NOT NULL REFERENCES namespaces(namespace_id) ON DELETE CASCADE,
            kind text NOT NULL,
            retriever_id text,
            execution_id text,
            created_at float8 NOT NULL,
            expires_at float8,
            last_used float8 NOT NULL,
            size bigint NOT NULL,
            value bytea NOT NULL
        );
        CREATE INDEX cache_by_use ON cache_entries(last_used, cache_key);
        CREATE INDEX cache_by_expiry ON cache_entries(expires_at) WHERE expires_at IS NOT NULL;
        CREATE INDEX cache_by_namespace ON cache_entries(namespace_id, retriever_id);
        CREATE TABLE interactions (
            interaction_id text PRIMARY KEY,
            namespace_id text NOT NULL REFERENCES namespaces(namespace_id) ON DELETE CASCADE,
            execution_id text,
            retriever_id text,
            feature_id text NOT NULL,
            types jsonb NOT NULL,
            position integer NOT NULL,
            user_id text,
            session_id text,
            recorded_at timestamptz NOT NULL,
            occurred_at timestamptz NOT NULL,
            dedupe_key text NOT NULL,
            body json NOT NULL
        );
        CREATE INDEX interactions_by_time ON interactions(namespace_id, occurred_at);
        CREATE INDEX interactions_by_execution ON interactions(namespace_id, execution_id);
        CREATE INDEX interactions_by_retriever ON interactions(namespace_id, retriever_id, occurred_at);
        CREATE INDEX interactions_by_dedupe ON interactions(namespace_id, dedupe_key, recorded_at);
        CREATE TABLE fusion_posteriors (
            namespace_id text NOT NULL REFERENCES namespaces(namespace_id) ON DELETE CASCADE,
            scope text NOT NULL,
            stage_name text NOT NULL,
            level text NOT NULL,
            context_key text NOT NULL,
            feature_uri text NOT NULL,
            alpha float8 NOT NULL,
            beta float8 NOT NULL,
            interactions float8 NOT NULL,
            updated_at float8 NOT NULL,
            PRIMARY KEY (namespace_id, scope, stage_name, level, context_key, feature_uri)
        );
        CREATE TABLE eval_datasets (
            dataset_id text PRIMARY KEY,
            namespace_id text NOT NULL REFERENCES namespaces(namespace_id) ON DELETE CASCADE,
            dataset_name text NOT NULL,
            created_at timestamptz NOT NULL,
            body json NOT NULL,
            UNIQUE (namespace_id, dataset_name)
        );
        CREATE TABLE eval_runs (
            evaluation_id text PRIMARY KEY,
            namespace_id text NOT NULL REFERENCES namespaces(namespace_id) ON DELETE CASCADE,
            retriever_id text NOT NULL,
            dataset_name text NOT NULL,
            status text NOT NULL,
            created_at timestamptz NOT NULL,
            body json NOT NULL
        );
        CREATE INDEX eval_runs_by_retriever ON eval_runs(namespace_id, retriever_id, created_at);
        CREATE INDEX eval_runs_unfinished ON eval_runs(status) WHERE status IN ('pending', 'in_progress');
        """,
    ),
    Migration(
        5,
        "the servers sharing the database; execution records name theirs",
        # servers: one row per running Siftline server, its heartbeat refreshed every few seconds;
        # recovery fails only the unfinished work of servers whose heartbeat stopped.
        """
        CREATE TABLE servers (
            server_id text PRIMARY KEY,
            host text NOT NULL,
            pid integer NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now(),
            heartbeat_at timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE executions ADD COLUMN owner text;
        """,
    ),
    Migration(
        6,
        "vectors partitioned by feature",
        # One table with a partial HNSW index per feature made every search plan open every feature's
        # index (a lock each: thousands of collections exhaust the lock table) and every index build
        # scan every feature's rows. Each dense feature now has its own partition, vectors_f<seq>, which
        # searches and writes name directly; its HNSW index is rebuilt there by the background builder.
        # No foreign keys: deletes of documents and collections remove vectors explicitly.
        """
        ALTER TABLE vectors RENAME TO vectors_unpartitioned;
        CREATE TABLE vectors (
            feature_seq bigint NOT NULL,
            rowid bigint NOT NULL,
            embedding vector NOT NULL,
            PRIMARY KEY (feature_seq, rowid)
        ) PARTITION BY LIST (feature_seq);
        DO $$
        DECLARE f record;
        BEGIN
            FOR f IN SELECT seq FROM features WHERE kind = 'dense' ORDER BY seq LOOP
                EXECUTE format('CREATE TABLE vectors_f%s PARTITION OF vectors FOR VALUES IN (%s)', f.seq, f.seq);
                EXECUTE format('CREATE INDEX vectors_f%s_by_document ON vectors_f%s(rowid)', f.seq, f.seq);
                EXECUTE format(
                    'INSERT INTO vectors_f%s SELECT feature_seq, rowid, embedding FROM vectors_unpartitioned '
                    'WHERE feature_seq = %s', f.seq, f.seq);
            END LOOP;
        END $$;
        DROP TABLE vectors_unpartitioned;
        """,
    ),
    Migration(
        7,
        "key expiry and per-key rate limits",
        # existing keys keep working: they never expire and take the server's default limit
        """
        ALTER TABLE api_keys
            ADD COLUMN expires_at timestamptz,       -- null: never
            ADD COLUMN rate_per_second float8,       -- null: the server's default limit; 0: none
            ADD COLUMN rate_burst integer;
        """,
    ),
)
