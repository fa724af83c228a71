"""Multi-stage retrievers from the wider catalogue, created and executed through the official SDK on a
real server: feature_search → deduplicate → mmr → aggregate, and
feature_search → document_enrich → json_transform → rag_prepare."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import mixpeek
import pytest
from mixpeek.api.retrievers_api import RetrieversApi
from mixpeek.models.create_retriever_request import CreateRetrieverRequest
from mixpeek.models.execute_retriever_request import ExecuteRetrieverRequest

from siftline.testing.server import start_with_key

pytestmark = pytest.mark.slow

DENSE = "mixpeek://text_extractor@v1/all_minilm_l6_v2"
PAPERS = [
    {"document_id": "p1", "title": "Vitamin D and bone density", "text": "Vitamin D improves bone density.",
     "topic": "nutrition", "venue": "v1", "year": 2020},
    {"document_id": "p1-copy", "title": "Vitamin D and bone density", "text": "Vitamin D improves bone density.",
     "topic": "nutrition", "venue": "v1", "year": 2020},
    {"document_id": "p2", "title": "Calcium intake in adults", "text": "Calcium and vitamin D for bones.",
     "topic": "nutrition", "venue": "v2", "year": 2021},
    {"document_id": "p3", "title": "Sleep and memory", "text": "Sleep consolidates memory in adults.",
     "topic": "neuro", "venue": "v1", "year": 2019},
    {"document_id": "p4", "title": "Exercise and bones", "text": "Weight-bearing exercise strengthens bone.",
     "topic": "sport", "venue": "v3", "year": 2022},
]  # fmt: skip
VENUES = [
    {"document_id": "v1", "name": "Journal of Bones", "country": "NL"},
    {"document_id": "v2", "name": "Nutrition Letters", "country": "FR"},
    {"document_id": "v3", "name": "Sports Medicine", "country": "US"},
]


def _search(top_k: int = 10) -> dict[str, Any]:
    return {
        "stage_name": "search",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [{"feature_uri": DENSE, "query": "{{INPUT.query}}", "top_k": top_k}],
                "final_top_k": top_k,
            },
        },
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[mixpeek.ApiClient]:
    data_dir = tmp_path_factory.mktemp("catalogue") / "data"
    server, key = start_with_key(data_dir)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        text = {"feature_extractor_name": "text_extractor", "input_mappings": {"text": ["title", "text"]}}
        assert http.post(
            "/v1/collections", json={"collection_name": "papers", "feature_extractor": text}
        ).is_success
        assert http.post("/v1/collections/papers/documents/batch", json={"documents": PAPERS}).is_success
        venues = {"collection_name": "venues", "vector_configs": [{"name": "v", "dimension": 2}]}
        assert http.post("/v1/collections", json=venues).is_success
        assert http.post("/v1/collections/venues/documents/batch", json={"documents": VENUES}).is_success
    with mixpeek.ApiClient(mixpeek.Configuration(host=server.url, access_token=key)) as api_client:
        yield api_client
    server.stop()


def _create_and_run(client: mixpeek.ApiClient, name: str, stages: list[dict[str, Any]], query: str) -> Any:
    api = RetrieversApi(client)
    created = api.create_retriever(
        CreateRetrieverRequest.from_dict(
            {
                "retriever_name": name,
                "collection_identifiers": ["papers"],
                "input_schema": {"query": {"type": "text", "required": True}},
                "stages": stages,
            }
        )
    )
    assert created.retriever_id
    result = api.execute_retriever(
        created.retriever_id, ExecuteRetrieverRequest.from_dict({"inputs": {"query": query}, "limit": 50})
    )
    assert result.status == "completed", result.error
    return result


def test_search_deduplicate_mmr_aggregate(client: mixpeek.ApiClient) -> None:
    stages = [
        _search(),
        {"stage_name": "dedup", "config": {"stage_id": "deduplicate", "parameters": {"fields": ["title", "text"]}}},
        {"stage_name": "diverse", "config": {"stage_id": "mmr", "parameters": {"lambda": 0.5, "top_k": 4,
                                                                                "diversity_feature_uri": DENSE}}},
        {"stage_name": "by-topic", "config": {"stage_id": "aggregate", "parameters": {
            "group_by": [{"field": "topic", "alias": "topic"}],
            "aggregations": [{"function": "count", "alias": "papers"},
                             {"function": "collect", "field": "document_id", "alias": "ids"}],
            "sort_by": "papers", "sort_order": "desc"}}},
    ]  # fmt: skip
    result = _create_and_run(client, "dedup-mmr-agg", stages, "vitamin d and bones")
    stats = result.stage_statistics.stages
    assert stats["search"].output_count == 5
    assert stats["dedup"].output_count == 4 and stats["dedup"].metadata["duplicates_dropped"] == 1
    assert stats["diverse"].output_count == 4
    groups = {d["topic"]: d for d in result.documents}
    assert set(groups) == {"nutrition", "neuro", "sport"}
    assert groups["nutrition"]["papers"] == 2 and sum(g["papers"] for g in groups.values()) == 4
    assert not {"p1", "p1-copy"} <= set(groups["nutrition"]["ids"])  # the copy was deduplicated
    assert result.documents[0]["topic"] == "nutrition"  # sorted by count desc


def test_search_enrich_transform_rag(client: mixpeek.ApiClient) -> None:
    stages = [
        _search(3),
        {"stage_name": "venue", "config": {"stage_id": "document_enrich", "parameters": {
            "target_collection_id": "venues", "source_field": "venue", "target_field": "document_id",
            "fields_to_merge": ["name", "country"], "output_field": "venue_info"}}},
        {"stage_name": "shape", "config": {"stage_id": "json_transform", "parameters": {"template": {
            "headline": "{{ DOC.title }} ({{ DOC.venue_info.name }}, {{ DOC.year }})",
            "content": "{{ DOC.text }}"}}}},
        {"stage_name": "context", "config": {"stage_id": "rag_prepare", "parameters": {
            "max_tokens": 500, "output_mode": "single_context",
            "document_template": "{{ DOC.headline }}: {{ DOC.content }}"}}},
    ]  # fmt: skip
    result = _create_and_run(client, "enrich-transform-rag", stages, "vitamin d bone density")
    stats = result.stage_statistics.stages
    assert stats["venue"].metadata["matched"] == 3 and stats["venue"].metadata["match_rate"] == 1.0
    assert stats["shape"].output_count == 3
    [context] = result.documents
    text = context["rag_context"]
    assert "Journal of Bones" in text and "Vitamin D and bone density" in text
    assert len(context["citations"]) == 3
    assert {c["document_id"] for c in context["citations"]} <= {p["document_id"] for p in PAPERS}
