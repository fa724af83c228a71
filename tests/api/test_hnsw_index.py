"""The HNSW vector index stays correct under insert / update / delete / build.

Contract under test: a dense feature with at least ``hnsw_threshold`` live vectors is searched through
an HNSW graph plus an exactly-scanned "pending" tail of vectors not yet in the graph, tombstones
excluded; below the threshold, and for a filter passing at most max(2000, ``exact_filter_max`` * vectors)
documents, the search is exact. ``GET …/vector-index`` reports each dense feature's state and
``POST …/vector-index/build {"wait": true}`` indexes every pending vector and compacts tombstones.

Every test keeps a reference model of the live vectors (``Vecs.live``) and checks each result against
it: returned ids are live, scores are the cosine to the document's *current* vector (no stale hit from
an old vector), and the top-10 agrees with exact numpy top-10 (recall@10).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import served, settings_for
from siftline.config import Settings
from siftline.features.embedder import TextEmbedder

COL = "/v1/collections"
DIM = 16
THRESHOLD = 100
GROUPS = 100  # document i is in group i % 100: one group is 1% of the documents
TOP_K = 10
SCORE_TOL = 1e-4


def hnsw_settings(data_dir: Path, **overrides: Any) -> Settings:
    return settings_for(data_dir, hnsw_threshold=THRESHOLD, max_batch_documents=5000, **overrides)


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(unit(a) @ unit(b))


def group_filter(groups: Iterable[int]) -> dict[str, Any]:
    return {"AND": [{"field": "group", "operator": "in", "value": sorted(groups)}]}


@dataclass
class Result:
    hits: list[tuple[str, float]]
    info: dict[str, Any]  # stage_statistics.stages.search.metadata.searches[0]

    @property
    def ids(self) -> list[str]:
        return [d for d, _ in self.hits]


class Vecs:
    """A vectors-only collection driven through the API, with a reference copy of its live vectors."""

    def __init__(self, client: TestClient, name: str = "vecs") -> None:
        self.client = client
        self.name = name
        created = client.post(
            COL,
            json={
                "collection_name": name,
                "vector_configs": [{"name": "emb", "dimension": DIM, "metric": "cosine"}],
                "payload_indexes": [{"field_name": "group", "type": "integer"}],
            },
        )
        assert created.status_code == 200, created.text
        self.collection_id = created.json()["collection_id"]
        features = client.get(f"{COL}/{name}/features").json()["features"]
        self.uri = next(f["feature_uri"] for f in features if f["name"] == "emb")
        self.live: dict[str, np.ndarray] = {}
        self.group: dict[str, int] = {}
        self.gone: set[str] = set()  # deleted (or vector removed) and not live again

    # -- writes -------------------------------------------------------------------------------

    def insert(
        self, vectors: np.ndarray, ids: list[str] | None = None, groups: list[int] | None = None
    ) -> None:
        start = len(self.live) + len(self.gone)
        ids = ids or [f"d{start + i}" for i in range(len(vectors))]
        groups = groups or [(start + i) % GROUPS for i in range(len(vectors))]
        docs = [
            {"document_id": d, "group": g, "vectors": {"emb": [float(x) for x in v]}}
            for d, g, v in zip(ids, groups, vectors, strict=True)
        ]
        for i in range(0, len(docs), 500):
            done = self.client.post(
                f"{COL}/{self.name}/documents/batch", json={"documents": docs[i : i + 500]}
            )
            assert done.status_code == 200, done.text
        for d, g, v in zip(ids, groups, vectors, strict=True):
            self.live[d] = np.asarray(v, dtype=np.float64)
            self.group[d] = g
            self.gone.discard(d)

    def put(self, doc_id: str, vector: np.ndarray | None) -> None:
        """Full replace; ``None`` replaces the document by one without a vector."""
        body: dict[str, Any] = {"group": self.group[doc_id]}
        if vector is not None:
            body["vectors"] = {"emb": [float(x) for x in vector]}
        done = self.client.put(f"{COL}/{self.name}/documents/{doc_id}", json=body)
        assert done.status_code == 200, done.text
        if vector is None:
            del self.live[doc_id]
            self.gone.add(doc_id)
        else:
            self.live[doc_id] = np.asarray(vector, dtype=np.float64)

    def patch(self, doc_id: str, vector: np.ndarray) -> None:
        body = {"vectors": {"emb": [float(x) for x in vector]}}
        done = self.client.patch(f"{COL}/{self.name}/documents/{doc_id}", json=body)
        assert done.status_code == 200, done.text
        self.live[doc_id] = np.asarray(vector, dtype=np.float64)

    def delete(self, doc_id: str) -> None:
        done = self.client.delete(f"{COL}/{self.name}/documents/{doc_id}")
        assert done.status_code == 200, done.text
        del self.live[doc_id]
        self.gone.add(doc_id)

    # -- the index ----------------------------------------------------------------------------

    def _feature(self, body: dict[str, Any]) -> dict[str, Any]:
        assert body["collection_id"] == self.collection_id
        feature = next(f for f in body["features"] if f["name"] == "emb")
        assert feature["feature_uri"] == self.uri
        return feature

    def status(self) -> dict[str, Any]:
        got = self.client.get(f"{COL}/{self.name}/vector-index")
        assert got.status_code == 200, got.text
        return self._feature(got.json())

    def build(self) -> dict[str, Any]:
        done = self.client.post(f"{COL}/{self.name}/vector-index/build", json={"wait": True})
        assert done.status_code == 200, done.text
        feature = self._feature(done.json())
        assert feature["pending"] == 0 and feature["tombstones"] == 0, feature
        assert feature["vectors"] == len(self.live), feature
        assert feature["path"] == ("hnsw" if len(self.live) >= feature["threshold"] else "exact"), feature
        return feature

    # -- searching ----------------------------------------------------------------------------

    def search(self, query: np.ndarray, top_k: int = TOP_K, groups: Iterable[int] | None = None) -> Result:
        body: dict[str, Any] = {
            "collection_identifiers": [self.name],
            "limit": top_k,  # the response's page; the default page is smaller than some top_k here
            "stages": [
                {
                    "stage_name": "search",
                    "stage_type": "filter",
                    "config": {
                        "stage_id": "feature_search",
                        "parameters": {
                            "searches": [
                                {
                                    "feature_uri": self.uri,
                                    "query": {"input_mode": "vector", "value": [float(x) for x in query]},
                                    "top_k": top_k,
                                }
                            ],
                            "final_top_k": top_k,
                        },
                    },
                }
            ],
        }
        if groups is not None:
            body["filters"] = group_filter(groups)
        done = self.client.post("/v1/retrievers/execute", json=body)
        assert done.status_code == 200, done.text
        out = done.json()
        assert out["status"] == "completed", out
        info = out["stage_statistics"]["stages"]["search"]["metadata"]["searches"][0]
        hits = [(d["document_id"], float(d["score"])) for d in out["documents"]]
        self.assert_consistent(query, hits, top_k, groups)
        return Result(hits, info)

    def truth(self, query: np.ndarray, top_k: int = TOP_K, groups: Iterable[int] | None = None) -> list[str]:
        """Exact top-k over the live vectors (passing the group filter)."""
        allowed = None if groups is None else set(groups)
        ids = [d for d in self.live if allowed is None or self.group[d] in allowed]
        if not ids:
            return []
        scores = unit(np.stack([self.live[d] for d in ids])) @ unit(query)
        return [ids[i] for i in np.argsort(-scores, kind="stable")[:top_k]]

    def assert_consistent(
        self, query: np.ndarray, hits: list[tuple[str, float]], top_k: int, groups: Iterable[int] | None
    ) -> None:
        """What holds for every search, whatever the path: only live (passing) documents, each scored by
        its current vector, best first, and as many as exist up to top_k."""
        ids = [d for d, _ in hits]
        assert len(set(ids)) == len(ids), f"duplicate hits: {ids}"
        assert not set(ids) & self.gone, f"deleted documents returned: {sorted(set(ids) & self.gone)}"
        assert set(ids) <= self.live.keys(), (
            f"unknown documents returned: {sorted(set(ids) - self.live.keys())}"
        )
        allowed = None if groups is None else set(groups)
        if allowed is not None:
            assert all(self.group[d] in allowed for d in ids), f"documents outside the filter: {ids}"
        for doc_id, score in hits:
            expected = cosine(query, self.live[doc_id])
            assert score == pytest.approx(expected, abs=SCORE_TOL), (
                f"{doc_id} scored {score} but its current vector scores {expected} (a stale vector?)"
            )
        scores = [s for _, s in hits]
        assert scores == sorted(scores, reverse=True), f"not best first: {scores}"
        passing = sum(1 for d in self.live if allowed is None or self.group[d] in allowed)
        assert len(hits) == min(top_k, passing), f"{len(hits)} hits; {passing} documents pass"

    def recall(
        self, queries: np.ndarray, groups_of: Callable[[int], Iterable[int] | None] = lambda i: None
    ) -> float:
        found = 0.0
        for i, q in enumerate(queries):
            groups = groups_of(i)
            truth = self.truth(q, TOP_K, groups)
            got = self.search(q, TOP_K, groups).ids
            found += len(set(got) & set(truth)) / max(len(truth), 1)
        return found / len(queries)


def gaussian(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM))


def loaded(client: TestClient, n: int, seed: int = 0, build: bool = True) -> Vecs:
    vecs = Vecs(client)
    vecs.insert(gaussian(seed, n))
    if build:
        vecs.build()
    return vecs


# -- 1. HNSW above the threshold, exact below -------------------------------------------------------


@pytest.mark.sqlite_only  # the embedded index's own segments, pending tail and tombstones
def test_above_the_threshold_search_goes_through_hnsw_and_agrees_with_exact(
    tmp_path: Path, embedder: TextEmbedder
) -> None:
    with served(hnsw_settings(tmp_path / "data"), embedder) as (client, _):
        vecs = loaded(client, 2000)
        status = vecs.status()
        assert (status["path"], status["vectors"], status["indexed"]) == ("hnsw", 2000, 2000)
        assert (status["pending"], status["tombstones"], status["building"]) == (0, 0, False)

        queries = gaussian(99, 20)
        for q in queries[:3]:
            info = vecs.search(q).info
            assert info["path"] == "hnsw", info
            assert isinstance(info["ef_search"], int) and info["ef_search"] >= TOP_K, info
            assert isinstance(info["candidates_examined"], int) and info["candidates_examined"] >= TOP_K, info
        assert vecs.recall(queries) >= 0.9


def test_below_the_threshold_search_is_exact_and_crossing_it_switches_to_hnsw(
    tmp_path: Path, embedder: TextEmbedder
) -> None:
    with served(hnsw_settings(tmp_path / "data"), embedder) as (client, _):
        vecs = loaded(client, THRESHOLD // 2)
        status = vecs.status()
        assert (status["path"], status["vectors"], status["threshold"]) == (
            "exact",
            THRESHOLD // 2,
            THRESHOLD,
        )
        for q in gaussian(7, 5):
            result = vecs.search(q)
            assert result.info["path"] == "exact" and result.info["ef_search"] is None, result.info
            assert isinstance(result.info["candidates_examined"], int)
            assert result.ids == vecs.truth(q)

        vecs.insert(gaussian(1, THRESHOLD))  # now 150 ≥ 100
        assert vecs.status()["vectors"] == THRESHOLD // 2 + THRESHOLD
        assert vecs.build()["path"] == "hnsw"
        queries = gaussian(8, 10)
        assert all(vecs.search(q).info["path"] == "hnsw" for q in queries[:2])
        assert vecs.recall(queries) >= 0.9


# -- 2. deletes -------------------------------------------------------------------------------------


def test_a_deleted_document_is_never_returned_by_any_path(tmp_path: Path, embedder: TextEmbedder) -> None:
    with served(hnsw_settings(tmp_path / "data"), embedder) as (client, _):
        vecs = loaded(client, 1500)
        victims = [f"d{i}" for i in range(3, 1500, 150)]  # 10 indexed documents
        for d in victims:
            assert vecs.search(vecs.live[d]).ids[0] == d  # the top hit of its own vector
        old = {d: vecs.live[d] for d in victims}

        def never_returned(doc_ids: list[str]) -> None:
            for d in doc_ids:
                unfiltered = vecs.search(old[d])  # HNSW segment (+ pending tail)
                assert d not in unfiltered.ids
                filtered = vecs.search(old[d], groups=[vecs.group[d]])  # 1%: exact over the passing ones
                assert filtered.info["path"] == "exact", filtered.info
                assert d not in filtered.ids

        vecs.delete(victims[0])
        vecs.put(victims[1], None)  # replaced by a document without a vector: gone from the index
        for d in victims[2:]:
            vecs.delete(d)
        never_returned(victims)  # tombstoned in the graph

        # documents in the pending tail, deleted before they ever reach the graph
        vecs.insert(gaussian(5, 50), ids=[f"n{i}" for i in range(50)])
        fresh = [f"n{i}" for i in range(0, 50, 10)]
        old.update({d: vecs.live[d] for d in fresh})
        for d in fresh:
            assert vecs.search(old[d]).ids[0] == d
            vecs.delete(d)
        never_returned(victims + fresh)

        status = vecs.build()
        assert status["vectors"] == 1500 + 50 - len(victims) - len(fresh)
        never_returned(victims + fresh)  # after compaction
        assert vecs.recall(gaussian(9, 10)) >= 0.9


# -- 3. updates -------------------------------------------------------------------------------------


def test_an_updated_vector_is_found_by_its_new_value_and_not_by_its_old_one(
    tmp_path: Path, embedder: TextEmbedder
) -> None:
    with served(hnsw_settings(tmp_path / "data"), embedder) as (client, _):
        vecs = loaded(client, 1500)
        targets = {"d10": vecs.put, "d20": vecs.patch, "d30": vecs.put, "d40": vecs.patch}
        old = {d: vecs.live[d].copy() for d in targets}
        for d, write in targets.items():
            write(d, -old[d])  # cosine -1 to the old value: as far away as it gets
        # updated twice before any build: neither the original nor the middle value may answer
        middle = gaussian(11, 1)[0]
        old["d50"] = vecs.live["d50"].copy()
        vecs.patch("d50", middle)
        vecs.put("d50", -middle)
        stale = {**old, "d50-middle": middle}

        def check() -> None:
            for d in [*targets, "d50"]:
                by_new = vecs.search(vecs.live[d])
                assert by_new.ids[0] == d and by_new.hits[0][1] == pytest.approx(1.0, abs=SCORE_TOL)
            for name, vector in stale.items():
                by_old = vecs.search(vector)  # scores checked against the current vectors
                assert name.split("-")[0] not in by_old.ids

        check()  # the new vectors wait in the pending tail, the old ones are tombstoned
        status = vecs.status()
        assert status["vectors"] == 1500
        vecs.build()
        check()
        assert vecs.recall(gaussian(12, 10)) >= 0.9


# -- 4. the pending tail ----------------------------------------------------------------------------


def test_vectors_written_after_a_build_are_found_at_once_from_the_pending_tail(
    tmp_path: Path, embedder: TextEmbedder
) -> None:
    with served(hnsw_settings(tmp_path / "data"), embedder) as (client, _):
        vecs = loaded(client, 1500)
        assert vecs.status()["indexed"] == 1500

        new_ids = [f"n{i}" for i in range(100)]
        vecs.insert(gaussian(3, 100), ids=new_ids)
        status = vecs.status()
        assert status["vectors"] == 1600 and status["tombstones"] == 0, status
        # No deletes, so every live vector is either in the graph or pending. A background builder may
        # already have taken some (or all) of the new ones: their exact count is a race, their sum is not.
        assert status["indexed"] + status["pending"] == 1600, status
        assert 0 <= status["pending"] <= 100, status
        for d in new_ids[::5]:
            assert vecs.search(vecs.live[d]).ids[0] == d
        # merging the graph's hits with the tail's: random queries still agree with exact top-10
        assert vecs.recall(gaussian(4, 15)) >= 0.9

        status = vecs.build()
        assert (status["indexed"], status["pending"], status["path"]) == (1600, 0, "hnsw")
        for d in new_ids[::5]:
            assert vecs.search(vecs.live[d]).ids[0] == d


# -- 5. filtered search -----------------------------------------------------------------------------


def test_filtered_search_returns_only_passing_documents_with_high_recall(
    tmp_path: Path, embedder: TextEmbedder
) -> None:
    n = 8000  # 30% = 2400 documents > max(2000, 2% of 8000): that filter must go through the graph
    with served(hnsw_settings(tmp_path / "data"), embedder) as (client, _):
        vecs = loaded(client, n)
        queries = gaussian(21, 20)

        def one_percent(i: int) -> list[int]:
            return [i % GROUPS]

        def thirty_percent(i: int) -> range:
            return range(30)

        for i, q in enumerate(queries):
            result = vecs.search(q, groups=one_percent(i))
            assert result.info["path"] == "exact", result.info
            assert result.info["ef_search"] is None, result.info
            assert set(result.ids) == set(vecs.truth(q, groups=one_percent(i)))
        assert vecs.recall(queries, one_percent) >= 0.9

        assert vecs.search(queries[0], groups=range(30)).info["path"] == "hnsw"
        assert vecs.recall(queries, thirty_percent) >= 0.9

        # a filter nothing passes is an empty answer, not an error
        assert vecs.search(queries[0], groups=[GROUPS + 1]).hits == []

        # pending documents are filtered too
        vecs.insert(gaussian(22, 20), ids=[f"n{i}" for i in range(20)], groups=[7] * 20)
        for d in ["n0", "n9", "n19"]:
            assert vecs.search(vecs.live[d], groups=[7]).ids[0] == d
            assert vecs.search(vecs.live[d], groups=range(8)).ids[0] == d
            assert d not in vecs.search(vecs.live[d], groups=range(10, 40)).ids
        assert vecs.recall(queries[:10], thirty_percent) >= 0.9


# -- 6. the status endpoint -------------------------------------------------------------------------


@pytest.mark.sqlite_only  # the embedded index's own segments, pending tail and tombstones
def test_the_status_endpoint_counts_vectors_pending_and_tombstones(
    tmp_path: Path, embedder: TextEmbedder
) -> None:
    settings = hnsw_settings(tmp_path / "data", hnsw_m=16, hnsw_ef_construction=40, hnsw_ef_search=50)
    with served(settings, embedder) as (client, _):
        vecs = Vecs(client)
        empty = vecs.status()
        assert {k: empty[k] for k in ("vectors", "indexed", "pending", "tombstones", "path")} == {
            "vectors": 0, "indexed": 0, "pending": 0, "tombstones": 0, "path": "exact",
        }  # fmt: skip
        assert (empty["m"], empty["ef_construction"], empty["ef_search"], empty["threshold"]) == (
            16,
            40,
            50,
            100,
        )
        assert isinstance(empty["building"], bool)

        vecs.insert(gaussian(0, 300))
        no_vector = [{"document_id": f"plain{i}", "group": 1} for i in range(5)]
        assert client.post(f"{COL}/vecs/documents/batch", json={"documents": no_vector}).status_code == 200
        status = vecs.status()
        assert status["vectors"] == 300 and status["tombstones"] == 0, (
            status
        )  # documents without one don't count
        assert status["indexed"] + status["pending"] == 300, status

        built = vecs.build()
        assert (built["vectors"], built["indexed"], built["pending"], built["tombstones"]) == (300, 300, 0, 0)
        assert (built["path"], built["building"]) == ("hnsw", False)
        assert vecs.status() == built
        info = vecs.search(gaussian(1, 1)[0], top_k=80).info
        assert info["path"] == "hnsw" and info["ef_search"] >= 80, info

        for i in range(5):
            vecs.delete(f"d{i}")
        for i in range(5, 8):
            vecs.patch(f"d{i}", gaussian(100 + i, 1)[0])
        status = vecs.status()
        assert status["vectors"] == 295, status
        assert status["tombstones"] == 8, status  # 5 deleted + 3 replaced graph entries
        count = client.get(f"{COL}/vecs/documents/count").json()["count"]
        assert count == 295 + len(no_vector)

        built = vecs.build()
        assert (built["vectors"], built["indexed"], built["pending"], built["tombstones"]) == (295, 295, 0, 0)

        unknown = [
            client.get(f"{COL}/nope/vector-index"),
            client.post(f"{COL}/nope/vector-index/build", json={"wait": True}),
        ]
        for missing in unknown:
            assert missing.status_code == 404, missing.text
            body = missing.json()
            assert body["success"] is False and body["status"] == 404
            assert body["error"]["type"] == "NotFoundError"
            assert "nope" in body["error"]["message"] and "not found" in body["error"]["message"].lower()


# -- 8. property: any sequence of writes and builds keeps results right -------------------------------

OPS = st.lists(
    st.tuples(
        st.sampled_from(["insert", "update", "delete", "reinsert", "build"]),
        st.integers(0, 10**6),  # which document(s)
        st.integers(0, 2**31 - 1),  # vector seed / how many
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=OPS, start_built=st.booleans())
def test_any_sequence_of_writes_and_builds_agrees_with_a_reference_model(
    embedder: TextEmbedder, ops: list[tuple[str, int, int]], start_built: bool
) -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        served(hnsw_settings(Path(tmp) / "data"), embedder) as (client, _),
    ):
        vecs = loaded(client, 300, seed=0, build=start_built)
        counter = 0
        found = 0.0
        asked = 0
        last_removed: list[np.ndarray] = []
        for step, (kind, pick, seed) in enumerate(ops):
            live = sorted(vecs.live)
            fresh = np.random.default_rng(
                [1, seed, step]
            )  # no two writes share a vector (nor the load's, seed 0)

            def draw(n: int, fresh: np.random.Generator = fresh) -> np.ndarray:
                return fresh.standard_normal((n, DIM))

            if kind == "insert":
                n = 1 + seed % 40
                ids = [f"n{counter + i}" for i in range(n)]
                counter += n
                vecs.insert(draw(n), ids=ids, groups=[i % GROUPS for i in range(n)])
            elif kind == "update" and live:
                target = live[pick % len(live)]
                last_removed = [vecs.live[target].copy()]
                (vecs.put if seed % 2 else vecs.patch)(target, draw(1)[0])
            elif kind == "delete" and live:
                targets = {live[(pick + 7 * i) % len(live)] for i in range(1 + seed % 20)}
                last_removed = [vecs.live[t].copy() for t in targets]
                for t in targets:
                    vecs.delete(t)
            elif kind == "reinsert" and vecs.gone:
                gone = sorted(vecs.gone)
                target = gone[pick % len(gone)]
                vecs.insert(draw(1), ids=[target], groups=[vecs.group[target]])
            elif kind == "build":
                vecs.build()

            # after every step: a random query, a live document's own vector, and a just-removed vector
            queries = [np.random.default_rng([seed, step, 1]).standard_normal(DIM), *last_removed[:2]]
            if vecs.live:
                own = sorted(vecs.live)[pick % len(vecs.live)]
                assert vecs.search(vecs.live[own]).ids[0] == own
            for q in queries:
                got = vecs.search(q).ids  # membership, scores, no deleted id: checked inside
                truth = vecs.truth(q)
                found += len(set(got) & set(truth)) / max(len(truth), 1)
                asked += 1
            assert vecs.status()["vectors"] == len(vecs.live)
        assert found / asked >= 0.9
