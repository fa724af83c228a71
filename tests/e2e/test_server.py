"""A real server process on 127.0.0.1: start-up, keys from the CLI, durability across restarts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from siftline.config import Settings
from siftline.storage.factory import open_storage
from siftline.testing.server import Server, siftline

pytestmark = pytest.mark.slow


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "fresh"


@pytest.fixture
def server(data_dir: Path) -> Iterator[Server]:
    srv = Server(data_dir).start()
    yield srv
    srv.kill()


def _create_key(data_dir: Path) -> str:
    done = siftline("keys", "create", "--data-dir", str(data_dir), "--name", "e2e")
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    assert key.startswith("sk_live_") and " " not in key
    return key


def test_serve_on_an_empty_directory_answers_health_and_requires_a_key(
    server: Server, data_dir: Path
) -> None:
    assert httpx.get(f"{server.url}/v1/health").json()["status"] == "ok"
    assert (data_dir / "siftline.db").is_file()

    denied = httpx.post(f"{server.url}/v1/collections/list")
    assert denied.status_code == 401
    assert denied.json()["success"] is False and denied.json()["error"]["type"] == "UnauthorizedError"

    key = _create_key(data_dir)  # written by another process while the server runs
    ok = httpx.post(f"{server.url}/v1/collections/list", headers={"Authorization": f"Bearer {key}"})
    assert ok.status_code == 200 and ok.json()["results"] == []
    assert httpx.get(f"{server.url}/openapi.json").status_code == 200
    assert httpx.get(f"{server.url}/docs").status_code == 200


def test_keys_list_and_revoke_from_the_cli(server: Server, data_dir: Path) -> None:
    key = _create_key(data_dir)
    listed = siftline("keys", "list", "--data-dir", str(data_dir))
    assert key not in listed.stdout and key[:12] in listed.stdout
    key_id = listed.stdout.split()[0]
    assert siftline("keys", "revoke", key_id, "--data-dir", str(data_dir)).returncode == 0
    revoked = httpx.post(f"{server.url}/v1/collections/list", headers={"Authorization": f"Bearer {key}"})
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]


def test_acknowledged_writes_survive_kill_9_and_deletes_leave_every_index(data_dir: Path) -> None:
    srv = Server(data_dir).start()
    key = _create_key(data_dir)
    http = httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    created = http.post(
        "/v1/collections",
        json={
            "collection_name": "notes",
            "feature_extractor": {
                "feature_extractor_name": "text_extractor",
                "input_mappings": {"text": "text"},
            },
            "vector_configs": [{"name": "emb", "dimension": 3, "metric": "cosine"}],
        },
    )
    assert created.status_code == 200
    docs = [
        {"document_id": "cat", "text": "a cat sat on the mat", "vectors": {"emb": [1, 0, 0]}},
        {"document_id": "stock", "text": "stock markets fell sharply", "vectors": {"emb": [0, 1, 0]}},
        {"document_id": "rain", "text": "heavy rain is expected tomorrow", "vectors": {"emb": [0, 0, 1]}},
    ]
    assert http.post("/v1/collections/notes/documents/batch", json={"documents": docs}).status_code == 200
    srv.kill()  # kill -9 right after the acknowledgement

    srv = Server(data_dir, srv.port).start()
    assert http.get("/v1/collections/notes/documents/count").json()["count"] == 3
    assert http.get("/v1/collections/notes/documents/cat").json()["text"] == "a cat sat on the mat"
    assert http.delete("/v1/collections/notes/documents/cat").status_code == 200
    srv.stop()

    srv = Server(data_dir, srv.port).start()
    listed = http.post("/v1/collections/notes/documents/list", json={"limit": 100}).json()["results"]
    assert sorted(d["document_id"] for d in listed) == ["rain", "stock"]
    assert http.get("/v1/collections/notes/documents/cat").status_code == 404
    srv.stop()
    http.close()

    storage = open_storage(Settings(data_dir=data_dir))
    try:
        ns = storage.get_namespace("default")
        assert ns is not None
        col = storage.get_collection(ns.namespace_id, "notes")
        assert col is not None
        emb = col.feature("emb")
        text_dense = col.feature("all_minilm_l6_v2")
        bm25 = col.feature("bm25")
        assert emb and text_dense and bm25
        assert {d for d, _ in storage.vector_search(col, emb, np.array([1.0, 0, 0]), 10)} == {"stock", "rain"}
        assert "cat" not in {d for d, _ in storage.vector_search(col, text_dense, np.ones(384), 10)}
        assert storage.text_search(col, bm25, "cat mat", 10) == []
        assert {d for d, _ in storage.text_search(col, bm25, "stock rain", 10)} == {"stock", "rain"}
    finally:
        storage.close()
