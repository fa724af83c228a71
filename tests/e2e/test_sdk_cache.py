"""Acceptance 3 of issue 10, through the official SDK (mixpeek 1.3.783) against a real server: a cache hit's
record parses as the SDK's ExecutionDetail with ``cached_at`` set, credits 0 and ``stage_cache_hit`` on
every stage; a run the optimizer rewrote parses with ``optimization_applied`` and
``optimization_summary["rules_applied"]``.

The SDK's CreateRetrieverRequest has no ``cache_config``; its PatchRetrieverRequest carries it as an
additional property, which is how an SDK user turns caching on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mixpeek
import pytest
from mixpeek.api.retrievers_api import RetrieversApi
from mixpeek.models.create_retriever_request import CreateRetrieverRequest
from mixpeek.models.execute_retriever_request import ExecuteRetrieverRequest
from mixpeek.models.execution_detail import ExecutionDetail
from mixpeek.models.patch_retriever_request import PatchRetrieverRequest

from siftline.testing.server import Server, start_with_key

pytestmark = pytest.mark.slow

EMB = "mixpeek://vectors@v1/emb"
DOCS = [
    {"document_id": "cat", "kind": "pet", "year": 2021, "vectors": {"emb": [1.0, 0.1, 0.0, 0.0]}},
    {"document_id": "dog", "kind": "pet", "year": 2023, "vectors": {"emb": [1.0, 0.3, 0.0, 0.0]}},
    {"document_id": "stocks", "kind": "finance", "year": 2022, "vectors": {"emb": [1.0, 0.2, 0.0, 0.0]}},
    {"document_id": "rates", "kind": "finance", "year": 2020, "vectors": {"emb": [0.0, 1.0, 0.0, 0.0]}},
    {"document_id": "kitten", "kind": "pet", "year": 2019, "vectors": {"emb": [1.0, 0.5, 0.0, 0.0]}},
    {"document_id": "parrot", "kind": "pet", "year": 2018, "vectors": {"emb": [0.0, 0.0, 1.0, 0.0]}},
]
SCHEMA = {"v": {"type": "array", "default": [1, 0, 0, 0]}}
SEARCH = {
    "stage_name": "search",
    "stage_type": "filter",
    "config": {
        "stage_id": "feature_search",
        "parameters": {
            "searches": [
                {"feature_uri": EMB, "query": {"input_mode": "vector", "value": "{{INPUT.v}}"}, "top_k": 50}
            ],
            "final_top_k": 50,
        },
    },
}
PETS = {
    "stage_name": "pets",
    "stage_type": "filter",
    "config": {
        "stage_id": "attribute_filter",
        "parameters": {"field": "kind", "operator": "eq", "value": "pet"},
    },
}
TOP2 = {
    "stage_name": "top2",
    "stage_type": "reduce",
    "config": {"stage_id": "limit", "parameters": {"limit": 2}},
}
CACHE = {"enabled": True, "ttl_seconds": 600}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    data_dir: Path = tmp_path_factory.mktemp("sdk-cache") / "data"
    srv, key = start_with_key(data_dir)
    try:
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            created = http.post(
                "/v1/collections",
                json={
                    "collection_name": "notes",
                    "vector_configs": [{"name": "emb", "dimension": 4, "metric": "cosine"}],
                    "payload_indexes": [{"field_name": "kind", "type": "keyword"}],
                },
            )
            assert created.status_code == 200, created.text
            loaded = http.post("/v1/collections/notes/documents/batch", json={"documents": DOCS})
            assert loaded.status_code == 200, loaded.text
        yield srv, key
    finally:
        srv.stop()


def create(api: RetrieversApi, name: str, stages: list[dict[str, Any]]) -> str:
    request = CreateRetrieverRequest.from_dict(
        {
            "retriever_name": name,
            "collection_identifiers": ["notes"],
            "input_schema": SCHEMA,
            "stages": stages,
        }
    )
    assert request is not None
    created = api.create_retriever(request)
    assert created.retriever_id
    return created.retriever_id


def execute(api: RetrieversApi, retriever_id: str) -> Any:
    request = ExecuteRetrieverRequest.from_dict({"inputs": {"v": [1, 0, 0, 0]}, "limit": 10})
    assert request is not None
    return api.execute_retriever(retriever_id, request)


def raw_detail(api: RetrieversApi, retriever_id: str, execution_id: str) -> ExecutionDetail:
    """The record as JSON off the wire, parsed by the SDK model itself (from_json)."""
    response = api.get_execution_retrievers_without_preload_content(retriever_id, execution_id)
    assert response.status == 200
    detail = ExecutionDetail.from_json(response.data.decode())
    assert detail is not None
    return detail


def test_a_cache_hit_reads_back_as_the_sdks_execution_detail(
    api_client: mixpeek.ApiClient, server: tuple[Server, str]
) -> None:
    api = RetrieversApi(api_client)
    retriever_id = create(api, "cached", [SEARCH, PETS, TOP2])
    patch = PatchRetrieverRequest.from_dict({"cache_config": CACHE})
    assert patch is not None
    api.patch_retriever(retriever_id, patch)
    srv, key = server
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        stored = http.get(f"/v1/retrievers/{retriever_id}")
    assert stored.status_code == 200 and stored.json()["cache_config"]["ttl_seconds"] == 600

    first = execute(api, retriever_id)
    second = execute(api, retriever_id)
    assert first.status == second.status == "completed"
    assert first.cache_hit is False and second.cache_hit is True
    assert second.execution_id != first.execution_id
    assert second.documents == first.documents
    assert [d["document_id"] for d in second.documents] == ["cat", "dog"]

    for detail in (api.get_execution_retrievers(retriever_id, second.execution_id),
                   raw_detail(api, retriever_id, second.execution_id)):  # fmt: skip
        assert isinstance(detail, ExecutionDetail)
        assert detail.execution_id == second.execution_id and detail.status == "completed"
        assert isinstance(detail.cached_at, float) and detail.cached_at > 0
        assert detail.cached_at == second.cached_at
        assert detail.documents == first.documents
        assert detail.stage_statistics is not None and detail.stage_statistics.stages is not None
        assert detail.stage_statistics.credits_used == 0
        assert detail.budget is not None and detail.budget["credits_used"] == 0
        assert list(detail.stage_statistics.stages) == ["search", "pets", "top2"]
        for name, stage in detail.stage_statistics.stages.items():
            assert stage.stage_cache_hit is True, name
            assert stage.cached_at is not None, name

    missed = raw_detail(api, retriever_id, first.execution_id)
    assert missed.cached_at is None
    assert missed.stage_statistics is not None and missed.stage_statistics.credits_used > 0


def test_an_optimized_run_reads_back_with_its_optimization_summary(
    api_client: mixpeek.ApiClient, server: tuple[Server, str]
) -> None:
    api = RetrieversApi(api_client)
    retriever_id = create(api, "optimized", [SEARCH, PETS, TOP2])

    result = execute(api, retriever_id)
    assert result.status == "completed" and result.optimization_applied is True
    detail = raw_detail(api, retriever_id, result.execution_id)
    assert detail.optimization_applied is True
    summary = detail.optimization_summary
    assert summary is not None and summary["rules_applied"], summary
    assert summary["original_stage_count"] == 3
    assert [d["document_id"] for d in detail.documents or []] == ["cat", "dog"]
    assert detail.stage_statistics is not None and list(detail.stage_statistics.stages or {}) == [
        "search",
        "pets",
        "top2",
    ]
    assert api.get_execution_retrievers(retriever_id, result.execution_id).optimization_applied is True

    srv, key = server
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        plain = http.post(
            f"/v1/retrievers/{retriever_id}/execute",
            json={"inputs": {"v": [1, 0, 0, 0]}, "limit": 10, "optimize": False},
        )
    assert plain.status_code == 200, plain.text
    unoptimized = ExecutionDetail.from_dict(plain.json())
    assert unoptimized is not None and unoptimized.optimization_applied is False
    assert unoptimized.optimization_summary is None
    assert unoptimized.documents == detail.documents


def test_skip_cache_through_the_sdk_runs_fresh(api_client: mixpeek.ApiClient) -> None:
    """The SDK offers skip_cache in the request body and as the method's own argument (a query parameter,
    "if either source is true, the cache is skipped"): both run afresh instead of answering from cache."""
    api = RetrieversApi(api_client)
    retriever_id = create(api, "skippable", [SEARCH, PETS, TOP2])
    patch = PatchRetrieverRequest.from_dict({"cache_config": CACHE})
    assert patch is not None
    api.patch_retriever(retriever_id, patch)
    first = execute(api, retriever_id)
    assert execute(api, retriever_id).cache_hit is True

    in_body = ExecuteRetrieverRequest.from_dict(
        {"inputs": {"v": [1, 0, 0, 0]}, "limit": 10, "skip_cache": True}
    )
    assert in_body is not None
    fresh = api.execute_retriever(retriever_id, in_body)
    assert fresh.cache_hit is False and fresh.cached_at is None
    assert fresh.budget is not None and fresh.budget["credits_used"] > 0
    assert fresh.documents == first.documents

    as_argument = api.execute_retriever(
        retriever_id,
        ExecuteRetrieverRequest.from_dict({"inputs": {"v": [1, 0, 0, 0]}, "limit": 10}),
        skip_cache=True,
    )
    assert as_argument.cache_hit is False and as_argument.cached_at is None
    assert as_argument.documents == first.documents
