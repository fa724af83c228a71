"""Stage caches: the query-embedding LRU, ``cache_behavior`` per stage, ``cache_config.cache_stage_names``,
and runs that are never cached (non-deterministic pipelines)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from helpers import DENSE, PETS

TEXT = {
    "collection_name": "pets",
    "feature_extractor": {
        "feature_extractor_name": "text_extractor",
        "version": "v1",
        "input_mappings": {"text": "text"},
    },
    "vector_configs": [{"name": "emb", "dimension": 3, "metric": "cosine"}],
    "payload_indexes": [{"field_name": "kind", "type": "keyword"}],
}
VEC = "mixpeek://vectors@v1/emb"


@pytest.fixture
def pets(client: TestClient) -> TestClient:
    assert client.post("/v1/collections", json=TEXT).status_code == 200
    docs = [{**d, "vectors": {"emb": [1.0, float(i), 0.5]}} for i, d in enumerate(PETS)]
    assert client.post("/v1/collections/pets/documents/batch", json={"documents": docs}).status_code == 200
    return client


def text_search(name: str = "search", **params: Any) -> dict[str, Any]:
    return {
        "stage_name": name,
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [{"feature_uri": DENSE, "query": "{{INPUT.q}}", "top_k": 10}],
                **params,
            },
        },
    }


def vector_search(name: str = "search", **params: Any) -> dict[str, Any]:
    search = {"feature_uri": VEC, "query": {"input_mode": "vector", "value": [1.0, 2.0, 0.5]}, "top_k": 10}
    return {
        "stage_name": name,
        "config": {"stage_id": "feature_search", "parameters": {"searches": [search], **params}},
    }


def run(client: TestClient, stages: list[dict[str, Any]], **body: Any) -> tuple[dict[str, Any], str]:
    response = client.post(
        "/v1/retrievers/execute",
        json={
            "collection_identifiers": ["pets"],
            "stages": stages,
            "input_schema": {"q": {"type": "text"}},
            **body,
        },
    )
    assert response.status_code == 200, response.text
    return response.json(), response.headers["X-Cache"]


def stats(payload: dict[str, Any], name: str) -> dict[str, Any]:
    result: dict[str, Any] = payload["stage_statistics"]["stages"][name]
    return result


def test_a_repeated_query_text_is_embedded_once(pets: TestClient) -> None:
    first, _ = run(pets, [text_search()], inputs={"q": "a sleepy kitten"})
    second, cache = run(pets, [text_search()], inputs={"q": "a sleepy kitten"})
    assert cache == "BYPASS"  # no cache_config: the result cache is off, the embedding cache is not
    assert stats(first, "search")["metadata"]["searches"][0]["embedding_cache"] == "miss"
    assert stats(first, "search")["stage_cache_hit"] is False
    assert stats(second, "search")["metadata"]["searches"][0]["embedding_cache"] == "hit"
    assert stats(second, "search")["stage_cache_hit"] is True
    assert [d["document_id"] for d in second["documents"]] == [d["document_id"] for d in first["documents"]]
    record = pets.get(f"/v1/retrievers/executions/{second['execution_id']}").json()
    assert record["cache_hit_rate"] == 1.0


def test_cache_behavior_disabled_and_skip_cache_embed_afresh(pets: TestClient) -> None:
    run(pets, [text_search()], inputs={"q": "markets fell"})
    disabled, _ = run(pets, [text_search(cache_behavior="disabled")], inputs={"q": "markets fell"})
    assert stats(disabled, "search")["metadata"]["searches"][0]["embedding_cache"] == "miss"
    skipped, cache = run(pets, [text_search()], inputs={"q": "markets fell"}, skip_cache=True)
    assert cache == "BYPASS"
    assert stats(skipped, "search")["stage_cache_hit"] is False


def test_an_aggressive_stage_serves_its_output_until_a_write(pets: TestClient) -> None:
    stages = [
        vector_search(cache_behavior="aggressive", final_top_k=4),
        {"stage_name": "top", "config": {"stage_id": "limit", "parameters": {"limit": 2}}},
    ]
    first, _ = run(pets, stages)
    second, _ = run(pets, stages)
    assert stats(first, "search")["stage_cache_hit"] is False
    hit = stats(second, "search")
    assert hit["stage_cache_hit"] is True and isinstance(hit["cached_at"], float)
    assert hit["metadata"]["credits"] == 0
    assert stats(second, "top")["stage_cache_hit"] is False
    assert second["documents"] == first["documents"]
    record = pets.get(f"/v1/retrievers/executions/{second['execution_id']}").json()
    assert record["cache_hit_rate"] == 0.5
    # a write to the collection: the stage runs again and sees it
    new = {"document_id": "parrot", "text": "A parrot", "kind": "pet", "vectors": {"emb": [1.0, 2.0, 0.5]}}
    assert pets.post("/v1/collections/pets/documents", json=new).status_code == 200
    third, _ = run(pets, stages)
    assert stats(third, "search")["stage_cache_hit"] is False
    assert "parrot" in [d["document_id"] for d in third["documents"]]


def test_a_stage_cache_ttl_and_behavior_are_validated(pets: TestClient) -> None:
    for params, field in (
        ({"cache_behavior": "sometimes"}, "cache_behavior"),
        ({"cache_ttl_seconds": -1}, "cache_ttl_seconds"),
    ):
        response = pets.post(
            "/v1/retrievers/execute",
            json={"collection_identifiers": ["pets"], "stages": [vector_search(**params)]},
        )
        assert response.status_code == 422
        assert response.json()["error"]["details"]["errors"][0]["loc"][-1] == field


def test_cache_stage_names_reuses_a_stage_across_pages(pets: TestClient) -> None:
    body = {
        "retriever_name": "paged",
        "collection_identifiers": ["pets"],
        "stages": [
            vector_search(final_top_k=6),
            {"stage_name": "kind", "config": {"stage_id": "sort_attribute", "parameters": {"field": "kind"}}},
        ],
        "cache_config": {"cache_stage_names": ["search"]},
    }
    created = pets.post("/v1/retrievers", json=body)
    assert created.status_code == 200, created.text
    rid = created.json()["retriever_id"]
    page1 = pets.post(
        f"/v1/retrievers/{rid}/execute", json={"pagination": {"method": "offset", "page_size": 2}}
    )
    page2 = pets.post(
        f"/v1/retrievers/{rid}/execute",
        json={"pagination": {"method": "offset", "page_size": 2, "page_number": 2}},
    )
    assert page1.headers["X-Cache"] == page2.headers["X-Cache"] == "BYPASS"  # stage outputs, not the result
    assert stats(page1.json(), "search")["stage_cache_hit"] is False
    assert stats(page2.json(), "search")["stage_cache_hit"] is True
    assert stats(page2.json(), "kind")["stage_cache_hit"] is False
    ids = [d["document_id"] for d in page1.json()["documents"] + page2.json()["documents"]]
    assert len(set(ids)) == 4


def test_a_pipeline_that_samples_without_a_seed_is_never_served_from_cache(pets: TestClient) -> None:
    stages = [
        vector_search(),
        {"stage_name": "pick", "config": {"stage_id": "sample", "parameters": {"count": 2}}},
    ]
    for _ in range(2):
        payload, cache = run(pets, stages, cache_config={"enabled": True})
        assert cache == "BYPASS"
        assert "seed" in payload["cache_bypass_reason"]
    seeded = [
        vector_search(),
        {"stage_name": "pick", "config": {"stage_id": "sample", "parameters": {"count": 2, "seed": 3}}},
    ]
    run(pets, seeded, cache_config={"enabled": True})
    _, cache = run(pets, seeded, cache_config={"enabled": True})
    assert cache == "HIT"
