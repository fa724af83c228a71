"""``POST /v1/retrievers/{id}/execute/explain``: the plan without running it, the optimizer's plan included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from helpers import served, settings_for
from siftline.features.embedder import TextEmbedder

VEC = "mixpeek://vectors@v1/emb"
STAGES = [
    {
        "stage_name": "search",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [
                    {"feature_uri": VEC, "query": {"input_mode": "vector", "value": [1, 0]}, "top_k": 50}
                ],
                "final_top_k": 20,
            },
        },
    },
    {
        "stage_name": "pets",
        "config": {"stage_id": "attribute_filter", "parameters": {"field": "kind", "value": "pet"}},
    },
    {"stage_name": "top", "config": {"stage_id": "limit", "parameters": {"limit": 3}}},
]


def make_retriever(client: TestClient) -> str:
    collection = {
        "collection_name": "c",
        "vector_configs": [{"name": "emb", "dimension": 2, "metric": "cosine"}],
    }
    assert client.post("/v1/collections", json=collection).status_code == 200
    docs = [
        {"document_id": f"d{i}", "kind": "pet" if i % 2 else "car", "vectors": {"emb": [1, i]}}
        for i in range(8)
    ]
    assert client.post("/v1/collections/c/documents/batch", json={"documents": docs}).status_code == 200
    created = client.post(
        "/v1/retrievers", json={"retriever_name": "r", "collection_identifiers": ["c"], "stages": STAGES}
    )
    assert created.status_code == 200, created.text
    retriever_id: str = created.json()["retriever_id"]
    return retriever_id


def explain(client: TestClient, retriever_id: str) -> dict[str, Any]:
    response = client.post(f"/v1/retrievers/{retriever_id}/execute/explain")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_explain_shows_the_optimized_plan_and_what_each_rule_did(client: TestClient) -> None:
    plan = explain(client, make_retriever(client))
    assert plan["optimization_applied"] is True
    assert plan["optimization_summary"]["rules_applied"] == ["push_down_filters", "limit_push_down"]
    assert plan["optimization_summary"]["optimized_stage_count"] == 1
    assert plan["optimized_plan"] == [
        {
            "stage_name": "search",
            "stage_id": "feature_search",
            "absorbed": [
                {"stage_name": "pets", "stage_id": "attribute_filter", "rule": "push_down_filters"},
                {"stage_name": "top", "stage_id": "limit", "rule": "limit_push_down"},
            ],
            "post_filters_by_storage": False,
        }
    ]
    assert [s["stage_name"] for s in plan["execution_plan"]] == ["search", "pets", "top"]  # the user's stages


def test_explain_without_the_optimizer_keeps_the_stages_as_written(
    tmp_path: Path, embedder: TextEmbedder
) -> None:
    with served(settings_for(tmp_path / "data", optimizer_enabled=False), embedder) as (client, _):
        plan = explain(client, make_retriever(client))
        assert plan["optimization_applied"] is False
        assert plan["optimization_summary"] is None
        assert [s["stage_name"] for s in plan["optimized_plan"]] == ["search", "pets", "top"]
        executed = client.post("/v1/retrievers/r/execute", json={}).json()
        assert executed["optimization_applied"] is False
