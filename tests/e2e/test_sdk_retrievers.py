"""The official Mixpeek SDK against a real Siftline server on 127.0.0.1: retrievers created, executed
saved and ad hoc, documents read back through the SDK's own models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import mixpeek
import pytest
from mixpeek.api.adhoc_retrievers_api import AdhocRetrieversApi
from mixpeek.api.retrievers_api import RetrieversApi
from mixpeek.models.adhoc_execute_request import AdhocExecuteRequest
from mixpeek.models.create_retriever_request import CreateRetrieverRequest
from mixpeek.models.execute_retriever_request import ExecuteRetrieverRequest

from helpers import BM25, DENSE, PETS, PETS_TAIL_STAGES
from siftline.testing.server import Server, start_with_key

pytestmark = pytest.mark.slow

HYBRID_STAGES = [
    {
        "stage_name": "hybrid",
        "stage_type": "filter",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [
                    {
                        "feature_uri": DENSE,
                        "query": {"input_mode": "text", "value": "{{INPUT.query}}"},
                        "top_k": 10,
                    },
                    {
                        "feature_uri": BM25,
                        "query": {"input_mode": "text", "value": "{{INPUT.query}}"},
                        "top_k": 10,
                    },
                ],
                "fusion": "rrf",
                "final_top_k": 10,
            },
        },
    },
    *PETS_TAIL_STAGES,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    data_dir: Path = tmp_path_factory.mktemp("sdk") / "data"
    srv, key = start_with_key(data_dir)
    http = httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    created = http.post(
        "/v1/collections",
        json={
            "collection_name": "notes",
            "feature_extractor": {
                "feature_extractor_name": "text_extractor",
                "input_mappings": {"text": "text"},
            },
            "payload_indexes": [{"field_name": "kind", "type": "keyword"}],
        },
    )
    assert created.status_code == 200, created.text
    assert http.post("/v1/collections/notes/documents/batch", json={"documents": PETS}).status_code == 200
    http.close()
    yield srv, key
    srv.stop()


@pytest.fixture
def client(server: tuple[Server, str]) -> Iterator[mixpeek.ApiClient]:
    srv, key = server
    config = mixpeek.Configuration(host=srv.url, access_token=key)
    with mixpeek.ApiClient(config) as api_client:
        api_client.set_default_header("X-Namespace", "default")
        yield api_client


def test_hybrid_retriever_created_and_executed_through_the_sdk(client: mixpeek.ApiClient) -> None:
    api = RetrieversApi(client)
    created = api.create_retriever(
        CreateRetrieverRequest.from_dict(
            {
                "retriever_name": "pets-hybrid",
                "collection_identifiers": ["notes"],
                "input_schema": {"query": {"type": "text", "required": True}},
                "stages": HYBRID_STAGES,
            }
        )
    )
    assert created.retriever_id and created.retriever_id.startswith("ret_")
    assert created.collection_identifiers and created.fusion == "rrf"

    result = api.execute_retriever(
        created.retriever_id,
        ExecuteRetrieverRequest.from_dict({"inputs": {"query": "a cat on a mat"}, "limit": 10}),
    )
    assert result.status == "completed" and result.execution_id.startswith("exec_")
    docs = result.documents or []
    # hybrid search finds the pets, the filter drops finance and books, the sort puts the newest first, limit 2
    assert [d["document_id"] for d in docs] == ["dog", "cat"]
    assert all(isinstance(d["score"], float) and d["kind"] == "pet" for d in docs)
    stats = result.stage_statistics
    assert stats is not None and stats.stages is not None
    assert list(stats.stages) == ["hybrid", "pets", "newest", "top2"]
    hybrid, pets, newest, top2 = (stats.stages[n] for n in ("hybrid", "pets", "newest", "top2"))
    assert hybrid.output_count == pets.input_count and pets.output_count == 3
    assert newest.input_count == newest.output_count == 3 and top2.output_count == 2
    assert hybrid.metadata and hybrid.metadata["fusion"] == "rrf"
    assert result.budget and result.budget["credits_used"] > 0

    by_name = api.get_retriever("pets-hybrid")
    assert by_name.retriever_id == created.retriever_id and len(by_name.stages) == 4


def test_adhoc_execution_through_the_sdk(client: mixpeek.ApiClient) -> None:
    adhoc = AdhocRetrieversApi(client)
    response = adhoc.execute_adhoc_retriever_with_http_info(
        AdhocExecuteRequest.from_dict(
            {
                "collection_identifiers": ["notes"],
                "input_schema": {"query": {"type": "text", "required": True}},
                "inputs": {"query": "interest rates and markets"},
                "stages": [
                    {
                        "stage_name": "dense",
                        "config": {
                            "stage_id": "feature_search",
                            "parameters": {
                                "searches": [{"feature_uri": DENSE, "query": "{{INPUT.query}}", "top_k": 3}],
                                "final_top_k": 3,
                            },
                        },
                    }
                ],
            }
        )
    )
    headers = {k.lower(): v for k, v in (response.headers or {}).items()}
    assert response.status_code == 200 and headers.get("x-execution-mode") == "adhoc"
    body = response.data
    assert isinstance(body, dict) and body["status"] == "completed"
    ids = [d["document_id"] for d in body["documents"]]
    assert set(ids[:2]) == {"stocks", "rates"}
    scores = [d["score"] for d in body["documents"]]
    assert scores == sorted(scores, reverse=True)
