"""Executions in flight, watched from another client over real HTTP: status, SSE, and kill -9."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from helpers import ADMIN_KEY
from siftline.api.app import create_app
from siftline.config import Settings
from siftline.service.container import Services
from siftline.storage.factory import open_storage
from siftline.testing.server import Server, free_port, siftline
from siftline.testing.slow_stage import register

pytestmark = pytest.mark.slow

DOCS = [{"document_id": f"d{i}", "text": f"note number {i} about cats", "n": i} for i in range(5)]
SLOW_STAGES = [
    {"stage_name": "scan", "config": {"stage_id": "feature_search", "parameters": {"final_top_k": 5}}},
    {"stage_name": "wait-1", "config": {"stage_id": "test_sleep", "parameters": {"seconds": 0.5}}},
    {"stage_name": "wait-2", "config": {"stage_id": "test_sleep", "parameters": {"seconds": 0.5}}},
    {"stage_name": "wait-3", "config": {"stage_id": "test_sleep", "parameters": {"seconds": 0.5}}},
]


def _seed(http: httpx.Client) -> None:
    collection = {
        "collection_name": "notes",
        "feature_extractor": {"feature_extractor_name": "text_extractor", "input_mappings": {"text": "text"}},
    }
    assert http.post("/v1/collections", json=collection).status_code == 200
    assert http.post("/v1/collections/notes/documents/batch", json={"documents": DOCS}).status_code == 200
    retriever = {"retriever_name": "slow", "collection_identifiers": ["notes"], "stages": SLOW_STAGES}
    assert http.post("/v1/retrievers", json=retriever).status_code == 200, "retriever"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[httpx.Client]:
    """A real uvicorn server on 127.0.0.1 in this process (so the test stage is registered in it)."""
    register()
    settings = Settings(data_dir=tmp_path_factory.mktemp("inflight") / "data", bootstrap_key=ADMIN_KEY)
    services = Services.open(settings, embedder)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, services), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    http = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
    )
    _seed(http)
    yield http
    http.close()
    server.should_exit = True
    thread.join(timeout=10)
    services.close()


def _newest(http: httpx.Client) -> dict[str, Any] | None:
    found = http.post("/v1/retrievers/slow/executions/list", json={"limit": 1}).json()["results"]
    return found[0] if found else None


def test_a_slow_execution_is_seen_processing_with_a_growing_stages_completed(live: httpx.Client) -> None:
    before = _newest(live)
    outcome: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: outcome.update(live.post("/v1/retrievers/slow/execute", json={}).json())
    )
    runner.start()
    seen: list[tuple[str, str | None, int]] = []
    deadline = time.monotonic() + 20
    while runner.is_alive() and time.monotonic() < deadline:
        newest = _newest(live)
        if newest and (before is None or newest["execution_id"] != before["execution_id"]):
            status = live.get(f"/v1/retrievers/slow/executions/{newest['execution_id']}/status").json()
            seen.append((status["status"], status["current_stage"], status["stages_completed"]))
            assert status["total_stages"] == 4
        time.sleep(0.05)
    runner.join()
    processing = [s for s in seen if s[0] == "processing"]
    assert processing, seen
    assert {stage for _, stage, _ in processing} >= {"wait-1", "wait-2", "wait-3"}
    completed = [n for _, _, n in processing]
    assert completed == sorted(completed) and completed[-1] > completed[0]
    assert outcome["status"] == "completed"
    final = live.get(f"/v1/retrievers/slow/executions/{outcome['execution_id']}/status").json()
    assert (
        final["status"] == "completed" and final["stages_completed"] == 4 and final["current_stage"] is None
    )


def _events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    events, kind = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[len("event: ") :]
        elif line.startswith("data: ") and kind:
            events.append((kind, json.loads(line[len("data: ") :])))
    return events


def test_the_sse_stream_sends_start_and_complete_per_stage_then_execution_complete(
    live: httpx.Client,
) -> None:
    with live.stream("POST", "/v1/retrievers/slow/execute", json={"stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response)
    kinds = [kind for kind, _ in events]
    expected = [
        k for name in ("scan", "wait-1", "wait-2", "wait-3") for k in ("stage_start", "stage_complete")
    ]
    assert kinds == [*expected, "execution_complete"]
    names = [data["stage_name"] for kind, data in events if kind == "stage_start"]
    assert names == ["scan", "wait-1", "wait-2", "wait-3"]
    final = events[-1][1]
    assert final["status"] == "completed" and [d["document_id"] for d in final["documents"]]
    assert all(data["execution_id"] == final["execution_id"] for _, data in events)


def test_a_stream_with_bad_input_gets_the_error_envelope(live: httpx.Client) -> None:
    response = live.post(
        "/v1/retrievers/slow/execute", json={"stream": True, "pagination": {"method": "nope"}}
    )
    assert response.status_code == 422 and response.json()["success"] is False


def test_kill_9_mid_execution_leaves_a_failed_record_and_nothing_else_damaged(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    key = siftline("keys", "create", "--data-dir", str(data_dir)).stdout.strip().splitlines()[-1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "siftline.testing.slow_stage",
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if http.get("/v1/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        _seed(http)
        finished = http.post("/v1/retrievers/slow/execute", json={}).json()
        assert finished["status"] == "completed"
        threading.Thread(
            target=lambda: _quietly(http.post, "/v1/retrievers/slow/execute", json={}), daemon=True
        ).start()
        deadline = time.monotonic() + 20
        running = None
        while running is None and time.monotonic() < deadline:
            newest = _newest(http)
            if (
                newest
                and newest["execution_id"] != finished["execution_id"]
                and newest["status"] == "processing"
            ):
                running = newest["execution_id"]
            time.sleep(0.05)
        assert running, "the second execution was never seen processing"
    finally:
        proc.kill()  # kill -9
        proc.wait()
        http.close()

    server = Server(data_dir, port).start()
    try:
        http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        record = http.get(f"/v1/retrievers/slow/executions/{running}").json()
        assert record["status"] == "failed" and "server stopped" in record["error"]
        assert record["completed_at"] is not None
        intact = http.get(f"/v1/retrievers/slow/executions/{finished['execution_id']}").json()
        assert intact["status"] == "completed" and intact["documents"] == finished["documents"]
        assert http.get("/v1/collections/notes/documents/count").json()["count"] == len(DOCS)
        assert (
            http.post("/v1/retrievers/slow/executions/list", json={"status": "processing"}).json()["results"]
            == []
        )
        http.close()
    finally:
        server.stop()
    storage = open_storage(Settings(data_dir=data_dir))
    try:
        ns = storage.get_namespace("default")
        assert ns is not None and storage.list_executions(ns.namespace_id, statuses=["processing"])[1] == 0
    finally:
        storage.close()


def _quietly(call: Any, *args: Any, **kwargs: Any) -> None:
    with contextlib.suppress(httpx.HTTPError):
        call(*args, **kwargs)
