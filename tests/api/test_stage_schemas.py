"""GET /v1/retrievers/stages against the official SDK: the ``StageParams*`` payloads of ``mixpeek``
validate against each stage's ``parameter_schema`` and are accepted as the stage's parameters.

The SDK's ``to_dict()`` always carries hosted-only keys (``natural_language: "null"``, caching knobs,
hosted models): they are listed in the schema as ignored and dropped before validation, while a key
neither the stage nor the SDK knows is still refused with a 422 naming it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jsonschema
import mixpeek.models as sdk
import pytest
from fastapi.testclient import TestClient

from helpers import TEXT_COLLECTION

R = "/v1/retrievers"
COLLECTION = TEXT_COLLECTION["collection_name"]
EMB_URI = "mixpeek://vectors@v1/emb"
SCHEMA = {"query": {"type": "text", "default": "cat"}, "v": {"type": "array", "default": [1, 0, 0, 0]}}
ROWS = [
    ("Cats purr", "a cat purrs when content", "pets", 2015),
    ("Stock picks", "markets and stocks for beginners", "finance", 2020),
    ("Kitten care", "how to feed a kitten and a cat", "pets", 2021),
    ("Bread", "baking sourdough bread at home", "food", 2017),
]
DOCS = [
    {"document_id": f"p{i + 1}", "title": title, "text": text, "category": category, "year": year,
     "vectors": {"emb": [math.cos(0.3 * i), math.sin(0.3 * i), 0.0, 0.0]}}
    for i, (title, text, category, year) in enumerate(ROWS)
]  # fmt: skip
SEARCH_PARAMS = {
    "searches": [{"feature_uri": EMB_URI, "query": {"input_mode": "vector", "value": "{{ INPUT.v }}"}}],
    "final_top_k": 10,
}

# stage_id -> the SDK model built with realistic values (some models' from_dict({}) fail on a bare
# `null` default, so the fields that hit it are given).
# Their hosted-only defaults (batch_size, inference_name, tokenizer, …) are accepted and ignored.
SDK_PAYLOADS: dict[str, Callable[[], Any]] = {
    "feature_search": lambda: sdk.StageParamsFeatureSearch.from_dict(
        {
            "searches": [
                {
                    "feature_uri": EMB_URI,
                    "query": {"input_mode": "vector", "value": "{{ INPUT.v }}"},
                    "top_k": 50,
                }
            ],
            "final_top_k": 10,
            "fusion": "rrf",
            "cache_ttl_seconds": 300,
            "hard_timeout_ms": 5000,
        }
    ),
    "sort_relevance": lambda: sdk.StageParamsSortRelevance.from_dict(
        {"score_field": "score", "direction": "desc"}
    ),
    "sort_attribute": lambda: sdk.StageParamsSortAttribute.from_dict(
        {"sort_field": "year", "direction": "asc"}
    ),
    "group_by": lambda: sdk.StageParamsGroupBy.from_dict({"group_by_field": "category", "max_per_group": 2}),
    "mmr": lambda: sdk.StageParamsMmr.from_dict(
        {"lambda": 0.5, "top_k": 3, "diversity_feature_uri": EMB_URI}
    ),
    "sample": lambda: sdk.StageParamsSample.from_dict({"count": 2, "strategy": "random", "seed": 7}),
    "aggregate": lambda: sdk.StageParamsAggregate.from_dict(
        {
            "aggregations": [{"function": "count", "alias": "n"}],
            "group_by": [{"field": "category"}],
            "limit": 10,
        }
    ),
    "document_enrich": lambda: sdk.StageParamsDocumentEnrich.from_dict(
        {"target_collection_id": COLLECTION, "source_field": "document_id", "fields_to_merge": ["title"]}
    ),
    "attribute_filter": lambda: sdk.StageParamsAttributeFilter.from_dict(
        {"field": "category", "operator": "eq", "value": "health"}
    ),
    "rerank": lambda: sdk.StageParamsRerank.from_dict(
        {
            "query": "sleep and memory",
            "document_field": "text",
            "top_k": 3,
            "inference_name": "BAAI__bge_reranker_v2_m3",
            "hard_timeout_ms": 5000,  # the SDK's from_dict fails on its own bare `null` default otherwise
        }
    ),
    "rag_prepare": lambda: sdk.StageParamsRagPrepare.from_dict(
        {
            "max_tokens": 500,
            "output_mode": "single_context",
            "content_field": "text",
            "tokenizer": "cl100k_base",
        }
    ),
    "json_transform": lambda: sdk.StageParamsJsonTransform.from_dict(
        {"template": '{"id": "{{ DOC.document_id }}", "title": {{ DOC.title | tojson }}}'}
    ),
}


def parameter_schemas(client: TestClient) -> dict[str, dict[str, Any]]:
    response = client.get(f"{R}/stages")
    assert response.status_code == 200, response.text
    return {row["stage_id"]: row["parameter_schema"] for row in response.json()}


def pipeline(stage_id: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    stage = {"stage_name": stage_id, "config": {"stage_id": stage_id, "parameters": parameters}}
    if stage_id == "feature_search":
        return [stage]
    search = {"stage_name": "search", "config": {"stage_id": "feature_search", "parameters": SEARCH_PARAMS}}
    return [search, stage]


def adhoc(client: TestClient, stages: list[dict[str, Any]]) -> Any:
    body = {"collection_identifiers": [COLLECTION], "input_schema": SCHEMA, "stages": stages}
    return client.post(f"{R}/execute", json=body)


@pytest.fixture
def papers(client: TestClient) -> TestClient:
    assert client.post("/v1/collections", json=TEXT_COLLECTION).status_code == 200
    response = client.post(f"/v1/collections/{COLLECTION}/documents/batch", json={"documents": DOCS})
    assert response.status_code == 200, response.text
    return client


def test_every_stage_with_an_sdk_model_is_covered(client: TestClient) -> None:
    listed = parameter_schemas(client)
    assert set(SDK_PAYLOADS) <= set(listed)
    for schema in listed.values():
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("stage_id", sorted(SDK_PAYLOADS))
def test_the_sdk_payload_validates_against_the_listed_schema(client: TestClient, stage_id: str) -> None:
    payload = SDK_PAYLOADS[stage_id]().to_dict()
    jsonschema.validate(payload, parameter_schemas(client)[stage_id])


@pytest.mark.parametrize("stage_id", sorted(SDK_PAYLOADS))
def test_the_sdk_payload_is_accepted_by_an_execution_and_a_retriever(
    papers: TestClient, stage_id: str
) -> None:
    payload = SDK_PAYLOADS[stage_id]().to_dict()
    executed = adhoc(papers, pipeline(stage_id, payload))
    assert executed.status_code == 200, executed.text
    body = {
        "retriever_name": f"sdk-{stage_id}".replace("_", "-"),
        "collection_identifiers": [COLLECTION],
        "input_schema": SCHEMA,
        "stages": pipeline(stage_id, payload),
    }
    created = papers.post(R, json=body)
    assert created.status_code == 200, created.text


@pytest.mark.parametrize("stage_id", sorted(SDK_PAYLOADS))
def test_an_unknown_key_is_still_refused_naming_it(papers: TestClient, stage_id: str) -> None:
    payload = {**SDK_PAYLOADS[stage_id]().to_dict(), "bogus": 1}
    response = adhoc(papers, pipeline(stage_id, payload))
    assert response.status_code == 422, response.text
    assert "bogus" in response.text
    with pytest.raises(jsonschema.ValidationError, match="bogus"):
        jsonschema.validate(payload, parameter_schemas(papers)[stage_id])
