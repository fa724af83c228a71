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


def test_analyze_runs_the_plan_and_puts_actual_beside_estimate(client: TestClient) -> None:
    rid = make_retriever(client)
    response = client.post(f"/v1/retrievers/{rid}/execute/explain", json={"analyze": True})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["analyzed"] is True and result["status"] == "completed"
    run = client.get(f"/v1/retrievers/{rid}/executions/{result['execution_id']}").json()
    assert run["status"] == "completed"
    stats = run["stage_statistics"]["stages"]
    steps = {s["stage_name"]: s for s in result["execution_plan"]}
    assert list(steps) == ["search", "pets", "top"]
    for name, step in steps.items():  # the actual figures are the recorded run's
        actual = step["actual"]
        assert (actual["input"], actual["output"]) == (
            stats[name]["input_count"],
            stats[name]["output_count"],
        )
        assert actual["duration_ms"] == stats[name]["duration_ms"]
        assert actual["credits"] == stats[name]["metadata"]["credits"]
        estimated = step["estimated_output"]
        expected = actual["output"] / estimated if estimated else (1.0 if actual["output"] == 0 else None)
        assert step["misestimate"]["output"] == (None if expected is None else round(expected, 4))
    # without history the search is estimated at final_top_k (20) of 8 held: 8; the run found 8
    assert steps["search"]["estimated_output"] == 8 and steps["search"]["actual"]["output"] == 8
    assert steps["pets"]["actual"]["output"] == 4 and steps["top"]["actual"]["output"] == 3
    assert result["worst_misestimate"]["factor"] >= 1.0
    assert result["actual_total"]["returned"] == 3
    kept = run["explain_analyze"]  # the record keeps the analysis for the execution page
    assert [s["stage_name"] for s in kept["stages"]] == ["search", "pets", "top"]
    assert kept["stages"][0]["actual"] == steps["search"]["actual"]
    assert kept["stages"][0]["misestimate"] == steps["search"]["misestimate"]
    assert kept["worst_misestimate"] == result["worst_misestimate"]


def test_explain_without_analyze_runs_nothing(client: TestClient) -> None:
    rid = make_retriever(client)
    before = client.post(f"/v1/retrievers/{rid}/executions/list", json={}).json()["pagination"]["total"]
    for body in (None, {"analyze": False, "inputs": {}}):
        response = client.post(f"/v1/retrievers/{rid}/execute/explain", json=body)
        assert response.status_code == 200 and "analyzed" not in response.json()
    assert (
        client.post(f"/v1/retrievers/{rid}/executions/list", json={}).json()["pagination"]["total"] == before
    )
