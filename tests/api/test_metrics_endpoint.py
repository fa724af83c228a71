"""GET /metrics: the Prometheus text format, counters that move by exactly what a test did, the storage
gauges, and who may read it (``metrics_access``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from helpers import ADMIN_KEY, TEXT_COLLECTION, bearer, settings_for
from siftline.api.app import create_app
from siftline.api.hot import HotPaths
from siftline.api.routes.metrics import is_loopback
from siftline.config import Settings
from siftline.features.embedder import TextEmbedder
from siftline.service.container import Services

R = "/v1/retrievers"
SAVED_ROUTE = "/v1/retrievers/{retriever_id}/execute"
ADHOC_ROUTE = "/v1/retrievers/execute"
COLLECTION = TEXT_COLLECTION["collection_name"]
DENSE = "mixpeek://text_extractor@v1/all_minilm_l6_v2"
BM25 = "mixpeek://text_extractor@v1/bm25"
EMB = "mixpeek://vectors@v1/emb"
STAGE_IDS = {"search": "feature_search", "cap": "limit"}
SCHEMA = {"q": {"type": "text", "default": "cat"}}
STAGES = [
    {
        "stage_name": "search",
        "stage_type": "filter",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [
                    {"feature_uri": EMB, "query": {"input_mode": "vector", "value": [1, 0, 0, 0]}},
                    {"feature_uri": BM25, "query": {"input_mode": "text", "value": "{{ INPUT.q }}"}},
                    {"feature_uri": DENSE, "query": {"input_mode": "text", "value": "{{ INPUT.q }}"}},
                ],
                "final_top_k": 20,
            },
        },
    },
    {
        "stage_name": "cap",
        "stage_type": "reduce",
        "config": {"stage_id": "limit", "parameters": {"limit": 4}},
    },
]
TEXTS = ["a cat on a mat", "a dog in the park", "cat food reviews", "birds at dawn", "the cat and the dog"]
DOCS = [
    {"document_id": f"d{i}", "title": f"doc {i}", "text": text, "category": "pets",
     "vectors": {"emb": [1.0, 0.1 * i, 0.0, 0.0]}}
    for i, text in enumerate(TEXTS)
]  # fmt: skip

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def load(client: TestClient, documents: list[dict[str, Any]] = DOCS, namespace: str | None = None) -> None:
    headers = {"X-Namespace": namespace} if namespace else {}
    ok(client.post("/v1/collections", json=TEXT_COLLECTION, headers=headers))
    ok(
        client.post(
            f"/v1/collections/{COLLECTION}/documents/batch", json={"documents": documents}, headers=headers
        )
    )


@contextmanager
def app_client(
    settings: Settings, embedder: TextEmbedder, address: tuple[str, int] = ("testclient", 50000)
) -> Iterator[TestClient]:
    """An in-process client whose ASGI scope carries ``address`` as the client's."""
    services = Services.open(settings, embedder)
    try:
        app = create_app(settings, services)
        with TestClient(app, raise_server_exceptions=False, client=address) as client:
            yield client
    finally:
        services.close()


def envelope(response: Any, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["success"] is False and payload["status"] == status
    assert payload["error"]["type"] == error_type
    return payload["error"]


# -- the format -----------------------------------------------------------------------------------------


def test_metrics_parse_as_prometheus_text_with_every_family(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"] == CONTENT_TYPE_LATEST
    families = {f.name: f.type for f in text_string_to_metric_families(response.text)}
    assert families == {
        "siftline_http_requests": "counter",
        "siftline_http_request_duration_seconds": "histogram",
        "siftline_executions": "counter",
        "siftline_execution_duration_seconds": "histogram",
        "siftline_stage_duration_seconds": "histogram",
        "siftline_stage_documents_in": "counter",
        "siftline_stage_documents_out": "counter",
        "siftline_searches": "counter",
        "siftline_cache_lookups": "counter",
        "siftline_credits_used": "counter",
        "siftline_budget_stops": "counter",
        "siftline_optimizer_rules_applied": "counter",
        "siftline_execution_warnings": "counter",
        "siftline_collections": "gauge",
        "siftline_documents": "gauge",
        "siftline_vectors_pending": "gauge",
        "siftline_index_builds_running": "gauge",
    }
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


# -- counters -------------------------------------------------------------------------------------------


def retriever(name: str, **fields: Any) -> dict[str, Any]:
    return {"retriever_name": name, "collection_identifiers": [COLLECTION], "input_schema": SCHEMA,
            "stages": STAGES, **fields}  # fmt: skip


ADHOC = {"collection_identifiers": [COLLECTION], "input_schema": SCHEMA, "stages": STAGES}


def test_counters_move_by_exactly_the_executions_stages_and_cache_lookups_performed(
    client: TestClient,
) -> None:
    load(client)
    cached = ok(client.post(R, json=retriever("cached", cache_config={"enabled": True})))
    ok(client.post(R, json=retriever("plain")))
    hot_before = HotPaths.answered
    before = scrape(client)

    responses = [
        ok(client.post(f"{R}/cached/execute", json={"inputs": {"q": "cat"}})),  # miss
        ok(client.post(f"{R}/cached/execute", json={"inputs": {"q": "cat"}})),  # the same: a hit
        ok(client.post(f"{R}/cached/execute", json={"inputs": {"q": "dog"}})),  # miss
        ok(client.post(f"{R}/plain/execute", json={"budget_limits": {"max_credits": 0.000001}})),
        ok(client.post(f"{R}/execute", json={**ADHOC, "inputs": {"q": "birds"}})),
    ]
    bad_json = {"content": b"{not json", "headers": {"content-type": "application/json"}}
    assert client.post(f"{R}/cached/execute", **bad_json).status_code == 422  # routed by FastAPI
    assert client.get("/v1/no/such/route").status_code == 404
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return delta(before, after, name, **labels)

    # what the responses say happened
    assert [r["cache_status"] for r in responses] == ["miss", "hit", "miss", "bypass", "bypass"]
    assert [r["status"] for r in responses] == ["completed", "completed", "completed", "failed", "completed"]
    assert responses[3]["error"].startswith("Budget exceeded")
    ran = [r for r in responses if r["cache_status"] != "hit"]  # a hit runs no stage
    stages = [(STAGE_IDS[name], s) for r in ran for name, s in r["stage_statistics"]["stages"].items()]
    searches = [q for _, s in stages for q in s["metadata"].get("searches", [])]

    assert moved("siftline_executions_total", mode="saved", status="completed") == 3
    assert moved("siftline_executions_total", mode="saved", status="failed") == 1
    assert moved("siftline_executions_total", mode="adhoc", status="completed") == 1
    assert moved("siftline_executions_total", mode="adhoc", status="failed") == 0
    assert moved("siftline_execution_duration_seconds_count", mode="saved", status="completed") == 3
    assert moved("siftline_budget_stops_total", limit="credits") == 1
    assert moved("siftline_budget_stops_total", limit="time") == 0

    runs = Counter(stage_id for stage_id, _ in stages)
    assert runs == {"feature_search": 3, "limit": 3}  # 3 runs of 2 stages; the budget stopped one before any
    for stage_id in ("feature_search", "limit"):
        mine = [s for i, s in stages if i == stage_id]
        assert moved("siftline_stage_duration_seconds_count", stage_id=stage_id) == runs[stage_id]
        assert moved("siftline_stage_documents_in_total", stage_id=stage_id) == sum(
            s["input_count"] for s in mine
        )
        assert moved("siftline_stage_documents_out_total", stage_id=stage_id) == sum(
            s["output_count"] for s in mine
        )
    paths = Counter(q["path"] for q in searches)
    assert paths == {"exact": 6, "bm25": 3}  # two dense searches and one BM25 search a run
    for path, count in paths.items():
        assert moved("siftline_searches_total", path=path) == count

    assert moved("siftline_cache_lookups_total", cache="result", outcome="hit") == 1
    assert moved("siftline_cache_lookups_total", cache="result", outcome="miss") == 2
    stage_cache = Counter("hit" if s["stage_cache_hit"] else "miss" for _, s in stages)
    embedding = Counter(q["embedding_cache"] for q in searches if "embedding_cache" in q)
    assert sum(embedding.values()) == 3  # one text embedding a run
    for outcome in ("hit", "miss"):
        assert moved("siftline_cache_lookups_total", cache="stage", outcome=outcome) == stage_cache[outcome]
        assert moved("siftline_cache_lookups_total", cache="embedding", outcome=outcome) == embedding[outcome]

    summaries = [r.get("optimization_summary") or {} for r in ran]
    for rule, count in Counter(rule for s in summaries for rule in s.get("rules_applied", [])).items():
        assert moved("siftline_optimizer_rules_applied_total", rule=rule) == count
    credits = sum(r["stage_statistics"]["credits_used"] for r in responses)
    assert credits > 0 and moved("siftline_credits_used_total") == pytest.approx(credits, abs=1e-9)
    assert moved("siftline_execution_warnings_total") == sum(len(r["warnings"]) for r in responses)

    # HTTP, by route template: also the requests HotPaths answered without FastAPI's routing
    assert HotPaths.answered > hot_before
    assert moved("siftline_http_requests_total", method="POST", route=SAVED_ROUTE, status="200") == 4
    assert (
        moved("siftline_http_request_duration_seconds_count", method="POST", route=SAVED_ROUTE, status="200")
        == 4
    )
    assert moved("siftline_http_requests_total", method="POST", route=SAVED_ROUTE, status="422") == 1
    assert moved("siftline_http_requests_total", method="POST", route=ADHOC_ROUTE, status="200") == 1
    assert moved("siftline_http_requests_total", method="GET", route="unmatched", status="404") == 1
    routes = {dict(labels)["route"] for name, labels in after if name == "siftline_http_requests_total"}
    assert routes >= {SAVED_ROUTE, ADHOC_ROUTE, "/v1/retrievers", "/v1/collections", "unmatched", "/metrics"}
    assert not any(cached["retriever_id"] in r or "cached" in r or "/no/such" in r for r in routes)


def test_an_unusual_method_is_counted_as_other(client: TestClient) -> None:
    before = scrape(client)
    client.request("BREW", "/v1/health")
    after = scrape(client)
    assert (
        delta(before, after, "siftline_http_requests_total", method="other", route="/v1/health", status="405")
        == 1
    )


# -- gauges ---------------------------------------------------------------------------------------------


def test_gauges_count_the_collections_and_documents_created(client: TestClient) -> None:
    load(client)
    ok(client.post("/v1/namespaces", json={"namespace_name": "other"}))
    load(client, DOCS[:2], namespace="other")
    ok(client.post("/v1/collections", json={**TEXT_COLLECTION, "collection_name": "empty"}))

    samples = scrape(client)

    assert samples[("siftline_collections", frozenset())] == 3
    assert samples[("siftline_documents", frozenset())] == len(DOCS) + 2
    assert samples[("siftline_vectors_pending", frozenset())] == 0  # far below the HNSW threshold
    assert samples[("siftline_index_builds_running", frozenset())] == 0


# -- access ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host, loopback",
    [("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("::ffff:127.0.0.1", True), ("testclient", True),
     ("10.0.0.8", False), ("203.0.113.7", False), ("::ffff:10.0.0.8", False), ("2001:db8::1", False),
     ("localhost", False), ("", False), (None, False)],
)  # fmt: skip
def test_what_counts_as_loopback(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_loopback_access_serves_local_clients_and_refuses_others_saying_how_to_change_it(
    tmp_path: Path, embedder: TextEmbedder
) -> None:
    settings = settings_for(tmp_path / "data")
    assert settings.metrics_access == "loopback"
    for host in ("127.0.0.1", "::1"):
        with app_client(settings_for(tmp_path / host.replace(":", "_")), embedder, (host, 40000)) as local:
            assert local.get("/metrics").status_code == 200  # no key needed
    with app_client(settings, embedder, ("203.0.113.7", 40000)) as remote:
        error = envelope(remote.get("/metrics", headers=bearer(ADMIN_KEY)), 403, "ForbiddenError")
        assert "SIFTLINE_METRICS_ACCESS=key" in error["message"] and "203.0.113.7" in error["message"]
        assert remote.get("/v1/health").status_code == 200  # the rest of the API is unaffected


def test_key_access_needs_a_key_without_namespace_limits(tmp_path: Path, embedder: TextEmbedder) -> None:
    settings = settings_for(tmp_path / "keyed", metrics_access="key")
    with app_client(settings, embedder, ("203.0.113.7", 40000)) as remote:
        envelope(remote.get("/metrics"), 401, "UnauthorizedError")
        envelope(
            remote.get("/metrics", headers=bearer("sk_not_a_real_key_000000000")), 401, "UnauthorizedError"
        )
        ns = remote.post("/v1/namespaces", json={"namespace_name": "team"}, headers=bearer(ADMIN_KEY))
        ok(ns)
        _, limited = _limited_key(remote, ns.json()["namespace_id"])
        error = envelope(remote.get("/metrics", headers=bearer(limited)), 403, "ForbiddenError")
        assert "namespace" in error["message"]
        served = remote.get("/metrics", headers=bearer(ADMIN_KEY))  # from any address
        assert served.status_code == 200 and "siftline_executions_total" in served.text


def _limited_key(client: TestClient, namespace_id: str) -> tuple[str, str]:
    from siftline.service import keys

    services: Services = client.app.state.services  # type: ignore[attr-defined]
    key, secret = keys.create_key(services.storage, "limited", [namespace_id])
    return key.key_id, secret


def test_open_access_serves_anyone(tmp_path: Path, embedder: TextEmbedder) -> None:
    with app_client(
        settings_for(tmp_path / "data", metrics_access="open"), embedder, ("203.0.113.7", 1)
    ) as remote:
        assert remote.get("/metrics").status_code == 200


def test_off_removes_the_route_and_counts_nothing(tmp_path: Path, embedder: TextEmbedder) -> None:
    with app_client(settings_for(tmp_path / "data", metrics_access="off"), embedder) as local:
        envelope(local.get("/metrics"), 404, "NotFoundError")
        assert local.get("/v1/health").status_code == 200
        services: Services = local.app.state.services  # type: ignore[attr-defined]
        assert b"siftline_http_requests_total{" not in services.telemetry.render()


def test_a_bad_metrics_access_value_stops_start_up() -> None:
    from siftline.config import load_settings
    from siftline.errors import ConfigError

    with pytest.raises(ConfigError, match="SIFTLINE_METRICS_ACCESS"):
        load_settings(metrics_access="public")


def test_a_request_refused_before_routing_is_counted_under_its_route(
    tmp_path: Path, embedder: TextEmbedder
) -> None:
    settings = settings_for(tmp_path / "data", max_request_bytes=2048)
    with app_client(settings, embedder) as local:
        local.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        before = scrape(local)
        too_large = {**TEXT_COLLECTION, "description": "x" * 4096}
        envelope(local.post("/v1/collections", json=too_large), 400, "BadRequestError")  # by BodyLimit
        after = scrape(local)
    assert (
        delta(
            before,
            after,
            "siftline_http_requests_total",
            method="POST",
            route="/v1/collections",
            status="400",
        )
        == 1
    )
