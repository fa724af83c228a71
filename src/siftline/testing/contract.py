"""The storage contract: one pytest suite every backend must pass.

Subclass :class:`StorageContract` in a test module and provide the fixture ``open_storage``: a
callable that returns a *new* :class:`~siftline.storage.base.Storage` instance over one persistent
location (the same for every call of one test), and that closes every instance it opened at
teardown. Two calls give two instances over the same data: the suite uses that to restart a backend
and to play "another process wrote meanwhile".

Parts: ``KeyContract`` and ``NamespaceContract`` (each runnable alone, for a backend being built), and
``StorageContract``, which includes them: the whole contract.

The suite only calls the Protocol methods of ``siftline.storage.base``, so it runs unchanged against
any backend. Vectors are built directly (seeded numpy, float32): no embedding model is loaded.

    class TestSQLiteContract(StorageContract):
        @pytest.fixture
        def open_storage(self, tmp_path):
            ...
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from siftline.errors import AlreadyExistsError, SiftlineError
from siftline.filters import Node, parse_filter
from siftline.ids import new_id
from siftline.models import (
    UNLIMITED,
    ApiKey,
    Collection,
    Document,
    DocumentWrite,
    Feature,
    Metric,
    Namespace,
    PayloadIndex,
    Rate,
    SortSpec,
    utcnow,
)
from siftline.storage.base import Storage

OpenStorage = Callable[[], Storage]
# Property tests of a contract get fresh storage per example from function-scoped fixtures, and run from
# one subclass per backend in the same session (Hypothesis's "differing executors"): both are intended.
CONTRACT_CHECKS = [HealthCheck.function_scoped_fixture, HealthCheck.differing_executors]
Direction = Literal["asc", "desc"]

TEXT_DENSE = Feature("all_minilm_l6_v2", "dense", "text_extractor", "v1", 384, "cosine", ("text",))
TEXT_BM25 = Feature("bm25", "bm25", "text_extractor", "v1", None, None, ("text",))
EMB_EUCLIDEAN = Feature("emb", "dense", "vectors", "v1", 8, "euclidean")
EMB_COSINE = Feature("cos", "dense", "vectors", "v1", 8, "cosine")
EMB_DOT = Feature("dot", "dense", "vectors", "v1", 8, "dot_product")
FEATURES: tuple[Feature, ...] = (TEXT_DENSE, TEXT_BM25, EMB_EUCLIDEAN, EMB_COSINE, EMB_DOT)
PAYLOAD_INDEXES = (PayloadIndex("category", "keyword"), PayloadIndex("year", "integer"))
SMALL_DENSE = (EMB_EUCLIDEAN, EMB_COSINE, EMB_DOT)
CATEGORIES = ("news", "blog", "paper")
AWKWARD_QUERIES = (
    '"', "'", 'apple"', '"apple', "apple'", "(apple", "apple)", "apple*", "*", "^apple", "apple:cherry",
    "col:apple", "NEAR(apple cherry)", "apple AND", "OR apple", "NOT", "-apple", "+apple", "a-b", "C++",
    "\\", "%", "_", "__init__", ";DROP TABLE documents;--", "{apple}", "[apple]", "apple\x00", "🍎 apple",
    "日本語", "   ", ",.;:!?", "'; --",
)  # fmt: skip

# ---------------------------------------------------------------------------------------------- builders


def new_namespace(storage: Storage, name: str, **metadata: Any) -> Namespace:
    """Create and return a namespace named ``name``."""
    now = utcnow()
    namespace = Namespace(new_id("ns"), name, f"about {name}", dict(metadata), now, now)
    storage.create_namespace(namespace)
    return namespace


def new_collection(
    storage: Storage,
    namespace: Namespace,
    name: str,
    features: Sequence[Feature] = FEATURES,
    payload_indexes: Sequence[PayloadIndex] = PAYLOAD_INDEXES,
) -> Collection:
    """Create and return a collection (by default: text dense 384-d, bm25, and 8-d vectors of each metric)."""
    now = utcnow()
    text = any(f.extractor == "text_extractor" for f in features)
    collection = Collection(
        collection_id=new_id("col"),
        namespace_id=namespace.namespace_id,
        collection_name=name,
        description=f"the {name} collection",
        feature_extractor=(
            {"feature_extractor_name": "text_extractor", "version": "v1", "input_mappings": {"text": "text"}}
            if text
            else None
        ),
        features=tuple(features),
        payload_indexes=tuple(payload_indexes),
        metadata={"owner": "contract"},
        created_at=now,
        updated_at=now,
    )
    storage.create_collection(collection)
    return collection


def random_vectors(collection: Collection, seed: int) -> dict[str, np.ndarray]:
    """A float32 vector for every dense feature of the collection, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return {
        f.name: rng.standard_normal(f.dimension or 0).astype(np.float32) for f in collection.dense_features
    }


def make_write(
    collection: Collection,
    document_id: str,
    *,
    text: str | None = None,
    seed: int | None = None,
    vectors: Mapping[str, np.ndarray] | None = None,
    internal: Mapping[str, Any] | None = None,
    **payload: Any,
) -> DocumentWrite:
    """A write with ``payload`` as user fields; vectors random from ``seed`` (default: from the id)."""
    if vectors is None:
        vectors = random_vectors(collection, zlib.crc32(document_id.encode()) if seed is None else seed)
    texts = {f.name: text for f in collection.features if f.kind == "bm25"} if text is not None else {}
    if text is not None:
        payload.setdefault("text", text)
    return DocumentWrite(
        document_id=document_id,
        payload=dict(payload),
        internal=dict(internal) if internal is not None else {"source": "contract"},
        vectors=dict(vectors),
        texts=texts,
    )


def new_key(name: str = "test key", namespaces: tuple[str, ...] | None = None) -> tuple[ApiKey, str]:
    """An unsaved key record and the hash to store it under."""
    key_id = new_id("key")
    return ApiKey(key_id, name, f"sk_{key_id[-9:]}", namespaces, utcnow()), f"hash-of-{key_id}"


def fresh(storage: Storage, collection: Collection) -> Collection:
    """The collection as stored now (its current ``write_version``), as the service would fetch it."""
    found = storage.get_collection(collection.namespace_id, collection.collection_id)
    assert found is not None, f"collection {collection.collection_id} is gone"
    return found


def brute_force(
    vectors: Mapping[str, np.ndarray], query: np.ndarray, metric: Metric, top_k: int
) -> list[tuple[str, float]]:
    """The reference ranking in float64: cosine similarity, dot product or negated euclidean distance."""
    if not vectors:
        return []
    ids = list(vectors)
    matrix = np.stack([np.asarray(vectors[i], dtype=np.float64) for i in ids])
    q = np.asarray(query, dtype=np.float64)
    if metric == "cosine":
        scores = (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    elif metric == "dot_product":
        scores = matrix @ q
    else:
        scores = -np.linalg.norm(matrix - q, axis=1)
    order = sorted(range(len(ids)), key=lambda i: -scores[i])[:top_k]
    return [(ids[i], float(scores[i])) for i in order]


def assert_same_ranking(actual: Sequence[tuple[str, float]], expected: Sequence[tuple[str, float]]) -> None:
    """Same ids in the same order, scores equal up to float32 rounding."""
    assert [doc_id for doc_id, _ in actual] == [doc_id for doc_id, _ in expected]
    assert [score for _, score in actual] == pytest.approx(
        [score for _, score in expected], rel=1e-4, abs=1e-4
    )


def vectors_of(writes: Iterable[DocumentWrite], feature: Feature) -> dict[str, np.ndarray]:
    return {w.document_id: w.vectors[feature.name] for w in writes if feature.name in w.vectors}


def ids(results: Iterable[tuple[str, float]] | Iterable[Document]) -> list[str]:
    return [r.document_id if isinstance(r, Document) else r[0] for r in results]


def flt(obj: Any) -> Node:
    node = parse_filter(obj)
    assert node is not None
    return node


# ---------------------------------------------------------------------------------------------- the suite


class ContractFixtures:
    """What every part of the contract uses; a subclass provides the ``open_storage`` fixture."""

    @pytest.fixture
    def open_storage(self) -> OpenStorage:
        raise NotImplementedError("subclass StorageContract and provide an 'open_storage' fixture")

    @pytest.fixture
    def storage(self, open_storage: OpenStorage) -> Storage:
        return open_storage()

    @pytest.fixture
    def namespace(self, storage: Storage) -> Namespace:
        return new_namespace(storage, "main")

    @pytest.fixture
    def collection(self, storage: Storage, namespace: Namespace) -> Collection:
        return new_collection(storage, namespace, "docs")

    @pytest.fixture
    def corpus(self, storage: Storage, collection: Collection) -> list[DocumentWrite]:
        """30 documents: category cycles news/blog/paper, year 2000..2012 with ties, one text each."""
        words = ("apple", "banana", "cherry", "durian", "elder", "fig")
        writes = [
            make_write(
                collection,
                f"doc-{i:02d}",
                text=f"{words[i % 6]} {words[(i * 5 + 1) % 6]} story number {i}",
                category=CATEGORIES[i % 3],
                year=2000 + (i * 7) % 13,
                rank=i,
            )
            for i in range(30)
        ]
        storage.put_documents(collection, writes, replace=False)
        return writes


class KeyContract(ContractFixtures):
    """API keys (``KeyStore``)."""

    # -- keys -----------------------------------------------------------------------------------

    def test_created_key_is_found_by_its_hash(self, storage: Storage) -> None:
        key, key_hash = new_key("ci", ("ns_a", "ns_b"))
        storage.create_key(key, key_hash)
        assert storage.key_by_hash(key_hash) == key

    def test_unlimited_key_keeps_no_namespace_list(self, storage: Storage) -> None:
        key, key_hash = new_key("admin", None)
        storage.create_key(key, key_hash)
        found = storage.key_by_hash(key_hash)
        assert found is not None and found.namespaces is None

    def test_unknown_hash_finds_no_key(self, storage: Storage) -> None:
        storage.create_key(*new_key())
        assert storage.key_by_hash("no-such-hash") is None

    def test_key_with_hash_finds_a_key_by_id_with_its_stored_hash(self, storage: Storage) -> None:
        (a, a_hash), (b, b_hash) = new_key("a", ("ns_a",)), new_key("b")
        storage.create_key(a, a_hash)
        storage.create_key(b, b_hash)
        assert storage.key_with_hash(a.key_id) == (a, a_hash)
        assert storage.key_with_hash(b.key_id) == (b, b_hash)
        assert storage.key_with_hash("key_doesnotexist") is None
        assert storage.key_with_hash(a.prefix) is None  # by id only, never by prefix

    def test_key_with_hash_reports_a_revoked_key_as_revoked(self, storage: Storage) -> None:
        key, key_hash = new_key()
        storage.create_key(key, key_hash)
        storage.revoke_key(key.key_id)
        found = storage.key_with_hash(key.key_id)
        assert found is not None and found[1] == key_hash and found[0].revoked_at is not None

    def test_list_keys_returns_every_key(self, storage: Storage) -> None:
        keys = [new_key(f"k{i}") for i in range(3)]
        for key, key_hash in keys:
            storage.create_key(key, key_hash)
        assert {k.key_id for k in storage.list_keys()} == {k.key_id for k, _ in keys}

    def test_revoke_sets_revoked_at_and_key_is_still_found_by_hash(self, storage: Storage) -> None:
        key, key_hash = new_key()
        storage.create_key(key, key_hash)
        revoked = storage.revoke_key(key.key_id)
        assert revoked is not None and revoked.key_id == key.key_id and revoked.revoked_at is not None
        found = storage.key_by_hash(key_hash)
        assert found is not None and found.revoked_at is not None

    def test_revoking_leaves_other_keys_active(self, storage: Storage) -> None:
        (a, a_hash), (b, b_hash) = new_key("a"), new_key("b")
        storage.create_key(a, a_hash)
        storage.create_key(b, b_hash)
        storage.revoke_key(a.key_id)
        found = storage.key_by_hash(b_hash)
        assert found is not None and found.revoked_at is None

    def test_revoking_an_unknown_key_returns_none(self, storage: Storage) -> None:
        storage.create_key(*new_key())
        assert storage.revoke_key("key_doesnotexist") is None

    def test_count_keys_counts_created_keys(self, storage: Storage) -> None:
        assert storage.count_keys() == 0
        for i in range(3):
            storage.create_key(*new_key(f"k{i}"))
        assert storage.count_keys() == 3

    # -- expiry and rate limits -------------------------------------------------------------------

    def test_a_key_keeps_its_expiry_and_rate_limit(self, open_storage: OpenStorage) -> None:
        storage = open_storage()
        expires = datetime(2027, 1, 31, 0, 0, 0, 123456, tzinfo=UTC)
        limited, limited_hash = new_key("limited", ("ns_a",))
        limited = replace(limited, expires_at=expires, rate=Rate(5 / 60, 3))
        exempt, exempt_hash = new_key("exempt")
        exempt = replace(exempt, rate=UNLIMITED)
        plain, plain_hash = new_key("plain")
        for key, key_hash in ((limited, limited_hash), (exempt, exempt_hash), (plain, plain_hash)):
            storage.create_key(key, key_hash)
        for found in (storage, open_storage()):  # and after a restart
            assert found.key_by_hash(limited_hash) == limited
            assert found.key_with_hash(limited.key_id) == (limited, limited_hash)
            assert found.key_by_hash(exempt_hash) == exempt  # no limit at all, apart from "the default"
            assert found.key_by_hash(plain_hash) == plain
            assert plain.rate is None and plain.expires_at is None
            assert {k.key_id: k for k in found.list_keys()} == {k.key_id: k for k in (limited, exempt, plain)}

    def test_revoking_keeps_the_expiry_and_rate_limit(self, storage: Storage) -> None:
        key, key_hash = new_key()
        key = replace(key, expires_at=datetime(2030, 6, 1, tzinfo=UTC), rate=Rate(20.0, 40))
        storage.create_key(key, key_hash)
        revoked = storage.revoke_key(key.key_id)
        assert revoked is not None and revoked.revoked_at is not None
        assert (revoked.expires_at, revoked.rate) == (key.expires_at, key.rate)
        assert storage.key_by_hash(key_hash) == revoked


class NamespaceContract(ContractFixtures):
    """Namespaces (``NamespaceStore``), apart from deleting one with collections in it."""

    # -- namespaces -----------------------------------------------------------------------------

    def test_namespace_is_found_by_id_and_by_name(self, storage: Storage) -> None:
        namespace = new_namespace(storage, "alpha", team="search")
        assert storage.get_namespace(namespace.namespace_id) == namespace
        assert storage.get_namespace("alpha") == namespace

    def test_unknown_namespace_is_none(self, storage: Storage) -> None:
        new_namespace(storage, "alpha")
        assert storage.get_namespace("beta") is None

    def test_duplicate_namespace_name_raises_already_exists(self, storage: Storage) -> None:
        new_namespace(storage, "alpha")
        with pytest.raises(AlreadyExistsError):
            new_namespace(storage, "alpha")
        assert storage.list_namespaces(10, 0)[1] == 1

    def test_list_namespaces_pages_with_limit_offset_and_total(self, storage: Storage) -> None:
        created = [new_namespace(storage, f"ns-{i}") for i in range(5)]
        first, total = storage.list_namespaces(2, 0)
        rest, total_again = storage.list_namespaces(10, 2)
        assert total == total_again == 5
        assert len(first) == 2 and len(rest) == 3
        assert {n.namespace_id for n in first + rest} == {n.namespace_id for n in created}

    def test_list_namespaces_with_allowed_ids_lists_only_those(self, storage: Storage) -> None:
        created = [new_namespace(storage, f"ns-{i}") for i in range(4)]
        allowed = [created[1].namespace_id, created[3].namespace_id, "ns_unknown"]
        listed, total = storage.list_namespaces(10, 0, allowed=allowed)
        assert total == 2
        assert {n.namespace_id for n in listed} == set(allowed[:2])

    def test_list_namespaces_with_empty_allowed_lists_nothing(self, storage: Storage) -> None:
        new_namespace(storage, "alpha")
        assert storage.list_namespaces(10, 0, allowed=[]) == ([], 0)

    def test_update_namespace_renames_it(self, storage: Storage) -> None:
        namespace = new_namespace(storage, "alpha")
        renamed = replace(namespace, namespace_name="gamma", description="new", metadata={"v": 2})
        storage.update_namespace(renamed)
        assert storage.get_namespace("gamma") == renamed
        assert storage.get_namespace(namespace.namespace_id) == renamed
        assert storage.get_namespace("alpha") is None

    def test_renaming_onto_a_taken_name_raises_already_exists(self, storage: Storage) -> None:
        alpha, _ = new_namespace(storage, "alpha"), new_namespace(storage, "beta")
        with pytest.raises(AlreadyExistsError):
            storage.update_namespace(replace(alpha, namespace_name="beta"))
        assert storage.get_namespace(alpha.namespace_id) == alpha

    def test_delete_unknown_namespace_returns_false(self, storage: Storage) -> None:
        assert storage.delete_namespace("ns_doesnotexist") is False


class StorageContract(KeyContract, NamespaceContract):
    """The whole contract: a complete backend passes all of it; a subclass provides ``open_storage``."""

    def test_delete_namespace_removes_its_collections_and_documents_only(self, storage: Storage) -> None:
        doomed, kept = new_namespace(storage, "doomed"), new_namespace(storage, "kept")
        gone, other = new_collection(storage, doomed, "docs"), new_collection(storage, kept, "docs")
        writes = [make_write(gone, "d1", text="shared words"), make_write(gone, "d2", text="shared words")]
        storage.put_documents(gone, writes, replace=False)
        other_writes = [make_write(other, "d1", text="shared words")]
        storage.put_documents(other, other_writes, replace=False)
        query = writes[0].vectors["emb"]
        storage.vector_search(fresh(storage, gone), EMB_EUCLIDEAN, query, 10)  # warm any index

        assert storage.delete_namespace(doomed.namespace_id) is True

        assert storage.get_namespace(doomed.namespace_id) is None
        assert storage.get_collection(doomed.namespace_id, gone.collection_id) is None
        assert storage.list_collections(doomed.namespace_id, 10, 0) == ([], 0)
        assert storage.get_documents(gone, ["d1", "d2"]) == []
        assert storage.count_documents(gone) == 0
        assert storage.vector_search(gone, EMB_EUCLIDEAN, query, 10) == []
        assert storage.text_search(gone, TEXT_BM25, "shared", 10) == []
        assert storage.get_namespace(kept.namespace_id) == kept
        assert ids(storage.get_documents(other, ["d1"])) == ["d1"]
        assert ids(storage.vector_search(fresh(storage, other), EMB_EUCLIDEAN, query, 10)) == ["d1"]
        assert ids(storage.text_search(other, TEXT_BM25, "shared", 10)) == ["d1"]

    # -- collections ----------------------------------------------------------------------------

    def test_collection_round_trips_features_and_payload_indexes(
        self, storage: Storage, collection: Collection
    ) -> None:
        found = storage.get_collection(collection.namespace_id, collection.collection_id)
        assert found is not None
        assert found.features == FEATURES
        assert found.payload_indexes == PAYLOAD_INDEXES
        assert found.feature_extractor == collection.feature_extractor
        assert found.metadata == collection.metadata
        assert found.feature(TEXT_DENSE.uri) == TEXT_DENSE
        assert found == replace(collection, write_version=found.write_version)

    def test_collection_is_found_by_id_and_by_name(self, storage: Storage, collection: Collection) -> None:
        by_id = storage.get_collection(collection.namespace_id, collection.collection_id)
        by_name = storage.get_collection(collection.namespace_id, "docs")
        assert by_id is not None and by_id.collection_id == collection.collection_id
        assert by_name is not None and by_name.collection_id == collection.collection_id
        assert storage.get_collection(collection.namespace_id, "nope") is None

    def test_same_collection_name_in_two_namespaces_is_allowed_and_scoped(self, storage: Storage) -> None:
        ns_a, ns_b = new_namespace(storage, "a"), new_namespace(storage, "b")
        col_a, col_b = new_collection(storage, ns_a, "docs"), new_collection(storage, ns_b, "docs")
        found_a = storage.get_collection(ns_a.namespace_id, "docs")
        found_b = storage.get_collection(ns_b.namespace_id, "docs")
        assert found_a is not None and found_a.collection_id == col_a.collection_id
        assert found_b is not None and found_b.collection_id == col_b.collection_id
        assert storage.get_collection(ns_b.namespace_id, col_a.collection_id) is None
        assert storage.get_collection(ns_a.namespace_id, col_b.collection_id) is None

    def test_duplicate_collection_name_in_a_namespace_raises_already_exists(
        self, storage: Storage, namespace: Namespace, collection: Collection
    ) -> None:
        with pytest.raises(AlreadyExistsError):
            new_collection(storage, namespace, "docs")
        assert storage.list_collections(namespace.namespace_id, 10, 0)[1] == 1

    def test_list_collections_pages_with_total_and_stays_in_namespace(self, storage: Storage) -> None:
        mine, theirs = new_namespace(storage, "mine"), new_namespace(storage, "theirs")
        created = [new_collection(storage, mine, f"c{i}", (EMB_COSINE,)) for i in range(3)]
        new_collection(storage, theirs, "c0", (EMB_COSINE,))
        first, total = storage.list_collections(mine.namespace_id, 2, 0)
        rest, _ = storage.list_collections(mine.namespace_id, 2, 2)
        assert total == 3 and len(first) == 2 and len(rest) == 1
        assert {c.collection_id for c in first + rest} == {c.collection_id for c in created}

    def test_update_collection_changes_metadata_and_keeps_features(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        updated = replace(
            fresh(storage, collection), description="changed", metadata={"owner": "someone else"}
        )
        storage.update_collection(updated)
        found = fresh(storage, collection)
        assert found.description == "changed" and found.metadata == {"owner": "someone else"}
        assert found.features == FEATURES and found.payload_indexes == PAYLOAD_INDEXES
        assert storage.count_documents(found) == len(corpus)
        query = corpus[0].vectors["cos"]
        assert ids(storage.vector_search(found, EMB_COSINE, query, 1)) == ["doc-00"]

    def test_update_collection_renames_it(self, storage: Storage, collection: Collection) -> None:
        storage.update_collection(replace(collection, collection_name="renamed"))
        found = storage.get_collection(collection.namespace_id, "renamed")
        assert found is not None and found.collection_id == collection.collection_id
        assert storage.get_collection(collection.namespace_id, "docs") is None

    def test_delete_collection_removes_its_documents_and_search_results(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        query = corpus[0].vectors["emb"]
        storage.vector_search(fresh(storage, collection), EMB_EUCLIDEAN, query, 5)  # warm any index
        assert storage.delete_collection(collection) is True
        assert storage.get_collection(collection.namespace_id, collection.collection_id) is None
        assert storage.get_documents(collection, ["doc-00"]) == []
        assert storage.list_documents(collection, include_total=True).total == 0
        assert storage.count_documents(collection) == 0
        for feature in collection.dense_features:
            assert storage.vector_search(collection, feature, corpus[0].vectors[feature.name], 5) == []
        assert storage.text_search(collection, TEXT_BM25, "apple", 5) == []

    def test_delete_collection_leaves_other_collections_intact(
        self, storage: Storage, namespace: Namespace, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        other = new_collection(storage, namespace, "other")
        writes = [make_write(other, "doc-00", text="apple pie"), make_write(other, "x", text="apple tart")]
        storage.put_documents(other, writes, replace=False)
        storage.delete_collection(collection)
        assert storage.count_documents(other) == 2
        expected = brute_force(vectors_of(writes, EMB_DOT), writes[1].vectors["dot"], "dot_product", 5)
        assert_same_ranking(
            storage.vector_search(fresh(storage, other), EMB_DOT, writes[1].vectors["dot"], 5), expected
        )
        assert set(ids(storage.text_search(other, TEXT_BM25, "apple", 5))) == {"doc-00", "x"}

    def test_delete_unknown_collection_returns_false(self, storage: Storage, namespace: Namespace) -> None:
        ghost = replace(new_collection(storage, namespace, "ghost"), collection_id="col_doesnotexist")
        assert storage.delete_collection(ghost) is False

    # -- documents: writes and reads ---------------------------------------------------------------

    def test_put_then_get_returns_payload_and_internal(
        self, storage: Storage, collection: Collection
    ) -> None:
        write = make_write(
            collection, "d1", text="hello", internal={"created_at": "2024-01-01T00:00:00Z"},
            title="Hello", tags=["a", "b"], nested={"x": 1.5, "ok": True, "none": None}, city="Zürich",
        )  # fmt: skip
        storage.put_documents(collection, [write], replace=False)
        [doc] = storage.get_documents(collection, ["d1"])
        assert doc.document_id == "d1" and doc.collection_id == collection.collection_id
        assert doc.payload == write.payload
        assert doc.internal == write.internal
        assert doc.vectors is None

    def test_get_documents_keeps_requested_order_and_omits_missing(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        asked = ["doc-07", "missing-1", "doc-02", "doc-29", "missing-2", "doc-00"]
        assert ids(storage.get_documents(collection, asked)) == ["doc-07", "doc-02", "doc-29", "doc-00"]
        assert storage.get_documents(collection, ["missing"]) == []
        assert storage.get_documents(collection, []) == []

    def test_inserting_an_existing_id_raises_and_writes_nothing_of_the_batch(
        self, storage: Storage, collection: Collection
    ) -> None:
        original = make_write(collection, "taken", text="original words", version=1)
        storage.put_documents(collection, [original], replace=False)
        batch = [make_write(collection, f"new-{i}", text="fresh words") for i in range(3)]
        batch.append(make_write(collection, "taken", text="clobbering words", version=2))
        with pytest.raises(AlreadyExistsError):
            storage.put_documents(collection, batch, replace=False)
        current = fresh(storage, collection)
        assert storage.get_documents(current, ["new-0", "new-1", "new-2"]) == []
        assert storage.count_documents(current) == 1
        assert storage.get_documents(current, ["taken"])[0].payload == original.payload
        assert storage.text_search(current, TEXT_BM25, "fresh clobbering", 10) == []
        hits = storage.vector_search(current, EMB_EUCLIDEAN, batch[0].vectors["emb"], 10)
        assert ids(hits) == ["taken"]

    def test_replace_updates_payload_vectors_and_text(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        old = corpus[5]
        storage.vector_search(fresh(storage, collection), EMB_COSINE, old.vectors["cos"], 1)  # warm any index
        new = make_write(collection, old.document_id, text="zeppelin over the harbour", seed=999, edited=True)
        storage.put_documents(collection, [new], replace=True)
        current = fresh(storage, collection)
        [doc] = storage.get_documents(current, [old.document_id])
        assert doc.payload == new.payload
        assert storage.count_documents(current) == len(corpus)
        writes = [new if w.document_id == old.document_id else w for w in corpus]
        for feature in (EMB_COSINE, EMB_EUCLIDEAN, EMB_DOT, TEXT_DENSE):
            query = new.vectors[feature.name]
            expected = brute_force(vectors_of(writes, feature), query, feature.metric or "cosine", 3)
            assert expected[0][0] == old.document_id
            assert_same_ranking(storage.vector_search(current, feature, query, 3), expected)
            stale = storage.vector_search(current, feature, old.vectors[feature.name], 1)
            assert stale != [] and stale[0][0] != old.document_id
        assert ids(storage.text_search(current, TEXT_BM25, "zeppelin", 5)) == [old.document_id]
        assert old.document_id not in ids(storage.text_search(current, TEXT_BM25, "story number 5", 30))

    def test_replace_inserts_documents_that_do_not_exist_yet(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        writes = [
            make_write(collection, "doc-00", text="changed"),
            make_write(collection, "brand-new", text="new"),
        ]
        storage.put_documents(collection, writes, replace=True)
        current = fresh(storage, collection)
        assert storage.count_documents(current) == len(corpus) + 1
        assert ids(storage.get_documents(current, ["brand-new", "doc-00"])) == ["brand-new", "doc-00"]
        assert ids(storage.vector_search(current, EMB_EUCLIDEAN, writes[1].vectors["emb"], 1)) == [
            "brand-new"
        ]

    def test_replace_without_a_vector_removes_the_document_from_that_feature(
        self, open_storage: OpenStorage, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        target = corpus[3]
        storage.vector_search(fresh(storage, collection), EMB_DOT, target.vectors["dot"], 3)  # warm any index
        kept = {k: v for k, v in target.vectors.items() if k != "dot"}
        write = make_write(collection, target.document_id, text="still here", vectors=kept)
        storage.put_documents(collection, [write], replace=True)
        others = [w for w in corpus if w is not target]
        for instance in (storage, open_storage()):
            current = fresh(instance, collection)
            hits = instance.vector_search(current, EMB_DOT, target.vectors["dot"], len(corpus))
            assert target.document_id not in ids(hits)
            query = others[0].vectors["dot"]
            assert_same_ranking(
                instance.vector_search(current, EMB_DOT, query, 40),
                brute_force(vectors_of(others, EMB_DOT), query, "dot_product", 40),
            )
            assert ids(instance.vector_search(current, EMB_COSINE, target.vectors["cos"], 1)) == [
                target.document_id
            ]
            [doc] = instance.get_documents(current, [target.document_id], with_vectors=True)
            assert doc.vectors is not None and "dot" not in doc.vectors and "cos" in doc.vectors

    def test_with_vectors_returns_the_stored_vectors(self, storage: Storage, collection: Collection) -> None:
        write = make_write(collection, "d1", text="hello")
        storage.put_documents(collection, [write], replace=False)
        [doc] = storage.get_documents(collection, ["d1"], with_vectors=True)
        assert doc.vectors is not None and set(doc.vectors) == {f.name for f in collection.dense_features}
        for feature in collection.dense_features:
            given_vec = write.vectors[feature.name].astype(np.float64)
            stored = np.asarray(doc.vectors[feature.name], dtype=np.float64)
            assert stored.shape == ((feature.dimension or 0),)
            if feature.metric == "cosine":  # vectors.prepare: unit-normalised for cosine
                assert np.linalg.norm(stored) == pytest.approx(1.0, abs=1e-5)
                np.testing.assert_allclose(
                    stored, given_vec / np.linalg.norm(given_vec), rtol=1e-5, atol=1e-6
                )
            else:  # unchanged otherwise
                np.testing.assert_allclose(stored, given_vec, rtol=1e-6, atol=0)

    def test_delete_documents_returns_the_number_that_existed(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        assert storage.delete_documents(collection, ["doc-01", "doc-02", "missing"]) == 2
        assert storage.delete_documents(fresh(storage, collection), ["doc-01", "missing"]) == 0
        assert storage.delete_documents(fresh(storage, collection), []) == 0
        assert storage.count_documents(fresh(storage, collection)) == len(corpus) - 2

    def test_deleted_document_is_gone_from_get_list_count_and_every_search(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        target = corpus[4]
        warm = fresh(storage, collection)
        for feature in collection.dense_features:  # warm any index so the delete has to update it
            storage.vector_search(warm, feature, target.vectors[feature.name], 1)
        assert storage.delete_documents(warm, [target.document_id]) == 1
        current = fresh(storage, collection)
        assert storage.get_documents(current, [target.document_id]) == []
        listed = storage.list_documents(current, limit=100, include_total=True)
        assert target.document_id not in ids(listed.documents) and listed.total == len(corpus) - 1
        assert storage.count_documents(current) == len(corpus) - 1
        others = [w for w in corpus if w is not target]
        for feature in collection.dense_features:
            query = target.vectors[feature.name]
            assert_same_ranking(
                storage.vector_search(current, feature, query, 100),
                brute_force(vectors_of(others, feature), query, feature.metric or "cosine", 100),
            )
        assert target.document_id not in ids(storage.text_search(current, TEXT_BM25, "story number 4", 100))

    def test_document_without_vectors_or_text_is_stored_but_not_searchable(
        self, storage: Storage, collection: Collection
    ) -> None:
        storage.put_documents(
            collection, [make_write(collection, "bare", vectors={}, title="bare")], replace=False
        )
        current = fresh(storage, collection)
        assert ids(storage.get_documents(current, ["bare"])) == ["bare"]
        assert storage.vector_search(current, EMB_COSINE, np.ones(8, dtype=np.float32), 5) == []
        assert storage.text_search(current, TEXT_BM25, "bare", 5) == []

    def test_non_ascii_payload_round_trips(self, storage: Storage, collection: Collection) -> None:
        write = make_write(collection, "dé-1", text="crème brûlée", city="Zürich", emoji="🙂", 名前="値")
        storage.put_documents(collection, [write], replace=False)
        [doc] = storage.get_documents(collection, ["dé-1"])
        assert doc.payload == write.payload
        assert ids(storage.list_documents(collection, filter=flt({"city": "zürich"})).documents) == ["dé-1"]
        assert ids(storage.text_search(collection, TEXT_BM25, "brûlée", 5)) == ["dé-1"]

    def test_filter_on_a_non_ascii_field_name_finds_documents(
        self, storage: Storage, collection: Collection
    ) -> None:
        writes = [
            make_write(collection, "rome", città="Roma"),
            make_write(collection, "milan", città="Milano"),
        ]
        storage.put_documents(collection, writes, replace=False)
        assert ids(storage.list_documents(collection, filter=flt({"città": "Roma"})).documents) == ["rome"]
        assert storage.count_documents(collection, flt({"città": "Roma"})) == 1
        hits = storage.vector_search(fresh(storage, collection), EMB_EUCLIDEAN, writes[0].vectors["emb"], 5,
                                     filter=flt({"città": "Roma"}))  # fmt: skip
        assert ids(hits) == ["rome"]

    # -- list_documents and count_documents ---------------------------------------------------------

    def test_list_documents_returns_every_document_once(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        page = storage.list_documents(collection, limit=100)
        assert sorted(ids(page.documents)) == [w.document_id for w in corpus]
        assert page.next_cursor is None and page.total is None
        assert all(d.vectors is None for d in page.documents)

    def test_list_documents_filter_returns_only_matching(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        node = flt({"AND": [{"category": "blog"}, {"field": "year", "operator": "gte", "value": 2006}]})
        expected = [
            w.document_id for w in corpus if w.payload["category"] == "blog" and w.payload["year"] >= 2006
        ]
        page = storage.list_documents(collection, filter=node, limit=100, include_total=True)
        assert expected and sorted(ids(page.documents)) == expected and page.total == len(expected)

    def test_list_documents_filter_on_document_id_and_internal(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        node = flt({"field": "document_id", "operator": "in", "value": ["doc-03", "doc-09", "nope"]})
        assert sorted(ids(storage.list_documents(collection, filter=node).documents)) == ["doc-03", "doc-09"]
        assert storage.count_documents(collection, flt({"_internal.source": "contract"})) == len(corpus)

    @pytest.mark.parametrize("direction", ["asc", "desc"])
    def test_list_documents_sorts_on_a_numeric_field(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite], direction: Direction
    ) -> None:
        page = storage.list_documents(collection, sort=SortSpec("year", direction), limit=100)
        years = [d.payload["year"] for d in page.documents]
        assert len(years) == len(corpus)
        assert years == sorted(years, reverse=direction == "desc")

    @pytest.mark.parametrize("direction", ["asc", "desc"])
    def test_list_documents_sorts_on_document_id(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite], direction: Direction
    ) -> None:
        page = storage.list_documents(collection, sort=SortSpec("document_id", direction), limit=100)
        assert ids(page.documents) == sorted((w.document_id for w in corpus), reverse=direction == "desc")

    def test_list_documents_sort_with_limit_and_offset_takes_the_right_slice(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        page = storage.list_documents(collection, sort=SortSpec("rank", "desc"), limit=4, offset=3)
        assert [d.payload["rank"] for d in page.documents] == [26, 25, 24, 23]

    def test_list_documents_limit_and_offset_without_sort(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        everything = ids(storage.list_documents(collection, limit=100).documents)
        page = storage.list_documents(collection, limit=5, offset=10, include_total=True)
        assert ids(page.documents) == everything[10:15]
        assert page.total == len(corpus)
        tail = storage.list_documents(collection, limit=5, offset=28)
        assert ids(tail.documents) == everything[28:] and tail.next_cursor is None
        assert storage.list_documents(collection, limit=5, offset=100).documents == []

    def test_include_total_counts_every_match_not_the_page(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        page = storage.list_documents(
            collection, filter=flt({"category": "news"}), limit=2, include_total=True
        )
        assert len(page.documents) == 2 and page.total == 10

    @pytest.mark.parametrize(
        "sort", [None, SortSpec("year"), SortSpec("year", "desc"), SortSpec("document_id", "desc")], ids=str
    )
    @pytest.mark.parametrize("filtered", [False, True])
    def test_cursor_pagination_visits_every_document_exactly_once(
        self,
        storage: Storage,
        collection: Collection,
        corpus: list[DocumentWrite],
        sort: SortSpec | None,
        filtered: bool,
    ) -> None:
        node = flt({"NOT": [{"category": "paper"}]}) if filtered else None
        expected = storage.list_documents(collection, filter=node, sort=sort, limit=1000).documents
        assert len(expected) == (20 if filtered else 30)
        pages = self._walk(storage, collection, node, sort, limit=7)
        assert [len(p) for p in pages[:-1]] == [7] * (len(pages) - 1)
        assert ids(itertools.chain.from_iterable(pages)) == ids(expected)

    @given(
        size=st.integers(0, 25),
        limit=st.integers(1, 8),
        sort=st.sampled_from(
            [None, SortSpec("year"), SortSpec("year", "desc"), SortSpec("document_id", "desc")]
        ),
        min_year=st.none() | st.integers(0, 3),
    )
    @hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=CONTRACT_CHECKS)
    def test_cursor_pagination_never_repeats_or_skips(
        self,
        storage: Storage,
        namespace: Namespace,
        size: int,
        limit: int,
        sort: SortSpec | None,
        min_year: int | None,
    ) -> None:
        collection = new_collection(storage, namespace, new_id("col")[4:], (EMB_COSINE,), ())
        writes = [  # few distinct years (ties), some documents without one (sorts among the nulls)
            make_write(collection, f"d{(i * 37) % 101:03d}", vectors={}) for i in range(size)
        ]
        for i, w in enumerate(writes):
            if i % 5 != 4:
                w.payload["year"] = i % 4
        storage.put_documents(collection, writes, replace=False)
        node = None if min_year is None else flt({"field": "year", "operator": "gte", "value": min_year})
        expected = {
            w.document_id for w in writes if min_year is None or w.payload.get("year", -1) >= min_year
        }
        pages = self._walk(storage, collection, node, sort, limit)
        seen = ids(itertools.chain.from_iterable(pages))
        assert len(seen) == len(set(seen)), "a document was returned twice"
        assert set(seen) == expected
        if sort is not None and sort.field == "document_id":
            assert seen == sorted(seen, reverse=sort.direction == "desc")

    @staticmethod
    def _walk(
        storage: Storage, collection: Collection, node: Node | None, sort: SortSpec | None, limit: int
    ) -> list[list[Document]]:
        pages: list[list[Document]] = []
        cursor: str | None = None
        while True:
            page = storage.list_documents(collection, filter=node, sort=sort, limit=limit, cursor=cursor)
            pages.append(page.documents)
            assert len(pages) < 200, "pagination does not end"
            if page.next_cursor is None:
                return pages
            assert page.documents, "an empty page must not carry a next_cursor"
            cursor = page.next_cursor

    def test_list_documents_with_vectors_returns_them(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        page = storage.list_documents(collection, limit=3, with_vectors=True)
        for doc, write in zip(page.documents, corpus[:3], strict=True):
            assert doc.vectors is not None
            np.testing.assert_allclose(doc.vectors["emb"], write.vectors["emb"], rtol=1e-6)
            np.testing.assert_allclose(doc.vectors["dot"], write.vectors["dot"], rtol=1e-6)
            assert len(doc.vectors[TEXT_DENSE.name]) == 384

    def test_an_invalid_cursor_is_a_client_error(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        with pytest.raises(SiftlineError) as caught:
            storage.list_documents(collection, cursor="!!not-a-cursor!!")
        assert caught.value.status < 500

    def test_count_documents_with_and_without_filter(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        assert storage.count_documents(collection) == 30
        assert storage.count_documents(collection, flt({"category": "paper"})) == 10
        assert storage.count_documents(
            collection, flt({"field": "year", "operator": "lt", "value": 2003})
        ) == sum(1 for w in corpus if w.payload["year"] < 2003)
        assert storage.count_documents(collection, flt({"category": "nothing"})) == 0

    def test_figures_count_collections_and_documents_of_every_namespace_after_each_write(
        self, open_storage: OpenStorage, storage: Storage, namespace: Namespace
    ) -> None:
        def counted(instance: Storage) -> tuple[int, int]:
            figures = instance.figures()
            return figures.collections, figures.documents

        assert counted(storage) == (0, 0)
        a = new_collection(storage, namespace, "a", features=SMALL_DENSE)
        b = new_collection(storage, new_namespace(storage, "other"), "b", features=SMALL_DENSE)
        storage.put_documents(a, [make_write(a, f"a{i}") for i in range(5)], replace=False)
        assert counted(storage) == (2, 5)
        storage.put_documents(fresh(storage, b), [make_write(b, f"b{i}") for i in range(3)], replace=False)
        figures = storage.figures()
        assert (figures.collections, figures.documents) == (2, 8)
        assert figures.vectors_pending == 0 and figures.index_builds == 0  # below the HNSW threshold
        storage.delete_documents(fresh(storage, a), ["a0", "a1", "missing"])
        storage.put_documents(fresh(storage, b), [make_write(b, "b0"), make_write(b, "b9")], replace=True)
        assert counted(storage) == (2, 7)
        other = open_storage()  # another process's write is counted too
        other.put_documents(fresh(other, a), [make_write(a, "a9")], replace=False)
        assert counted(storage) == (2, 8)
        assert storage.delete_collection(fresh(storage, b)) is True
        assert counted(storage) == (1, 4)

    # -- vector_search ------------------------------------------------------------------------------

    @pytest.mark.parametrize(
        "feature", [EMB_COSINE, EMB_DOT, EMB_EUCLIDEAN, TEXT_DENSE], ids=lambda f: f.name
    )
    def test_vector_search_matches_brute_force(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite], feature: Feature
    ) -> None:
        rng = np.random.default_rng(7)
        current = fresh(storage, collection)
        for _ in range(3):
            query = rng.standard_normal(feature.dimension or 0).astype(np.float32) * 3
            expected = brute_force(vectors_of(corpus, feature), query, feature.metric or "cosine", 10)
            assert_same_ranking(storage.vector_search(current, feature, query, 10), expected)

    def test_vector_search_scores_have_the_documented_meaning(
        self, storage: Storage, collection: Collection
    ) -> None:
        unit = np.eye(8, dtype=np.float32)
        vectors = {"emb": 2 * unit[0], "cos": 5 * unit[0], "dot": 2 * unit[0]}
        storage.put_documents(collection, [make_write(collection, "x", vectors=vectors)], replace=False)
        current = fresh(storage, collection)
        query = 3 * unit[0] + 4 * unit[1]
        assert storage.vector_search(current, EMB_COSINE, query, 1)[0][1] == pytest.approx(0.6, abs=1e-5)
        assert storage.vector_search(current, EMB_DOT, query, 1)[0][1] == pytest.approx(6.0, abs=1e-5)
        assert storage.vector_search(current, EMB_EUCLIDEAN, query, 1)[0][1] == pytest.approx(
            -np.sqrt(17), abs=1e-5
        )

    def test_vector_search_with_top_k_above_the_collection_size_returns_all(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        query = corpus[0].vectors["emb"]
        hits = storage.vector_search(fresh(storage, collection), EMB_EUCLIDEAN, query, 1000)
        assert_same_ranking(hits, brute_force(vectors_of(corpus, EMB_EUCLIDEAN), query, "euclidean", 1000))
        assert len(hits) == len(corpus) and hits[0] == ("doc-00", pytest.approx(0.0, abs=1e-5))

    def test_vector_search_on_an_empty_collection_returns_nothing(
        self, storage: Storage, collection: Collection
    ) -> None:
        assert storage.vector_search(fresh(storage, collection), EMB_COSINE, np.ones(8, np.float32), 5) == []

    @pytest.mark.parametrize("feature", [EMB_COSINE, EMB_EUCLIDEAN], ids=lambda f: f.name)
    def test_filter_restricts_vector_candidates(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite], feature: Feature
    ) -> None:
        node = flt({"category": "paper", "NOT": [{"year": 2004}]})
        matching = [w for w in corpus if w.payload["category"] == "paper" and w.payload["year"] != 2004]
        query = corpus[0].vectors[feature.name]  # doc-00 is a news item: it must not come back
        hits = storage.vector_search(fresh(storage, collection), feature, query, 5, filter=node)
        expected = brute_force(vectors_of(matching, feature), query, feature.metric or "cosine", 5)
        assert_same_ranking(hits, expected)

    def test_filter_matching_nothing_returns_no_vector_hits(
        self, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        query = corpus[0].vectors["cos"]
        assert (
            storage.vector_search(fresh(storage, collection), EMB_COSINE, query, 5, flt({"category": "x"}))
            == []
        )

    @pytest.mark.parametrize(("feature", "dimension"), [(EMB_COSINE, 7), (EMB_EUCLIDEAN, 9), (TEXT_DENSE, 8)])
    def test_wrong_query_dimension_is_a_client_error(
        self,
        storage: Storage,
        collection: Collection,
        corpus: list[DocumentWrite],
        feature: Feature,
        dimension: int,
    ) -> None:
        with pytest.raises(SiftlineError) as caught:
            storage.vector_search(fresh(storage, collection), feature, np.ones(dimension, np.float32), 5)
        assert caught.value.status < 500

    # -- text_search ----------------------------------------------------------------------------------

    @pytest.fixture
    def texts(self, storage: Storage, collection: Collection) -> list[DocumentWrite]:
        writes = [
            make_write(collection, "both", text="apple cherry crumble", category="dessert"),
            make_write(collection, "apple", text="apple orchard in autumn", category="farm"),
            make_write(collection, "cherry", text="cherry blossom season", category="farm"),
            make_write(collection, "neither", text="grape juice and bread", category="dessert"),
            make_write(collection, "silent", category="dessert"),  # no text at all
        ]
        storage.put_documents(collection, writes, replace=False)
        return writes

    def test_documents_with_the_query_words_rank_above_those_without(
        self, storage: Storage, collection: Collection, texts: list[DocumentWrite]
    ) -> None:
        hits = storage.text_search(collection, TEXT_BM25, "apple", 10)
        assert set(ids(hits)) == {"both", "apple"}
        assert all(score > 0 for _, score in hits)
        hits = storage.text_search(collection, TEXT_BM25, "apple cherry", 10)
        assert ids(hits)[0] == "both"
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)

    def test_text_search_ors_the_query_words(
        self, storage: Storage, collection: Collection, texts: list[DocumentWrite]
    ) -> None:
        hits = storage.text_search(collection, TEXT_BM25, "orchard blossom", 10)
        assert set(ids(hits)) == {"apple", "cherry"}
        assert set(ids(storage.text_search(collection, TEXT_BM25, "blossom unknownword", 10))) == {"cherry"}

    def test_text_search_is_case_insensitive(
        self, storage: Storage, collection: Collection, texts: list[DocumentWrite]
    ) -> None:
        assert set(ids(storage.text_search(collection, TEXT_BM25, "APPLE Orchard", 10))) == {"both", "apple"}

    def test_text_search_respects_top_k(
        self, storage: Storage, collection: Collection, texts: list[DocumentWrite]
    ) -> None:
        assert len(storage.text_search(collection, TEXT_BM25, "apple cherry", 2)) == 2

    @pytest.mark.parametrize("query", AWKWARD_QUERIES)
    def test_punctuation_and_quotes_in_a_text_query_never_raise(
        self, storage: Storage, collection: Collection, texts: list[DocumentWrite], query: str
    ) -> None:
        hits = storage.text_search(collection, TEXT_BM25, query, 10)
        assert all(isinstance(doc_id, str) and isinstance(score, float) for doc_id, score in hits)
        if "apple" in query:
            assert {"both", "apple"} <= set(ids(hits))

    @pytest.mark.parametrize("query", ["", "   ", "!?.,", '""'])
    def test_an_empty_text_query_returns_nothing(
        self, storage: Storage, collection: Collection, texts: list[DocumentWrite], query: str
    ) -> None:
        assert storage.text_search(collection, TEXT_BM25, query, 10) == []

    def test_filter_restricts_text_search(
        self, storage: Storage, collection: Collection, texts: list[DocumentWrite]
    ) -> None:
        hits = storage.text_search(
            collection, TEXT_BM25, "apple cherry", 10, filter=flt({"category": "farm"})
        )
        assert set(ids(hits)) == {"apple", "cherry"}
        assert storage.text_search(collection, TEXT_BM25, "apple", 10, filter=flt({"category": "none"})) == []

    def test_text_search_forgets_deleted_and_replaced_text(
        self, storage: Storage, collection: Collection, texts: list[DocumentWrite]
    ) -> None:
        storage.delete_documents(collection, ["apple"])
        replacement = make_write(collection, "cherry", text="plum pudding", category="farm")
        storage.put_documents(fresh(storage, collection), [replacement], replace=True)
        current = fresh(storage, collection)
        assert ids(storage.text_search(current, TEXT_BM25, "apple", 10)) == ["both"]
        assert ids(storage.text_search(current, TEXT_BM25, "blossom", 10)) == []
        assert ids(storage.text_search(current, TEXT_BM25, "plum", 10)) == ["cherry"]

    def test_replace_without_text_removes_the_document_from_text_search(
        self, storage: Storage, collection: Collection, texts: list[DocumentWrite]
    ) -> None:
        storage.put_documents(collection, [make_write(collection, "apple", category="farm")], replace=True)
        assert ids(storage.text_search(fresh(storage, collection), TEXT_BM25, "orchard apple", 10)) == [
            "both"
        ]

    # -- persistence and other instances -------------------------------------------------------------

    @pytest.mark.parametrize("searched_before_close", [False, True])
    def test_reopening_gives_the_same_documents_and_search_results(
        self,
        open_storage: OpenStorage,
        storage: Storage,
        collection: Collection,
        corpus: list[DocumentWrite],
        searched_before_close: bool,
    ) -> None:
        storage.delete_documents(collection, ["doc-10"])
        storage.put_documents(
            fresh(storage, collection), [make_write(collection, "doc-11", x=1)], replace=True
        )
        queries = {f: corpus[1].vectors[f.name] for f in collection.dense_features}
        observer = storage if searched_before_close else open_storage()  # searching may leave state behind
        before = self._snapshot_of(observer, fresh(observer, collection), queries)
        storage.close()
        reopened = open_storage()
        after = self._snapshot_of(reopened, fresh(reopened, collection), queries)
        assert after == before

    def test_writes_after_a_restart_keep_vector_search_exact(
        self, open_storage: OpenStorage, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        for feature in collection.dense_features:  # leave whatever a searched-then-closed backend leaves
            storage.vector_search(fresh(storage, collection), feature, corpus[0].vectors[feature.name], 1)
        storage.close()
        reopened = open_storage()
        for feature in collection.dense_features:
            reopened.vector_search(fresh(reopened, collection), feature, corpus[0].vectors[feature.name], 1)
        reopened.delete_documents(fresh(reopened, collection), ["doc-00", "doc-13"])
        changed = [make_write(collection, "doc-05", seed=5005), make_write(collection, "late", seed=77)]
        reopened.put_documents(fresh(reopened, collection), changed, replace=True)
        writes = [w for w in corpus if w.document_id not in ("doc-00", "doc-13", "doc-05")] + changed
        current = fresh(reopened, collection)
        for feature in collection.dense_features:
            query = changed[0].vectors[feature.name]
            assert_same_ranking(
                reopened.vector_search(current, feature, query, 50),
                brute_force(vectors_of(writes, feature), query, feature.metric or "cosine", 50),
            )

    @staticmethod
    def _snapshot_of(
        storage: Storage, collection: Collection, queries: Mapping[Feature, np.ndarray]
    ) -> dict[str, Any]:
        docs = storage.list_documents(collection, limit=100, with_vectors=True).documents
        return {
            "documents": [d.as_dict() for d in docs],
            "vectors": {
                feature.name: [(i, round(s, 4)) for i, s in storage.vector_search(collection, feature, q, 50)]
                for feature, q in queries.items()
            },
            "text": [
                (i, round(s, 4)) for i, s in storage.text_search(collection, TEXT_BM25, "apple fig story", 50)
            ],
        }

    def test_a_write_by_another_instance_is_seen_by_vector_search(
        self, open_storage: OpenStorage, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        query = np.random.default_rng(3).standard_normal(8).astype(np.float32)
        storage.vector_search(fresh(storage, collection), EMB_COSINE, query, 5)  # load the index here
        other = open_storage()
        newcomer = make_write(
            collection, "newcomer", text="visitor", vectors={"cos": query * 2, "emb": query}
        )
        other.put_documents(fresh(other, collection), [newcomer], replace=False)
        current = fresh(storage, collection)
        hits = storage.vector_search(current, EMB_COSINE, query, 5)
        assert_same_ranking(
            hits, brute_force(vectors_of([*corpus, newcomer], EMB_COSINE), query, "cosine", 5)
        )
        assert ids(hits)[0] == "newcomer"
        assert ids(storage.text_search(current, TEXT_BM25, "visitor", 5)) == ["newcomer"]
        assert storage.count_documents(current) == len(corpus) + 1

    def test_a_delete_and_replace_by_another_instance_are_seen_by_vector_search(
        self, open_storage: OpenStorage, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        query = corpus[0].vectors["emb"]
        storage.vector_search(fresh(storage, collection), EMB_EUCLIDEAN, query, 5)  # load the index here
        other = open_storage()
        other.delete_documents(fresh(other, collection), ["doc-00"])
        moved = make_write(collection, "doc-01", vectors={"emb": query + 0.01})
        other.put_documents(fresh(other, collection), [moved], replace=True)
        writes = [moved if w.document_id == "doc-01" else w for w in corpus if w.document_id != "doc-00"]
        hits = storage.vector_search(fresh(storage, collection), EMB_EUCLIDEAN, query, 5)
        assert_same_ranking(hits, brute_force(vectors_of(writes, EMB_EUCLIDEAN), query, "euclidean", 5))
        assert ids(hits)[0] == "doc-01"

    def test_this_instance_keeps_writing_correctly_after_another_instance_wrote(
        self, open_storage: OpenStorage, storage: Storage, collection: Collection, corpus: list[DocumentWrite]
    ) -> None:
        query = corpus[0].vectors["dot"]
        storage.vector_search(fresh(storage, collection), EMB_DOT, query, 5)  # load the index here
        other = open_storage()
        theirs = make_write(collection, "theirs")
        other.put_documents(fresh(other, collection), [theirs], replace=False)
        mine = make_write(collection, "mine")
        storage.put_documents(fresh(storage, collection), [mine], replace=False)
        writes = [*corpus, theirs, mine]
        for instance in (storage, other):
            hits = instance.vector_search(fresh(instance, collection), EMB_DOT, query, 40)
            assert_same_ranking(hits, brute_force(vectors_of(writes, EMB_DOT), query, "dot_product", 40))

    def test_a_collection_recreated_by_another_instance_never_shows_old_documents(
        self, open_storage: OpenStorage, storage: Storage, namespace: Namespace
    ) -> None:
        other = open_storage()
        old = new_collection(storage, namespace, "recycled", SMALL_DENSE)
        storage.put_documents(old, [make_write(old, "old-doc")], replace=False)
        query = np.ones(8, dtype=np.float32)
        assert ids(other.vector_search(fresh(other, old), EMB_EUCLIDEAN, query, 5)) == ["old-doc"]
        storage.delete_collection(old)
        new = new_collection(storage, namespace, "recycled", SMALL_DENSE)
        storage.put_documents(new, [make_write(new, "new-doc")], replace=False)
        assert ids(other.vector_search(fresh(other, new), EMB_EUCLIDEAN, query, 5)) == ["new-doc"]

    def test_a_collection_recreated_while_another_instance_ran_is_clean_after_restart(
        self, open_storage: OpenStorage, storage: Storage, namespace: Namespace
    ) -> None:
        other = open_storage()
        old = new_collection(storage, namespace, "recycled", SMALL_DENSE)
        storage.put_documents(old, [make_write(old, "old-doc")], replace=False)
        query = np.ones(8, dtype=np.float32)
        assert ids(other.vector_search(fresh(other, old), EMB_EUCLIDEAN, query, 5)) == ["old-doc"]
        storage.delete_collection(old)
        new = new_collection(storage, namespace, "recycled", SMALL_DENSE)
        storage.put_documents(new, [make_write(new, "new-doc")], replace=False)
        other.close()
        storage.close()
        restarted = open_storage()
        assert ids(restarted.vector_search(fresh(restarted, new), EMB_EUCLIDEAN, query, 5)) == ["new-doc"]

    # -- isolation ------------------------------------------------------------------------------------

    def test_collections_with_identical_document_ids_stay_separate(
        self, storage: Storage, namespace: Namespace
    ) -> None:
        col_a, col_b = new_collection(storage, namespace, "a"), new_collection(storage, namespace, "b")
        a = [make_write(col_a, f"d{i}", seed=i, text=f"alpha words {i}", side="a") for i in range(6)]
        b = [make_write(col_b, f"d{i}", seed=100 + i, text=f"beta words {i}", side="b") for i in range(4)]
        storage.put_documents(col_a, a, replace=False)
        storage.put_documents(col_b, b, replace=False)
        cur_a, cur_b = fresh(storage, col_a), fresh(storage, col_b)
        for feature in cur_b.dense_features:
            query = a[0].vectors[feature.name]  # an exact hit in A
            expected = brute_force(vectors_of(b, feature), query, feature.metric or "cosine", 10)
            assert_same_ranking(storage.vector_search(cur_b, feature, query, 10), expected)
        assert storage.text_search(cur_b, TEXT_BM25, "alpha", 10) == []
        assert len(storage.text_search(cur_a, TEXT_BM25, "words", 10)) == 6
        assert {d.payload["side"] for d in storage.list_documents(cur_b, limit=100).documents} == {"b"}
        assert [d.payload["side"] for d in storage.get_documents(cur_b, ["d0", "d5"])] == ["b"]
        assert storage.count_documents(cur_b) == 4
        assert storage.count_documents(cur_b, flt({"side": "a"})) == 0

    def test_writes_to_one_collection_leave_same_ids_in_another_alone(
        self, storage: Storage, namespace: Namespace
    ) -> None:
        col_a, col_b = new_collection(storage, namespace, "a"), new_collection(storage, namespace, "b")
        a = [make_write(col_a, f"d{i}", seed=i, text="shared") for i in range(3)]
        b = [make_write(col_b, f"d{i}", seed=50 + i, text="shared") for i in range(3)]
        storage.put_documents(col_a, a, replace=False)
        storage.put_documents(col_b, b, replace=False)  # same ids, other collection: not a conflict
        storage.vector_search(fresh(storage, col_b), EMB_COSINE, b[0].vectors["cos"], 3)  # warm any index
        assert storage.delete_documents(fresh(storage, col_a), ["d0", "d1"]) == 2
        storage.put_documents(
            fresh(storage, col_a), [make_write(col_a, "d2", seed=7, text="other")], replace=True
        )
        cur_b = fresh(storage, col_b)
        assert ids(storage.get_documents(cur_b, ["d0", "d1", "d2"])) == ["d0", "d1", "d2"]
        assert len(storage.text_search(cur_b, TEXT_BM25, "shared", 10)) == 3
        query = b[2].vectors["cos"]
        assert_same_ranking(
            storage.vector_search(cur_b, EMB_COSINE, query, 10),
            brute_force(vectors_of(b, EMB_COSINE), query, "cosine", 10),
        )
