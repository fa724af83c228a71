"""Failures around a real server on PostgreSQL (issue 13, acceptance 4): kill -9 of the server during
ingest loses no acknowledged write; PostgreSQL stopped and started again: requests meanwhile get a 503
in the error envelope within the request timeout (no hang, no 500), and the server recovers by itself."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from helpers import ADMIN_KEY
from siftline.storage.postgres.local import LocalPostgres
from siftline.testing.server import Server

COLLECTION = {
    "collection_name": "notes",
    "vector_configs": [{"name": "emb", "dimension": 3, "metric": "cosine"}],
}
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def own_cluster() -> Iterator[LocalPostgres]:
    """A cluster of this test's own, kept on disk when stopped (it is stopped and started again)."""
    root = Path(tempfile.mkdtemp(prefix="siftline-pg-outage-"))  # not a tmp_path: user postgres must reach it
    cluster = LocalPostgres(root).start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _url(cluster: LocalPostgres) -> str:
    name = f"o_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql://postgres@/{name}?host={cluster.root}&port={cluster.port}"


def _server(url: str, place: Path) -> Server:
    env = {"SIFTLINE_STORAGE": "postgres", "SIFTLINE_POSTGRES_URL": url, "SIFTLINE_BOOTSTRAP_KEY": ADMIN_KEY}
    return Server(place, env=env).start()


def doc(i: int) -> dict[str, Any]:
    return {"document_id": f"d{i}", "n": i, "vectors": {"emb": [1.0, float(i % 7), 0.5]}}


def test_kill_9_during_ingest_loses_no_acknowledged_write(own_cluster: LocalPostgres, tmp_path: Path) -> None:
    url = _url(own_cluster)
    server = _server(url, tmp_path / "a")
    acknowledged: list[str] = []
    stop = threading.Event()
    with httpx.Client(base_url=server.url, headers=HEADERS, timeout=30) as client:
        assert client.post("/v1/collections", json=COLLECTION).status_code == 200

        def ingest() -> None:
            i = 0
            while not stop.is_set():
                batch = [doc(i + k) for k in range(20)]
                try:
                    done = client.post("/v1/collections/notes/documents/batch", json={"documents": batch})
                except httpx.HTTPError:
                    return  # the server died mid-request: that batch was never acknowledged
                if done.status_code == 200:
                    acknowledged.extend(d["document_id"] for d in batch)
                i += 20

        writer = threading.Thread(target=ingest)
        writer.start()
        time.sleep(1.5)
        server.kill()  # SIGKILL, mid-ingest
        stop.set()
        writer.join(timeout=30)
    assert len(acknowledged) >= 100
    again = _server(url, tmp_path / "b")
    try:
        with httpx.Client(base_url=again.url, headers=HEADERS, timeout=30) as client:
            found: set[str] = set()
            for lo in range(0, len(acknowledged), 200):
                chunk = acknowledged[lo : lo + 200]
                got = client.post(
                    "/v1/collections/notes/documents/list",
                    json={
                        "filters": {"field": "document_id", "operator": "in", "value": chunk},
                        "limit": 200,
                    },
                )
                assert got.status_code == 200, got.text
                found |= {d["document_id"] for d in got.json()["results"]}
            assert set(acknowledged) <= found
    finally:
        again.stop()


def _down_then_up(own_cluster: LocalPostgres, tmp_path: Path, check_recovery: bool) -> None:
    server = _server(_url(own_cluster), tmp_path / "a")
    try:
        with httpx.Client(base_url=server.url, headers=HEADERS, timeout=60) as client:
            assert client.post("/v1/collections", json=COLLECTION).status_code == 200
            assert client.post("/v1/collections/notes/documents", json=doc(1)).status_code == 200
            own_cluster.stop()
            for path in ("/v1/collections/notes/documents/d1", "/v1/collections/notes"):
                t0 = time.monotonic()
                down = client.get(path)
                assert time.monotonic() - t0 < 25  # within the request timeout (pool 10 s)
                assert down.status_code == 503, down.text
                body = down.json()
                assert body["success"] is False and body["error"]["type"] == "ServiceUnavailableError"
                assert "unavailable" in body["error"]["message"] and "retry" in body["error"]["message"]
            own_cluster.start()
            if not check_recovery:
                return
            deadline, back = time.monotonic() + 30, None
            while time.monotonic() < deadline:
                back = client.get("/v1/collections/notes/documents/d1", timeout=15)
                if back.status_code == 200:
                    break
                assert back.status_code == 503, back.text  # never a 500 on the way back
                time.sleep(0.5)
            assert back is not None and back.status_code == 200 and back.json()["n"] == 1
    finally:
        server.stop()


def test_postgres_down_gives_a_503_in_the_envelope_within_the_request_timeout(
    own_cluster: LocalPostgres, tmp_path: Path
) -> None:
    _down_then_up(own_cluster, tmp_path, check_recovery=False)


def test_the_server_recovers_by_itself_when_postgres_is_back(
    own_cluster: LocalPostgres, tmp_path: Path
) -> None:
    _down_then_up(own_cluster, tmp_path, check_recovery=True)
