"""Acceptance 4 of issue 10: the result cache of a real server survives a restart, and a write made after
the restart still invalidates it — also when the server is killed (-9) right after the write.

The corpus: 8 documents with a 4-d vector at angle 0.1·i from [1, 0, 0, 0], so a search for [1, 0, 0, 0]
ranks them v01, v02, … with distinct scores; a retriever with ``cache_config`` and the same pipeline ad hoc.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from siftline.testing.server import Server, start_with_key

pytestmark = pytest.mark.slow

R = "/v1/retrievers"
DOCS_PATH = "/v1/collections/vecs/documents"


def emb(angle: float) -> list[float]:
    return [math.cos(0.1 * angle), math.sin(0.1 * angle), 0.0, 0.0]


DOCS = [{"document_id": f"v{i + 1:02d}", "rank": i + 1, "vectors": {"emb": emb(i)}} for i in range(8)]
ALL = [d["document_id"] for d in DOCS]
STAGES = [
    {
        "stage_name": "search",
        "stage_type": "filter",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [
                    {
                        "feature_uri": "mixpeek://vectors@v1/emb",
                        "query": {"input_mode": "vector", "value": "{{ INPUT.v }}"},
                    }
                ],
                "final_top_k": 20,
            },
        },
    },
    {
        "stage_name": "top",
        "stage_type": "reduce",
        "config": {"stage_id": "limit", "parameters": {"limit": 5}},
    },
]
SCHEMA = {"v": {"type": "array", "default": [1, 0, 0, 0]}}
CACHE = {"enabled": True, "ttl_seconds": 3600}
EXECUTE = {"inputs": {"v": [1, 0, 0, 0]}}
ADHOC = {
    "collection_identifiers": ["vecs"],
    "input_schema": SCHEMA,
    "stages": STAGES,
    "cache_config": CACHE,
    **EXECUTE,
}


class Live:
    """A server over one data directory that can be stopped, killed and started again on the same port."""

    def __init__(self, data_dir: Path) -> None:
        self.server, self.key = start_with_key(data_dir)
        self.data_dir = data_dir
        self.http = self._client()

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=60
        )

    def restart(self, kill: bool = False) -> None:
        self.http.close()
        if kill:
            self.server.kill()
        else:
            self.server.stop()
        self.server = Server(self.data_dir, self.server.port).start()
        self.http = self._client()

    def ok(self, response: httpx.Response) -> dict[str, Any]:
        assert response.status_code == 200, response.text
        return dict(response.json())

    def saved(self) -> tuple[str, dict[str, Any]]:
        response = self.http.post(f"{R}/cached/execute", json=EXECUTE)
        return response.headers.get("X-Cache", ""), self.ok(response)

    def adhoc(self) -> tuple[str, dict[str, Any]]:
        response = self.http.post(f"{R}/execute", json=ADHOC)
        return response.headers.get("X-Cache", ""), self.ok(response)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    server = Live(tmp_path / "data")
    try:
        created = server.http.post(
            "/v1/collections",
            json={
                "collection_name": "vecs",
                "vector_configs": [{"name": "emb", "dimension": 4, "metric": "cosine"}],
            },
        )
        server.ok(created)
        server.ok(server.http.post(f"{DOCS_PATH}/batch", json={"documents": DOCS}))
        server.ok(
            server.http.post(
                R,
                json={
                    "retriever_name": "cached",
                    "collection_identifiers": ["vecs"],
                    "input_schema": SCHEMA,
                    "stages": STAGES,
                    "cache_config": CACHE,
                },
            )
        )
        yield server
    finally:
        server.http.close()
        server.server.kill()


def ids(payload: dict[str, Any]) -> list[str]:
    return [d["document_id"] for d in payload["documents"]]


def warm(live: Live) -> dict[str, dict[str, Any]]:
    """Each mode executed twice: a MISS, then a HIT of it. Returns the MISS of each mode."""
    misses = {}
    for mode, run in (("saved", live.saved), ("adhoc", live.adhoc)):
        verdict, first = run()
        assert verdict == "MISS" and ids(first) == ALL[:5], (mode, verdict)
        verdict, hit = run()
        assert verdict == "HIT" and hit["cached_from_execution_id"] == first["execution_id"], (mode, verdict)
        misses[mode] = first
    return misses


def test_the_cache_survives_a_restart_and_a_later_write_still_invalidates_it(live: Live) -> None:
    misses = warm(live)

    live.restart()
    for mode, run in (("saved", live.saved), ("adhoc", live.adhoc)):
        verdict, hit = run()
        assert verdict == "HIT", (mode, verdict)
        assert hit["cache_hit"] is True and hit["cached_from_execution_id"] == misses[mode]["execution_id"]
        assert (
            hit["documents"] == misses[mode]["documents"] and hit["pagination"] == misses[mode]["pagination"]
        )
        assert hit["budget"]["credits_used"] == 0

    live.ok(live.http.post(DOCS_PATH, json={"document_id": "v00", "rank": 0, "vectors": {"emb": emb(0.5)}}))
    for mode, run in (("saved", live.saved), ("adhoc", live.adhoc)):
        verdict, after = run()
        assert verdict == "MISS" and after["cache_hit"] is False, (mode, verdict)
        assert ids(after) == ["v01", "v00", "v02", "v03", "v04"], mode
        verdict, again = run()
        assert verdict == "HIT" and again["cached_from_execution_id"] == after["execution_id"], (
            mode,
            verdict,
        )


def test_a_write_acknowledged_just_before_a_kill_invalidates_the_cache_after_the_restart(live: Live) -> None:
    warm(live)
    live.restart()
    assert live.saved()[0] == "HIT"

    live.ok(live.http.patch(f"{DOCS_PATH}/v01", json={"rank": 100, "vectors": {"emb": emb(40)}}))
    live.restart(kill=True)  # no shutdown code runs: the write's own transaction must have bumped the version

    for mode, run in (("saved", live.saved), ("adhoc", live.adhoc)):
        verdict, after = run()
        assert verdict == "MISS", (mode, verdict)
        assert ids(after) == ALL[1:6], mode
    live.ok(live.http.delete(f"{DOCS_PATH}/v02"))
    live.restart(kill=True)
    verdict, after = live.saved()
    assert verdict == "MISS" and ids(after) == ALL[2:7]
