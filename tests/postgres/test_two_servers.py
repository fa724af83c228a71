"""Two real Siftline servers on one PostgreSQL database, talked to over HTTP (issue 13, acceptance 3):
what one acknowledges, the other serves on the next request; a result cached by one is invalidated by a
write through the other; an execution run on one is read from the other."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import ADMIN_KEY
from siftline.testing.server import Server

COLLECTION = {
    "collection_name": "notes",
    "feature_extractor": {"feature_extractor_name": "text_extractor", "version": "v1", "input_mappings": {"text": ["text"]}},
    "vector_configs": [{"name": "emb", "dimension": 4, "metric": "cosine"}],
}  # fmt: skip
EMB = "mixpeek://vectors@v1/emb"


def doc(i: int, text: str = "a note") -> dict[str, Any]:
    return {
        "document_id": f"n{i}",
        "text": f"{text} {i}",
        "vectors": {"emb": [math.cos(0.2 * i), math.sin(0.2 * i), 0, 0]},
    }


def search(cached: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "collection_identifiers": ["notes"],
        "stages": [{"stage_name": "s", "stage_type": "filter", "config": {"stage_id": "feature_search", "parameters": {
            "searches": [{"feature_uri": EMB, "query": {"input_mode": "vector", "value": [1, 0, 0, 0]}, "top_k": 50}],
            "final_top_k": 50}}}],
        "limit": 50,
    }  # fmt: skip
    if cached:
        body["cache_config"] = {"enabled": True}
    return body


@pytest.fixture
def servers(database: str, tmp_path: Path) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    env = {
        "SIFTLINE_STORAGE": "postgres",
        "SIFTLINE_POSTGRES_URL": database,
        "SIFTLINE_BOOTSTRAP_KEY": ADMIN_KEY,
    }
    a = Server(tmp_path / "a", env=env).start()
    b = Server(tmp_path / "b", env=env).start()
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        with (
            httpx.Client(base_url=a.url, headers=headers, timeout=60) as ca,
            httpx.Client(base_url=b.url, headers=headers, timeout=60) as cb,
        ):
            assert ca.post("/v1/collections", json=COLLECTION).status_code == 200
            yield ca, cb
    finally:
        a.stop()
        b.stop()


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [d["document_id"] for d in response.json()["documents"]]


def test_a_write_acknowledged_by_one_server_is_served_by_the_other_at_once(servers: Any) -> None:
    a, b = servers
    for i in range(5):
        assert a.post("/v1/collections/notes/documents", json=doc(i)).status_code == 200
        assert b.get(f"/v1/collections/notes/documents/n{i}").status_code == 200  # the very next request
        assert f"n{i}" in ids(b.post("/v1/retrievers/execute", json=search()))
    assert b.delete("/v1/collections/notes/documents/n0").status_code == 200
    assert "n0" not in ids(a.post("/v1/retrievers/execute", json=search()))


def test_a_result_cached_by_one_server_is_invalidated_by_a_write_through_the_other(servers: Any) -> None:
    a, b = servers
    a.post("/v1/collections/notes/documents/batch", json={"documents": [doc(i) for i in range(3)]})
    first = a.post("/v1/retrievers/execute", json=search(cached=True))
    again = a.post("/v1/retrievers/execute", json=search(cached=True))
    assert first.headers["x-cache"] == "MISS" and again.headers["x-cache"] == "HIT"
    assert b.post("/v1/retrievers/execute", json=search(cached=True)).headers["x-cache"] == "HIT"  # shared
    assert b.post("/v1/collections/notes/documents", json=doc(9)).status_code == 200
    after = a.post("/v1/retrievers/execute", json=search(cached=True))
    assert after.headers["x-cache"] == "MISS" and "n9" in ids(after)


def test_an_execution_run_on_one_server_is_read_from_the_other(servers: Any) -> None:
    a, b = servers
    a.post("/v1/collections/notes/documents/batch", json={"documents": [doc(i) for i in range(3)]})
    done = a.post("/v1/retrievers/execute", json=search()).json()
    record = b.get(f"/v1/retrievers/executions/{done['execution_id']}")
    assert record.status_code == 200, record.text
    detail = record.json()
    assert detail["status"] == "completed" and detail["execution_id"] == done["execution_id"]
    status = b.get(f"/v1/retrievers/executions/{done['execution_id']}/status")
    assert status.status_code == 200 and status.json()["status"] == "completed"


LEASE_S = 2.0  # short, so that a killed server is noticed within seconds
RETRIEVER = {
    "retriever_name": "by-vector",
    "collection_identifiers": ["notes"],
    "input_schema": {"v": {"type": "array", "required": True}},
    "stages": [{"stage_name": "search", "config": {"stage_id": "feature_search", "parameters": {
        "searches": [{"feature_uri": EMB, "query": {"input_mode": "vector", "value": "{{INPUT.v}}"}, "top_k": 10}],
        "final_top_k": 10}}}],
}  # fmt: skip


def evaluation(client: httpx.Client, rid: str, eid: str) -> dict[str, Any]:
    response = client.get(f"/v1/retrievers/{rid}/evaluations/{eid}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_an_evaluation_fails_when_its_server_dies_and_only_then(database: str, tmp_path: Path) -> None:
    """Server b restarting, and b's periodic recovery, leave a's running evaluation alone; once a is
    killed, b fails it within the lease (one server at a time runs that recovery)."""
    env = {
        "SIFTLINE_STORAGE": "postgres",
        "SIFTLINE_POSTGRES_URL": database,
        "SIFTLINE_BOOTSTRAP_KEY": ADMIN_KEY,
        "SIFTLINE_SERVER_LEASE_SECONDS": str(LEASE_S),
        "SIFTLINE_MAINTENANCE_INTERVAL_SECONDS": "0.5",
    }
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    a = Server(tmp_path / "a", env=env).start()
    b = Server(tmp_path / "b", env=env).start()
    try:
        with (
            httpx.Client(base_url=a.url, headers=headers, timeout=60) as ca,
            httpx.Client(base_url=b.url, headers=headers, timeout=60) as cb,
        ):
            assert ca.post("/v1/collections", json=COLLECTION).status_code == 200
            batch = {"documents": [doc(i) for i in range(50)]}
            assert ca.post("/v1/collections/notes/documents/batch", json=batch).status_code == 200
            rid = ca.post("/v1/retrievers", json=RETRIEVER).json()["retriever_id"]
            queries = [
                {"query_id": f"q{i}", "query_input": {"v": [math.cos(0.01 * i), math.sin(0.01 * i), 0, 0]},
                 "relevant_documents": [f"n{i % 50}"]}
                for i in range(20_000)
            ]  # fmt: skip
            made = ca.post(
                "/v1/retrievers/evaluations/datasets", json={"dataset_name": "long", "queries": queries}
            )
            assert made.status_code == 200, made.text
            started = ca.post(f"/v1/retrievers/{rid}/evaluations", json={"dataset_name": "long"})
            assert started.status_code == 202, started.text
            eid = started.json()["evaluation_id"]

            deadline = time.monotonic() + 30
            while evaluation(cb, rid, eid)["status"] != "in_progress":
                assert time.monotonic() < deadline, "the evaluation never started"
                time.sleep(0.1)

            # b restarts (start-up recovery) and runs its periodic recovery for several lease periods
            b.stop()
            b = Server(tmp_path / "b2", env=env).start()
            cb.base_url = httpx.URL(b.url)
            time.sleep(2 * LEASE_S)
            seen = evaluation(cb, rid, eid)
            assert seen["status"] == "in_progress", seen.get("error_message")
            done_before = seen["progress"]["done"]

            a.kill()
            killed = time.monotonic()
            while (seen := evaluation(cb, rid, eid))["status"] == "in_progress":
                assert time.monotonic() - killed < LEASE_S + 10, "the dead server's evaluation was not failed"
                time.sleep(0.1)
            noticed = time.monotonic() - killed
            assert seen["status"] == "failed" and "server stopped" in seen["error_message"]
            assert seen["progress"]["done"] >= done_before  # what a saved stays
            assert noticed >= LEASE_S * 0.5  # not before its heartbeat could have stopped
    finally:
        a.kill()
        b.stop()
