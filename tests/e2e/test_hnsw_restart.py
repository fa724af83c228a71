"""The HNSW index of a real server across restarts: reused when current, rebuilt when missing, corrupt or
stale — and search stays correct every time.

The index lives beside the database in ``<data_dir>/vectors/``. Each test loads a few hundred 16-d
vectors above a small ``SIFTLINE_HNSW_THRESHOLD`` and checks every answer against a reference model of
the live vectors (ids live, scores equal to the cosine to the current vector, recall@10 vs exact).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from helpers import settings_for
from siftline.features.embedder import TextEmbedder
from siftline.service.container import Services
from siftline.testing.server import Server, siftline

pytestmark = pytest.mark.slow

DIM = 16
THRESHOLD = 100
N = 400
TOP_K = 10
ENV = {"SIFTLINE_HNSW_THRESHOLD": str(THRESHOLD)}
COL = "/v1/collections"


def gaussian(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def doc(doc_id: str, vector: np.ndarray) -> dict[str, Any]:
    return {
        "document_id": doc_id,
        "group": int(doc_id[1:]) % 100,
        "vectors": {"emb": [float(x) for x in vector]},
    }


class Live:
    """Talks to a server's ``vecs`` collection and keeps a reference copy of its live vectors."""

    def __init__(self) -> None:
        self.http: httpx.Client | None = None
        self.vectors: dict[str, np.ndarray] = {}
        self.gone: set[str] = set()
        self.uri = "mixpeek://vectors@v1/emb"

    def connect(self, url: str, key: str) -> None:
        if self.http is not None:
            self.http.close()
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    @property
    def client(self) -> httpx.Client:
        assert self.http is not None
        return self.http

    def create(self) -> None:
        created = self.client.post(
            COL,
            json={
                "collection_name": "vecs",
                "vector_configs": [{"name": "emb", "dimension": DIM, "metric": "cosine"}],
                "payload_indexes": [{"field_name": "group", "type": "integer"}],
            },
        )
        assert created.status_code == 200, created.text
        features = self.client.get(f"{COL}/vecs/features").json()["features"]
        self.uri = next(f["feature_uri"] for f in features if f["name"] == "emb")

    def insert(self, ids: list[str], vectors: np.ndarray) -> None:
        docs = [doc(d, v) for d, v in zip(ids, vectors, strict=True)]
        for i in range(0, len(docs), 500):
            done = self.client.post(f"{COL}/vecs/documents/batch", json={"documents": docs[i : i + 500]})
            assert done.status_code == 200, done.text
        self.record(ids, vectors)

    def record(self, ids: list[str], vectors: np.ndarray) -> None:
        for d, v in zip(ids, vectors, strict=True):
            self.vectors[d] = np.asarray(v, dtype=np.float64)
            self.gone.discard(d)

    def forget(self, doc_id: str) -> None:
        del self.vectors[doc_id]
        self.gone.add(doc_id)

    def status(self) -> dict[str, Any]:
        got = self.client.get(f"{COL}/vecs/vector-index")
        assert got.status_code == 200, got.text
        return next(f for f in got.json()["features"] if f["name"] == "emb")

    def build(self) -> dict[str, Any]:
        done = self.client.post(f"{COL}/vecs/vector-index/build", json={"wait": True}, timeout=120)
        assert done.status_code == 200, done.text
        feature = next(f for f in done.json()["features"] if f["name"] == "emb")
        assert (feature["pending"], feature["tombstones"]) == (0, 0), feature
        assert (feature["vectors"], feature["indexed"]) == (len(self.vectors), len(self.vectors)), feature
        assert feature["path"] == "hnsw", feature
        return feature

    def search(self, query: np.ndarray) -> tuple[list[tuple[str, float]], dict[str, Any]]:
        search = {
            "feature_uri": self.uri,
            "query": {"input_mode": "vector", "value": [float(x) for x in query]},
        }
        body = {
            "collection_identifiers": ["vecs"],
            "limit": TOP_K,
            "stages": [
                {
                    "stage_name": "search",
                    "stage_type": "filter",
                    "config": {
                        "stage_id": "feature_search",
                        "parameters": {"searches": [{**search, "top_k": TOP_K}], "final_top_k": TOP_K},
                    },
                }
            ],
        }
        done = self.client.post("/v1/retrievers/execute", json=body)
        assert done.status_code == 200, done.text
        out = done.json()
        assert out["status"] == "completed", out
        hits = [(d["document_id"], float(d["score"])) for d in out["documents"]]
        ids = [d for d, _ in hits]
        assert not set(ids) & self.gone, f"deleted documents returned: {sorted(set(ids) & self.gone)}"
        assert set(ids) <= self.vectors.keys(), f"unknown documents returned: {ids}"
        assert len(hits) == min(TOP_K, len(self.vectors))
        for doc_id, score in hits:
            expected = cosine(query, self.vectors[doc_id])
            assert score == pytest.approx(expected, abs=1e-4), (
                f"{doc_id}: {score} ≠ {expected} (stale vector?)"
            )
        return hits, out["stage_statistics"]["stages"]["search"]["metadata"]["searches"][0]

    def truth(self, query: np.ndarray) -> set[str]:
        ids = list(self.vectors)
        matrix = np.stack([self.vectors[d] for d in ids])
        scores = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
        return {ids[i] for i in np.argsort(-scores)[:TOP_K]}

    def assert_correct(self, queries: np.ndarray, own: list[str]) -> None:
        """Recall@10 vs exact over ``queries``, and each of ``own`` the first hit of its own vector."""
        recall = np.mean([len({d for d, _ in self.search(q)[0]} & self.truth(q)) / TOP_K for q in queries])
        assert recall >= 0.9, recall
        for d in own:
            assert self.search(self.vectors[d])[0][0][0] == d
        assert self.status()["vectors"] == len(self.vectors)


@pytest.fixture
def live() -> Iterator[Live]:
    model = Live()
    yield model
    if model.http is not None:
        model.http.close()


@pytest.fixture
def make_server() -> Iterator[Any]:
    """``make_server(data_dir, port=None)`` → a started server with ``SIFTLINE_HNSW_THRESHOLD`` set;
    every server started is killed at the end."""
    started: list[Server] = []

    def make(data_dir: Path, port: int | None = None) -> Server:
        server = Server(data_dir, port, env=ENV)
        started.append(server.start())
        return server

    yield make
    for server in started:
        server.kill()


def create_key(data_dir: Path) -> str:
    done = siftline("keys", "create", "--data-dir", str(data_dir), env=ENV)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def index_files(data_dir: Path) -> dict[Path, tuple[int, int]]:
    """Every file under ``vectors/`` with its (size, mtime_ns)."""
    root = data_dir / "vectors"
    if not root.is_dir():
        return {}
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def start_loaded(make_server: Any, live: Live, data_dir: Path) -> tuple[Server, str]:
    """A started server over ``data_dir`` holding N vectors d0…d399, built into its HNSW index."""
    server = make_server(data_dir)
    key = create_key(data_dir)
    live.connect(server.url, key)
    live.create()
    live.insert([f"d{i}" for i in range(N)], gaussian(0, N))
    live.build()
    return server, key


def test_a_graceful_restart_reuses_the_current_index(make_server: Any, live: Live, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server, key = start_loaded(make_server, live, data_dir)
    queries = gaussian(1, 10)
    before = [live.search(q) for q in queries]
    assert all(info["path"] == "hnsw" for _, info in before)
    server.stop()

    files = index_files(data_dir)
    assert files, "a graceful stop leaves the index under <data_dir>/vectors/"
    server = make_server(data_dir, server.port)
    live.connect(server.url, key)
    status = live.status()  # at once: no rebuild running, nothing pending
    assert (status["path"], status["vectors"], status["indexed"]) == ("hnsw", N, N), status
    assert (status["pending"], status["tombstones"], status["building"]) == (0, 0, False), status
    after = [live.search(q) for q in queries]
    for (hits_after, _), (hits_before, _) in zip(after, before, strict=True):
        assert [d for d, _ in hits_after] == [d for d, _ in hits_before]
        assert [s for _, s in hits_after] == pytest.approx([s for _, s in hits_before], abs=1e-5)
    assert all(info["path"] == "hnsw" for _, info in after)
    assert index_files(data_dir) == files, "a current index is reused, not rebuilt and rewritten"
    live.assert_correct(gaussian(2, 10), own=["d0", "d123", "d399"])


def test_an_index_missing_or_truncated_after_kill_9_is_rebuilt_from_sqlite(
    make_server: Any, live: Live, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server, key = start_loaded(make_server, live, data_dir)
    server.stop()
    assert index_files(data_dir)

    # writes the saved index has never seen, then kill -9: the saved index is stale at the next start
    server = make_server(data_dir, server.port)
    live.connect(server.url, key)
    new_ids = [f"n{i}" for i in range(30)]
    live.insert(new_ids, gaussian(3, 30))
    for d in ["d5", "d6", "n0"]:
        assert live.client.delete(f"{COL}/vecs/documents/{d}").status_code == 200
        live.forget(d)
    server.kill()

    server = make_server(data_dir, server.port)
    live.connect(server.url, key)
    live.assert_correct(gaussian(4, 10), own=["d7", "n1", "n29"])
    server.kill()

    # the index files are gone
    for path in index_files(data_dir):
        path.unlink()
    server = make_server(data_dir, server.port)
    live.connect(server.url, key)
    live.assert_correct(gaussian(5, 10), own=["d7", "n1", "n29"])
    live.build()
    live.assert_correct(gaussian(6, 10), own=["d8", "n2"])
    server.stop()

    # the index files are cut in half
    files = index_files(data_dir)
    assert files, "a graceful stop leaves the index under <data_dir>/vectors/"
    for path, (size, _) in files.items():
        with path.open("r+b") as handle:
            handle.truncate(size // 2)
    server = make_server(data_dir, server.port)
    live.connect(server.url, key)
    live.assert_correct(gaussian(7, 10), own=["d9", "n3"])
    status = live.build()
    assert status["vectors"] == N + 30 - 3
    live.assert_correct(gaussian(8, 10), own=["d9", "n3"])


def test_writes_by_another_process_while_stopped_make_the_index_stale_and_it_is_rebuilt(
    make_server: Any, live: Live, tmp_path: Path, embedder: TextEmbedder
) -> None:
    data_dir = tmp_path / "data"
    server, key = start_loaded(make_server, live, data_dir)
    server.stop()
    assert index_files(data_dir)
    before = tmp_path / "vectors-before"
    shutil.copytree(data_dir / "vectors", before)

    # another Siftline over the same data directory (the server is down): add, update, delete
    services = Services.open(settings_for(data_dir, hnsw_threshold=THRESHOLD), embedder)
    added = [f"n{i}" for i in range(40)]
    updated = [f"d{i}" for i in range(10, 15)]
    deleted = [f"d{i}" for i in range(20, 25)]
    old = {d: live.vectors[d].copy() for d in updated + deleted}
    try:
        ns = services.storage.get_namespace("default")
        assert ns is not None

        def collection() -> Any:  # fresh each time: every write moves the collection's version
            assert ns is not None
            found = services.storage.get_collection(ns.namespace_id, "vecs")
            assert found is not None
            return found

        vectors = gaussian(9, 40)
        services.documents.create_batch(
            collection(), {"documents": [doc(d, v) for d, v in zip(added, vectors, strict=True)]}
        )
        live.record(added, vectors)
        for d in updated:
            services.documents.patch(collection(), d, {"vectors": {"emb": [float(x) for x in -old[d]]}})
            live.record([d], np.array([-old[d]]))
        for d in deleted:
            services.documents.delete(collection(), d)
            live.forget(d)
    finally:
        services.close()
    # That writer may have refreshed the index files as it closed; put back the ones saved before its
    # writes, so the server surely starts on index files older than the database.
    shutil.rmtree(data_dir / "vectors")
    shutil.copytree(before, data_dir / "vectors")

    server = make_server(data_dir, server.port)
    live.connect(server.url, key)
    live.assert_correct(gaussian(10, 10), own=["n0", "n39", *updated])
    for d in updated + deleted:
        hits, _ = live.search(old[d])  # scores are checked against the current vectors
        assert d not in {h for h, _ in hits}
    assert live.status()["vectors"] == N + 40 - 5
    live.build()
    live.assert_correct(gaussian(11, 10), own=["n0", "n39", *updated])
    for d in updated + deleted:
        assert d not in {h for h, _ in live.search(old[d])[0]}
