"""SQLite connections and schema for the embedded backend.

WAL mode; one write connection behind a lock (``BEGIN IMMEDIATE`` so writers from another process,
such as ``siftline load``, queue instead of failing); one read connection per thread. Every
connection gets the filter functions of :mod:`siftline.storage.sqlite.filter_sql`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from siftline.errors import StorageError
from siftline.storage.sqlite import bm25_rows
from siftline.storage.sqlite.filter_sql import register_functions

SCHEMA_VERSION = 2  # 2: one vec_<feature seq> table per dense feature (was one `vectors` table)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    namespaces TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    expires_at TEXT,                 -- NULL: never
    rate_per_second REAL,            -- NULL: the server's default limit; 0: none
    rate_burst INTEGER
);
CREATE TABLE IF NOT EXISTS namespaces (
    namespace_id TEXT PRIMARY KEY,
    namespace_name TEXT NOT NULL UNIQUE,
    description TEXT,
    metadata TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS collections (
    seq INTEGER PRIMARY KEY,
    collection_id TEXT NOT NULL UNIQUE,
    namespace_id TEXT NOT NULL REFERENCES namespaces(namespace_id),
    collection_name TEXT NOT NULL,
    description TEXT,
    config TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    write_version INTEGER NOT NULL DEFAULT 0,
    UNIQUE (namespace_id, collection_name)
);
CREATE TABLE IF NOT EXISTS features (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: indexes and snapshot files are keyed by it
    collection_id TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    UNIQUE (collection_id, name, kind)
);
CREATE TABLE IF NOT EXISTS documents (
    rowid INTEGER PRIMARY KEY,
    collection_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    internal TEXT NOT NULL,
    UNIQUE (collection_id, document_id)
);
CREATE TABLE IF NOT EXISTS retrievers (
    retriever_id TEXT PRIMARY KEY,
    namespace_id TEXT NOT NULL REFERENCES namespaces(namespace_id),
    retriever_name TEXT NOT NULL,
    config TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL,
    UNIQUE (namespace_id, retriever_name)
);
CREATE TABLE IF NOT EXISTS executions (
    execution_id TEXT PRIMARY KEY,
    namespace_id TEXT NOT NULL,
    retriever_id TEXT,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    completed_at TEXT,
    detail TEXT NOT NULL,
    documents TEXT,
    owner TEXT                       -- the server running it (Storage.server_id)
);
CREATE INDEX IF NOT EXISTS executions_by_retriever ON executions(namespace_id, retriever_id, created_at);
CREATE INDEX IF NOT EXISTS executions_by_mode ON executions(namespace_id, mode, created_at);
CREATE INDEX IF NOT EXISTS executions_by_status ON executions(status);
CREATE TABLE IF NOT EXISTS cache_entries (
    cache_key TEXT PRIMARY KEY,
    namespace_id TEXT NOT NULL,
    kind TEXT NOT NULL,              -- result | stage
    retriever_id TEXT,
    execution_id TEXT,
    created_at REAL NOT NULL,        -- Unix seconds
    expires_at REAL,                 -- Unix seconds; NULL: kept until evicted
    last_used REAL NOT NULL,
    size INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_by_use ON cache_entries(last_used);
CREATE INDEX IF NOT EXISTS cache_by_expiry ON cache_entries(expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS cache_by_namespace ON cache_entries(namespace_id, retriever_id);
CREATE TABLE IF NOT EXISTS interactions (
    interaction_id TEXT PRIMARY KEY,
    namespace_id TEXT NOT NULL,
    execution_id TEXT,
    retriever_id TEXT,
    feature_id TEXT NOT NULL,
    types TEXT NOT NULL,             -- JSON list of interaction types
    position INTEGER NOT NULL,
    user_id TEXT,
    session_id TEXT,
    recorded_at TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    body TEXT NOT NULL               -- the rest: feature_uri, document_score, metadata, query_snapshot, …
);
CREATE INDEX IF NOT EXISTS interactions_by_time ON interactions(namespace_id, occurred_at);
CREATE INDEX IF NOT EXISTS interactions_by_execution ON interactions(namespace_id, execution_id);
CREATE INDEX IF NOT EXISTS interactions_by_retriever ON interactions(namespace_id, retriever_id, occurred_at);
CREATE INDEX IF NOT EXISTS interactions_by_dedupe ON interactions(namespace_id, dedupe_key, recorded_at);
CREATE TABLE IF NOT EXISTS fusion_posteriors (
    namespace_id TEXT NOT NULL,
    scope TEXT NOT NULL,             -- the retriever id (ad hoc: a hash of its stages)
    stage_name TEXT NOT NULL,
    level TEXT NOT NULL,             -- personal | segment | global
    context_key TEXT NOT NULL,
    feature_uri TEXT NOT NULL,
    alpha REAL NOT NULL,
    beta REAL NOT NULL,
    interactions REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (namespace_id, scope, stage_name, level, context_key, feature_uri)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS eval_datasets (
    dataset_id TEXT PRIMARY KEY,
    namespace_id TEXT NOT NULL,
    dataset_name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (namespace_id, dataset_name)
);
CREATE TABLE IF NOT EXISTS eval_runs (
    evaluation_id TEXT PRIMARY KEY,
    namespace_id TEXT NOT NULL,
    retriever_id TEXT NOT NULL,
    dataset_name TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS eval_runs_by_retriever ON eval_runs(namespace_id, retriever_id, created_at);
CREATE TABLE IF NOT EXISTS multi_valued (
    collection_id TEXT NOT NULL,
    field TEXT NOT NULL,
    PRIMARY KEY (collection_id, field)
) WITHOUT ROWID;
"""


CHECKPOINT_WAL_BYTES = 16 << 20
RESTART_WAL_BYTES = 256 << 20
TRUNCATE_WAIT_MS = 3000  # how long a TRUNCATE checkpoint may hold writers back waiting for readers
TRUNCATE_BACKOFF_S = (5.0, 60.0)  # after one gave up: the first and the longest wait before the next


def _configure(conn: sqlite3.Connection, busy_timeout_ms: int) -> sqlite3.Connection:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across process crashes
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -65536")
    register_functions(conn)
    return conn


def _migrate_vectors(conn: sqlite3.Connection) -> None:
    """Schema 1 kept every vector in ``vectors(feature_seq, doc_rowid, vec) WITHOUT ROWID``; schema 2 gives
    each dense feature its own rowid table ``vec_<seq>`` (appends in rowid order: half the write cost)."""
    old = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'vectors'").fetchone()
    if old is None:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        seqs = {r[0] for r in conn.execute("SELECT seq FROM features WHERE kind = 'dense'")}
        seqs |= {r[0] for r in conn.execute("SELECT DISTINCT feature_seq FROM vectors")}
        for seq in sorted(seqs):
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS vec_{int(seq)} (rowid INTEGER PRIMARY KEY, vec BLOB NOT NULL)"
            )
            conn.execute(
                f"INSERT OR REPLACE INTO vec_{int(seq)}(rowid, vec) "
                "SELECT doc_rowid, vec FROM vectors WHERE feature_seq = ?",
                (seq,),
            )
        conn.execute("DROP TABLE vectors")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _add_owner(conn: sqlite3.Connection) -> None:
    """Files made before execution records named their server gain the (empty) column."""
    if not any(r[1] == "owner" for r in conn.execute("PRAGMA table_info(executions)")):
        conn.execute("ALTER TABLE executions ADD COLUMN owner TEXT")
        conn.commit()


_KEY_LIMIT_COLUMNS = (("expires_at", "TEXT"), ("rate_per_second", "REAL"), ("rate_burst", "INTEGER"))


def _add_key_limits(conn: sqlite3.Connection) -> None:
    """Files made before keys had an expiry and a rate limit gain the (empty) columns: their keys keep
    working, never expiring, under the server's default limit."""
    present = {r[1] for r in conn.execute("PRAGMA table_info(api_keys)")}
    missing = [(name, kind) for name, kind in _KEY_LIMIT_COLUMNS if name not in present]
    for name, kind in missing:
        conn.execute(f"ALTER TABLE api_keys ADD COLUMN {name} {kind}")
    if missing:
        conn.commit()


class Database:
    """The database file with its writer and per-thread readers."""

    def __init__(self, path: Path, busy_timeout_ms: int = 30_000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock: threading.RLock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        try:
            self._writer = self._connect()
            self._writer.execute("PRAGMA journal_mode = WAL")
            self._writer.executescript(SCHEMA)
            self._writer.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            self._writer.commit()
            _migrate_vectors(self._writer)
            _add_owner(self._writer)
            _add_key_limits(self._writer)
            bm25_rows.migrate_fts(self._writer)
            # Commits never checkpoint (a large batch would pay for copying the WAL into the database
            # and two fsyncs); a background thread checkpoints instead, beside the writer.
            self._writer.execute("PRAGMA wal_autocheckpoint = 0")
        except sqlite3.Error as exc:
            raise StorageError(f"Cannot open the database at {path}: {exc}") from exc
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="siftline-wal", daemon=True)
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """PASSIVE checkpoints (never blocking readers or the writer) once the WAL passes 16 MiB.

        Under a steady stream of commits a passive checkpoint never catches up with the last frame, so
        the WAL would never start over: it grew to gigabytes during a million-document load and every
        page lookup slowed down with it (ingest fell from 20k to 10k docs/s). Past 256 MiB the
        checkpoint is TRUNCATE instead: it waits for the current write to end, holds the next one back
        while it copies what the passive ones left, and empties the log.

        A TRUNCATE must also wait for every reader of an older snapshot, and writers wait with it. A long
        read (``siftline backup`` copying a large database inside one snapshot) would hold writes back for
        the whole busy timeout again and again, so it waits at most ``TRUNCATE_WAIT_MS``; when it gives
        up, the next TRUNCATE comes 5 s later, then 10, 20 … 60 s (passive checkpoints meanwhile).
        """
        wal = Path(f"{self.path}-wal")
        conn = self._connect()
        conn.execute(f"PRAGMA busy_timeout = {TRUNCATE_WAIT_MS}")
        backoff, retry_at = 0.0, 0.0
        try:
            while not self._closing.wait(0.5):
                with contextlib.suppress(OSError, sqlite3.Error):
                    size = wal.stat().st_size if wal.exists() else 0
                    if size > RESTART_WAL_BYTES and time.monotonic() >= retry_at:
                        try:
                            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                        except sqlite3.OperationalError:  # the lock could not be had in time
                            busy = 1
                        first, longest = TRUNCATE_BACKOFF_S
                        backoff = min(longest, max(first, 2 * backoff)) if busy else 0.0
                        retry_at = time.monotonic() + backoff
                    elif size > CHECKPOINT_WAL_BYTES:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        return _configure(conn, self.busy_timeout_ms)

    def reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read connection; reads inside one ``with`` block see one snapshot."""
        conn = self.reader()
        try:
            conn.execute("BEGIN")
            yield conn
        except sqlite3.Error as exc:
            raise StorageError(f"Database read failed: {exc}") from exc
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of one statement, on this thread's read connection. A single statement reads one
        snapshot on its own: no BEGIN and COMMIT around it (two calls fewer on every request's key,
        namespace, collection and documents lookups)."""
        try:
            return self.reader().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"Database read failed: {exc}") from exc

    def row(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of one statement (see :meth:`rows`), or None."""
        found = self.rows(sql, params)
        return found[0] if found else None

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """The write connection inside ``BEGIN IMMEDIATE``; commits on success, rolls back on error."""
        with self._write_lock:
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageError(f"Database is busy or unwritable: {exc}") from exc
            try:
                yield conn
            except BaseException as exc:
                conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StorageError(f"Database write failed: {exc}") from exc
                raise
            else:
                conn.execute("COMMIT")

    @property
    def write_lock(self) -> threading.RLock:
        """Held around a write and the in-memory index updates that follow its commit, so those
        updates apply in commit order."""
        return self._write_lock

    def close(self) -> None:
        self._closing.set()
        self._checkpointer.join(timeout=30)
        with self._readers_lock:
            for conn in self._readers:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._readers.clear()
        with self._write_lock, contextlib.suppress(sqlite3.Error):
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._writer.close()
