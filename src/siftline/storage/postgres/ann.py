"""The vectors of dense features in PostgreSQL (pgvector), and their HNSW indexes, built once a feature
is large enough.

Each dense feature has a table of its own, ``vectors_f<seq>(feature_seq, rowid, embedding vector)``: a
LIST partition of ``vectors``, created with the feature and dropped with its collection. Searches and
writes name the partition directly, so a statement plans and locks that feature's relations only —
with one shared table and a partial index per feature, every search's plan opened every feature's
index (thousands of collections exhausted PostgreSQL's lock table) and every build scanned every
feature's rows (``benchmarks/pg_many_features.py``). A feature with at least ``threshold`` vectors gets
an HNSW index on the typed expression ``(embedding::vector(<dim>))``, built with
``CREATE INDEX CONCURRENTLY`` by a background thread while writes and searches go on (pgvector keeps it
current on every later write: nothing is ever pending). Searches under the threshold, or while the
index builds, are exact.

Several servers: the build of one feature is leased with a session-level advisory lock, so one server
builds it; the others see the index once it is valid (``pg_index.indisvalid``). A build that died leaves
an invalid index, which the next build drops first.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

from siftline.storage.postgres.db import Database

log = logging.getLogger("siftline.postgres.ann")
BUILD_LOCK = 0x5F1A4400  # + feature seq: the advisory lock that leases one feature's build
QUIET_S = 2.0  # a feature is indexed once its writes pause this long (a bulk load inserts without a graph)
MAX_DEFER_S = 600.0  # … or once it has waited this long (a steady trickle of writes never pauses)


@dataclass(frozen=True)
class AnnConfig:
    """The embedded backend's HNSW settings, meaning the same here (``storage/sqlite/hnsw.py``)."""

    threshold: int = 20_000
    m: int = 32
    ef_construction: int = 64
    ef_search: int = 96
    exact_filter_max: float = 0.02  # a filter passing at most this share (or the floor) is searched exactly
    exact_filter_floor: int = 2_000

    def ef_for(self, size: int, share: float = 1.0) -> int:
        """``ef_search`` widened by sqrt(size / 100k) for a larger graph and by 1 / sqrt(share) for a
        filter passing ``share`` of it (at least 5 %), as the embedded backend widens it."""
        wider = max(1.0, size / 100_000) ** 0.5 / max(share, 0.05) ** 0.5
        return int(min(4096, self.ef_search * wider))


def index_name(seq: int) -> str:
    return f"vectors_hnsw_{int(seq)}"


def vectors_table(seq: int) -> str:
    """The partition holding feature ``seq``'s vectors."""
    return f"vectors_f{int(seq)}"


def create_vectors_table(conn: Any, seq: int) -> None:
    table = vectors_table(seq)
    conn.execute(f"CREATE TABLE {table} PARTITION OF vectors FOR VALUES IN ({int(seq)})")
    conn.execute(f"CREATE INDEX {table}_by_document ON {table}(rowid)")


def drop_vectors_tables(conn: Any, seqs: list[int]) -> None:
    for seq in seqs:
        conn.execute(f"DROP TABLE IF EXISTS {vectors_table(seq)}")


def opclass(metric: str | None) -> str:
    return "vector_l2_ops" if metric == "euclidean" else "vector_ip_ops"  # cosine vectors are unit length


def index_info(conn: Any, seq: int) -> tuple[str, int]:
    """The state of feature ``seq``'s index — 'valid', 'building' (present, not valid yet) or 'none' —
    and the vectors it held when last counted (PostgreSQL's ``reltuples``: set by the build and by
    ANALYZE; an estimate, read without scanning anything)."""
    row = conn.execute(
        "SELECT i.indisvalid, c.reltuples FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
        "WHERE c.relname = %s",
        (index_name(seq),),
    ).fetchone()
    if row is None:
        return "none", 0
    return ("valid" if row[0] else "building"), max(0, int(row[1]))


def index_state(conn: Any, seq: int) -> str:
    return index_info(conn, seq)[0]


class Builder:
    """One thread per storage: after writes, builds the HNSW index of each feature that crossed the
    threshold (``poke``); ``build`` builds one at once."""

    def __init__(self, db: Database, config: AnnConfig) -> None:
        self.db, self.config = db, config
        self._candidates: set[int] | None = None  # features written since the last pass (None: all)
        self._last_write: dict[str, float] = {}  # collection → when this server last wrote it (monotonic)
        self._writing: dict[str, int] = {}  # collection → this server's writes to it in progress
        self._waiting_since: dict[int, float] = {}  # feature → when it was first found due and deferred
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self.running = 0  # builds this server runs now (the metrics' gauge)

    def poke(self, seqs: list[int] | None = None) -> None:
        """Look at features ``seqs`` (all when None) soon: build those that crossed the threshold."""
        with self._guard:
            if seqs is None:
                self._candidates = None
            elif self._candidates is not None:
                self._candidates.update(seqs)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="siftline-pg-indexer", daemon=True)
                self._thread.start()
        self._wake.set()

    @contextlib.contextmanager
    def writing(self, collection_id: str) -> Iterator[None]:
        """Around a write to a collection: while any is in progress, and for ``QUIET_S`` after the
        last, the collection's features are not indexed (concurrent batches queue on the collection's
        row, so the time between two commits is no pause)."""
        with self._guard:
            self._writing[collection_id] = self._writing.get(collection_id, 0) + 1
        try:
            yield
        finally:
            with self._guard:
                self._writing[collection_id] -= 1
                if not self._writing[collection_id]:
                    del self._writing[collection_id]
                self._last_write[collection_id] = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(QUIET_S / 2 if self._waiting_since else 5.0)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                for seq, dim, metric in self._due():
                    if self._stop.is_set():
                        return
                    self.build(seq, dim, metric)
            except Exception:  # a failed build leaves searches exact; the next write tries again
                log.exception("building an HNSW index failed")

    def _due(self) -> list[tuple[int, int, str | None]]:
        """Among the features written since the last pass, the dense ones at or above the threshold
        without a valid index: (seq, dimension, metric)."""
        with self._guard:
            candidates, self._candidates = self._candidates, set()
        # Each statement on its own (autocommit): a count's lock on a feature's table is released at once.
        # Held to the end of one transaction over many tables, it deadlocked with a collection's deletion
        # dropping them (the CI server log of 2026-12-02).
        with self.db.session() as conn:
            rows = conn.execute(
                "SELECT f.seq, f.name, c.config, c.collection_id FROM features f JOIN collections c USING (collection_id) "
                "WHERE f.kind = 'dense' AND (%s::bigint[] IS NULL OR f.seq = ANY(%s::bigint[])) ORDER BY f.seq",
                (None if candidates is None else sorted(candidates),) * 2,
            ).fetchall()
            due = []
            for seq, name, cfg, collection_id in rows:
                feature = next(
                    (f for f in cfg["features"] if f["kind"] == "dense" and f["name"] == name), None
                )
                if not (feature and feature.get("dimension")) or index_state(conn, seq) == "valid":
                    self._forget(int(seq))
                    continue
                try:  # the collection may be deleted meanwhile
                    count = conn.execute(f"SELECT count(*) FROM {vectors_table(seq)}").fetchone()[0]
                except psycopg.Error:
                    self._forget(int(seq))
                    continue
                if count >= self.config.threshold and self._quiet(int(seq), collection_id):
                    due.append((int(seq), int(feature["dimension"]), feature.get("metric")))
        return due

    def _forget(self, seq: int) -> None:
        """A feature no longer waiting (indexed elsewhere, or deleted): without this the builder woke every
        second for it, and its old wait would skip the quiet period if it became due again."""
        with self._guard:
            self._waiting_since.pop(seq, None)

    def _quiet(self, seq: int, collection_id: str) -> bool:
        """Whether feature ``seq``'s writes have paused (or it waited long enough): an index built during
        a bulk load would make each later insert walk the graph (pgvector: under a hundred inserts a
        second against tens of thousands without it). A deferred feature stays a candidate."""
        now = time.monotonic()
        with self._guard:
            waiting = self._waiting_since.setdefault(seq, now)
            paused = (
                collection_id not in self._writing
                and now - self._last_write.get(collection_id, 0.0) >= QUIET_S
            )
            if paused or now - waiting >= MAX_DEFER_S:
                self._waiting_since.pop(seq, None)
                return True
            if self._candidates is not None:
                self._candidates.add(seq)
            return False

    def build(self, seq: int, dimension: int, metric: str | None, wait: bool = False) -> bool:
        """Build feature ``seq``'s index; True when valid after. While another thread or server holds the
        build's lease this returns False at once, or with ``wait`` waits for that build to end first."""
        with self.db.pool.connection() as conn:  # autocommit: CREATE INDEX CONCURRENTLY runs outside a block
            if not conn.execute("SELECT pg_try_advisory_lock(%s)", (BUILD_LOCK + seq,)).fetchone()[0]:
                if not wait:
                    return False
                # polled, not waited for in one statement: CREATE INDEX CONCURRENTLY waits for every
                # running statement's snapshot, so a statement blocked on the lease would deadlock it
                while not conn.execute("SELECT pg_try_advisory_lock(%s)", (BUILD_LOCK + seq,)).fetchone()[0]:
                    time.sleep(0.05)
            try:
                state = index_state(conn, seq)
                if state == "building":  # left invalid by a build that died
                    conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {index_name(seq)}")
                if state != "valid":
                    with self._running():
                        conn.execute("SET maintenance_work_mem = '512MB'")
                        conn.execute(
                            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {index_name(seq)} ON {vectors_table(seq)} "
                            f"USING hnsw ((embedding::vector({int(dimension)})) {opclass(metric)}) "
                            f"WITH (m = {int(self.config.m)}, ef_construction = {int(self.config.ef_construction)})"
                        )
                        conn.execute("RESET maintenance_work_mem")
                        conn.execute(
                            f"ANALYZE {vectors_table(seq)}"
                        )  # the planner weighs the index against exact scans
                return index_state(conn, seq) == "valid"
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (BUILD_LOCK + seq,))

    @contextlib.contextmanager
    def _running(self) -> Iterator[None]:
        with self._guard:
            self.running += 1
        try:
            yield
        finally:
            with self._guard:
                self.running -= 1

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
