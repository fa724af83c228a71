"""Each dense feature's vectors in a partition of their own (migration 6): a database of the one-table
layout is moved over without losing a vector; deletes leave no vector behind; a search plans and locks
its own feature's relations only, however many indexed collections the database holds."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg

from siftline.storage.postgres.ann import AnnConfig, index_state, vectors_table
from siftline.storage.postgres.backend import PostgresStorage
from siftline.testing.contract import (
    EMB_COSINE,
    EMB_EUCLIDEAN,
    assert_same_ranking,
    brute_force,
    ids,
    make_write,
    new_collection,
    new_namespace,
    vectors_of,
)
from siftline.testing.postgres_locks import counting_locks

THRESHOLD = 40


def open_storage(database: str) -> PostgresStorage:
    return PostgresStorage(database, pool_size=3, ann=AnnConfig(threshold=THRESHOLD))


def vector_rows(database: str) -> int:
    with psycopg.connect(database) as conn:
        return int(conn.execute("SELECT count(*) FROM vectors").fetchone()[0])


def partitions(database: str) -> set[str]:
    with psycopg.connect(database) as conn:
        return {
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'vectors'::regclass"
            )
        }


def test_the_one_table_layout_is_moved_into_partitions_and_indexed_again(database: str) -> None:
    storage = open_storage(database)
    ns = new_namespace(storage, "alpha")
    col = new_collection(storage, ns, "c", (EMB_COSINE, EMB_EUCLIDEAN), payload_indexes=())
    writes = [make_write(col, f"d{i}") for i in range(THRESHOLD + 20)]
    storage.put_documents(col, writes, replace=True)
    with psycopg.connect(database) as conn:
        seqs = dict(
            conn.execute("SELECT name, seq FROM features WHERE collection_id = %s", (col.collection_id,))
        )
    storage.close()

    # back to the layout migrations 3 to 5 made: one table, a partial HNSW index per feature
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE old_vectors (feature_seq bigint NOT NULL REFERENCES features(seq) ON DELETE CASCADE, "
            "rowid bigint NOT NULL REFERENCES documents(rowid) ON DELETE CASCADE, embedding vector NOT NULL, "
            "PRIMARY KEY (feature_seq, rowid))"
        )
        conn.execute("INSERT INTO old_vectors SELECT feature_seq, rowid, embedding FROM vectors")
        conn.execute("DROP TABLE vectors CASCADE")
        conn.execute("ALTER TABLE old_vectors RENAME TO vectors")
        conn.execute("CREATE INDEX vectors_by_document ON vectors(rowid)")
        conn.execute(
            f"CREATE INDEX vectors_hnsw_{seqs['cos']} ON vectors USING hnsw ((embedding::vector(8)) "
            f"vector_ip_ops) WHERE feature_seq = {seqs['cos']}"
        )
        conn.execute("DELETE FROM siftline_migrations WHERE version = 6")
    assert vector_rows(database) == 2 * len(writes)

    reopened = open_storage(database)
    try:
        assert 6 in reopened.db.applied()
        assert partitions(database) == {vectors_table(seqs["cos"]), vectors_table(seqs["emb"])}
        assert vector_rows(database) == 2 * len(writes)
        query = np.linspace(-1, 1, 8).astype(np.float32)
        for feature in (EMB_COSINE, EMB_EUCLIDEAN):
            expected = brute_force(vectors_of(writes, feature), query, feature.metric, 10)  # type: ignore[arg-type]
            reopened.build_vector_index(col, feature)  # the partition's own index, built again
            stats: dict[str, Any] = {}
            assert_same_ranking(reopened.vector_search(col, feature, query, 10, stats=stats), expected)
            assert stats["path"] == "hnsw"
        with psycopg.connect(database) as conn:
            assert index_state(conn, seqs["cos"]) == "valid"
        stored = reopened.get_documents(col, ["d3"], with_vectors=True)[0]
        assert np.allclose(stored.vectors["emb"], writes[3].vectors["emb"], atol=1e-6)  # type: ignore[index]
    finally:
        reopened.close()


def test_deleting_documents_collections_and_namespaces_leaves_no_vector_behind(database: str) -> None:
    storage = open_storage(database)
    try:
        ns, other_ns = new_namespace(storage, "alpha"), new_namespace(storage, "beta")
        a = new_collection(storage, ns, "a", (EMB_COSINE, EMB_EUCLIDEAN), payload_indexes=())
        b = new_collection(storage, ns, "b", (EMB_COSINE,), payload_indexes=())
        c = new_collection(storage, other_ns, "c", (EMB_COSINE,), payload_indexes=())
        for col in (a, b, c):
            storage.put_documents(col, [make_write(col, f"d{i}") for i in range(5)], replace=True)
        assert vector_rows(database) == 5 * 2 + 5 + 5
        assert len(partitions(database)) == 4

        storage.delete_documents(a, ["d0", "d1"])
        storage.put_documents(a, [make_write(a, "d2", seed=99)], replace=True)  # replaced: old vectors go
        assert vector_rows(database) == 3 * 2 + 5 + 5

        storage.delete_collection(b)
        assert vector_rows(database) == 3 * 2 + 5 and len(partitions(database)) == 3
        storage.delete_namespace(ns.namespace_id)
        assert vector_rows(database) == 5 and len(partitions(database)) == 1
        assert ids(storage.vector_search(c, EMB_COSINE, np.ones(8, np.float32), 10)) != []
        assert storage.vector_search(b, EMB_COSINE, np.ones(8, np.float32), 10) == []  # deleted: nothing
    finally:
        storage.close()


def test_a_search_locks_its_own_features_relations_however_many_collections_are_indexed(
    database: str,
) -> None:
    # every statement planned afresh, as for a collection large enough to walk its index
    storage = PostgresStorage(
        database + "&options=-c%20plan_cache_mode%3Dforce_custom_plan",
        pool_size=2,
        ann=AnnConfig(threshold=5),
    )
    try:
        ns = new_namespace(storage, "tenants")
        collections = []
        for i in range(40):
            col = new_collection(storage, ns, f"t{i}", (EMB_COSINE,), payload_indexes=())
            storage.put_documents(col, [make_write(col, f"d{j}") for j in range(5)], replace=True)
            assert storage.build_vector_index(col, EMB_COSINE)["path"] == "hnsw"
            collections.append(col)
        held: list[int] = []
        with counting_locks(storage, held):
            stats: dict[str, Any] = {}
            storage.vector_search(collections[17], EMB_COSINE, np.ones(8, np.float32), 3, stats=stats)
        assert stats["path"] == "hnsw"
        # documents and its indexes, features, the catalogs read, one partition and its three indexes:
        # not one lock per indexed collection (the one-table layout held more than 40 here)
        assert max(held) < 25, held
    finally:
        storage.close()


def test_the_index_builder_never_holds_one_features_table_while_waiting_for_another(database: str) -> None:
    """Deleting a collection drops its features' tables one after another; the builder counts them one
    after another. Were the counts one transaction, each would hold what it locked while waiting for the
    next, and the two would deadlock (seen in a CI server log): the builder must let go of each table."""
    import threading

    storage = PostgresStorage(database, pool_size=3, ann=AnnConfig(threshold=10**9))  # nothing gets built
    try:
        col = new_collection(storage, new_namespace(storage, "n"), "c", (EMB_COSINE, EMB_EUCLIDEAN), ())
        storage.put_documents(col, [make_write(col, f"d{i}") for i in range(5)], replace=True)
        with psycopg.connect(database) as conn:
            first, second = (
                vectors_table(r[0])
                for r in conn.execute(
                    "SELECT seq FROM features WHERE collection_id = %s AND kind = 'dense' ORDER BY seq",
                    (col.collection_id,),
                )
            )
        with psycopg.connect(database) as other:  # a deletion that got to the second table first
            other.execute("SET lock_timeout = '5s'")
            other.execute(f"LOCK TABLE {second} IN ACCESS EXCLUSIVE MODE")
            storage._builder._candidates = None  # look at every feature
            failed: list[BaseException] = []

            def due() -> None:
                try:
                    storage._builder._due()
                except BaseException as exc:  # a deadlock victim
                    failed.append(exc)

            counting = threading.Thread(target=due)  # counts first, then waits on second
            counting.start()
            counting.join(0.5)
            assert counting.is_alive()  # waiting for the second table
            held = other.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = %s AND l.granted AND l.pid <> pg_backend_pid()",
                (first,),
            ).fetchone()
            assert held is not None and held[0] == 0  # the first table was let go of once counted
            other.execute(f"LOCK TABLE {first} IN ACCESS EXCLUSIVE MODE")  # not held by the builder
            other.rollback()
        counting.join(10)
        assert not counting.is_alive() and failed == []
    finally:
        storage.close()


def test_a_transaction_lost_to_a_deadlock_is_a_retryable_503_not_an_outage(database: str) -> None:
    from siftline.errors import StorageUnavailableError

    storage = PostgresStorage(database, pool_size=2)
    try:
        try:
            with storage.db.write() as conn:  # what PostgreSQL raises in the victim of a deadlock
                conn.execute(
                    "DO $$ BEGIN RAISE EXCEPTION 'cycle' USING ERRCODE = 'deadlock_detected'; END $$"
                )
        except StorageUnavailableError as exc:
            assert "concurrent change" in exc.message and "retry" in exc.message
        else:
            raise AssertionError("no error")
        assert storage.db._unavailable_since is None  # the database was never away
    finally:
        storage.close()
