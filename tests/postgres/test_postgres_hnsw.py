"""HNSW on PostgreSQL (pgvector): exact below the threshold, a per-feature HNSW index above it, built in
the background, with recall@10 ≥ 0.95 against exact search, filters kept, writes found at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from siftline.filters import parse_filter
from siftline.models import Collection, DocumentWrite, Feature
from siftline.storage.postgres.ann import AnnConfig, index_name, index_state
from siftline.storage.postgres.backend import PostgresStorage
from siftline.testing.contract import brute_force, new_collection, new_namespace

EMB = Feature("emb", "dense", "vectors", "v1", 16, "cosine")
N, THRESHOLD = 20_000, 1000


def writes(rng: np.random.Generator, start: int, n: int) -> list[DocumentWrite]:
    centers = rng.normal(size=(20, 16)).astype(np.float32)
    out = []
    for i in range(start, start + n):
        vec = centers[i % 20] + 0.6 * rng.normal(size=16).astype(np.float32)
        out.append(DocumentWrite(f"d{i:05d}", {"decile": i % 10}, {}, {"emb": vec}, {}))
    return out


@pytest.fixture(scope="module")
def module_database(postgres: Any) -> Iterator[str]:
    """One database for the module's loaded tests (loading 20,000 vectors once)."""
    import uuid

    import psycopg

    name = f"h_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"postgresql://postgres@/{name}?host={postgres.root}&port={postgres.port}"
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def loaded(module_database: str) -> Iterator[tuple[PostgresStorage, Collection, dict[str, np.ndarray]]]:
    storage = PostgresStorage(
        module_database,
        pool_size=4,
        ann=AnnConfig(threshold=THRESHOLD, m=16, ef_construction=64, ef_search=100),
    )
    try:
        ns = new_namespace(storage, "main")
        collection = new_collection(storage, ns, "vecs", (EMB,), ())
        rng = np.random.default_rng(3)
        docs = writes(rng, 0, N)
        for lo in range(0, N, 2000):
            storage.put_documents(collection, docs[lo : lo + 2000], replace=False)
        yield storage, collection, {w.document_id: w.vectors["emb"] for w in docs}
    finally:
        storage.close()


def _index_scans(storage: PostgresStorage, collection: Collection) -> int:
    with storage.db.read() as conn:
        seq = storage._seqs(conn, collection.collection_id)[("emb", "dense")]
        row = conn.execute(
            "SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes WHERE indexrelname = %s",
            (index_name(seq),),
        ).fetchone()
    return int(row[0]) if row else 0


def _walked_the_index(storage: PostgresStorage, collection: Collection, before: int) -> bool:
    """Whether PostgreSQL counted scans of the feature's HNSW index since ``before`` (its statistics are
    flushed within about a second)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if _index_scans(storage, collection) > before:
            return True
        time.sleep(0.2)
    return False


def _settled(storage: PostgresStorage, collection: Collection, timeout: float = 120) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = storage.vector_index_status(collection, EMB)
        if status["path"] == "hnsw":
            return status
        time.sleep(0.2)
    raise AssertionError(f"no HNSW index after {timeout} s: {storage.vector_index_status(collection, EMB)}")


def test_below_the_threshold_search_is_exact(database: str) -> None:
    storage = PostgresStorage(database, pool_size=2, ann=AnnConfig(threshold=THRESHOLD))
    try:
        collection = new_collection(storage, new_namespace(storage, "main"), "vecs", (EMB,), ())
        docs = writes(np.random.default_rng(1), 0, 200)
        storage.put_documents(collection, docs, replace=False)
        stats: dict[str, object] = {}
        query = docs[7].vectors["emb"]
        hits = storage.vector_search(collection, EMB, query, 10, stats=stats)
        expected = brute_force({w.document_id: w.vectors["emb"] for w in docs}, query, "cosine", 10)
        assert [h[0] for h in hits] == [e[0] for e in expected]
        assert stats["path"] == "exact" and storage.vector_index_status(collection, EMB)["path"] == "exact"
    finally:
        storage.close()


def test_above_the_threshold_the_background_build_makes_search_go_through_hnsw_with_high_recall(
    loaded: tuple[PostgresStorage, Collection, dict[str, np.ndarray]],
) -> None:
    storage, collection, vectors = loaded
    status = _settled(storage, collection)  # built by the background thread the writes woke
    assert status["vectors"] == N and status["pending"] == 0 and status["building"] is False
    before = _index_scans(storage, collection)
    rng = np.random.default_rng(9)
    recalls = []
    keys = list(vectors)
    for i in rng.integers(0, N, 40):  # queries near the data, as real ones are
        q = vectors[keys[int(i)]] + 0.3 * rng.normal(size=16).astype(np.float32)
        stats: dict[str, object] = {}
        hits = storage.vector_search(collection, EMB, q, 10, stats=stats)
        assert stats["path"] == "hnsw" and stats["ef_search"] == 100
        exact = {e[0] for e in brute_force(vectors, q, "cosine", 10)}
        recalls.append(len(exact & {h[0] for h in hits}) / 10)
    assert float(np.mean(recalls)) >= 0.95
    assert _walked_the_index(storage, collection, before)  # the planner used the HNSW index


def test_a_filtered_hnsw_search_keeps_only_passing_documents_with_high_recall(
    loaded: tuple[PostgresStorage, Collection, dict[str, np.ndarray]],
) -> None:
    storage, collection, vectors = loaded
    _settled(storage, collection)
    node = parse_filter({"field": "decile", "operator": "in", "value": [3, 4]})  # 20 %: above the exact floor
    passing = {k: v for k, v in vectors.items() if int(k[1:]) % 10 in (3, 4)}
    recalls = []
    rng, keys = np.random.default_rng(11), list(vectors)
    for i in rng.integers(0, N, 30):
        q = vectors[keys[int(i)]] + 0.3 * rng.normal(size=16).astype(np.float32)
        stats: dict[str, object] = {}
        hits = storage.vector_search(collection, EMB, q, 10, filter=node, stats=stats)
        assert len(hits) == 10 and all(h[0] in passing for h in hits)
        assert stats["path"] == "hnsw" and stats["ef_search"] == int(100 / 0.2**0.5)  # widened for the filter
        exact = {e[0] for e in brute_force(passing, q, "cosine", 10)}
        recalls.append(len(exact & {h[0] for h in hits}) / 10)
    assert float(np.mean(recalls)) >= 0.95, recalls


def test_writes_after_the_build_are_found_at_once_and_deleted_ones_never(
    loaded: tuple[PostgresStorage, Collection, dict[str, np.ndarray]],
) -> None:
    storage, collection, vectors = loaded
    _settled(storage, collection)
    [new] = writes(np.random.default_rng(5), N, 1)
    storage.put_documents(collection, [new], replace=False)
    assert storage.vector_search(collection, EMB, new.vectors["emb"], 1)[0][0] == new.document_id
    victim = "d00042"
    assert storage.vector_search(collection, EMB, vectors[victim], 1)[0][0] == victim
    storage.delete_documents(collection, [victim])
    assert victim not in {h[0] for h in storage.vector_search(collection, EMB, vectors[victim], 10)}


def test_build_vector_index_builds_at_once(database: str) -> None:
    storage = PostgresStorage(database, pool_size=2, ann=AnnConfig(threshold=100))
    try:
        storage._builder.close()  # no background builds: the request must build it itself
        collection = new_collection(storage, new_namespace(storage, "main"), "vecs", (EMB,), ())
        storage.put_documents(collection, writes(np.random.default_rng(2), 0, 150), replace=False)
        assert storage.vector_index_status(collection, EMB)["path"] == "exact"
        assert storage.build_vector_index(collection, EMB)["path"] == "hnsw"
    finally:
        storage.close()


def test_two_servers_never_build_one_index_at_once(database: str) -> None:
    """The build of a feature's index is leased: while one server builds it, another's attempt returns at
    once without building; afterwards both see the one valid index."""
    config = AnnConfig(threshold=10**9, m=16, ef_construction=200)  # no background builds: built by hand
    first, second = (PostgresStorage(database, pool_size=2, ann=config) for _ in range(2))
    try:
        collection = new_collection(first, new_namespace(first, "main"), "vecs", (EMB,), ())
        docs = writes(np.random.default_rng(4), 0, 20_000)
        for lo in range(0, len(docs), 2000):
            first.put_documents(collection, docs[lo : lo + 2000], replace=False)
        with first.db.read() as conn:
            seq = first._seqs(conn, collection.collection_id)[("emb", "dense")]
        results: list[bool] = []
        builder = threading.Thread(target=lambda: results.append(first._builder.build(seq, 16, "cosine")))
        builder.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the first server's build has begun
            with second.db.read() as conn:
                if index_state(conn, seq) == "building":
                    break
            time.sleep(0.01)
        else:
            pytest.fail("the first build never started")
        assert second._builder.build(seq, 16, "cosine") is False  # leased: returns without building
        builder.join(timeout=120)
        assert results == [True]
        assert second.vector_index_status(collection, EMB)["path"] == "hnsw"
        assert second._builder.build(seq, 16, "cosine") is True  # valid already: nothing to build
    finally:
        first.close()
        second.close()
