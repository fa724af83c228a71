"""Execution records read back through the official Mixpeek SDK from a real Siftline server on 127.0.0.1:
saved and ad-hoc executions parse into the SDK's ExecutionDetail / AdhocExecutionDetail, lists into
ListExecutionsResponse / ListAdhocExecutionsResponse, and what was recorded is what execute returned."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mixpeek
import pytest
from mixpeek.api.adhoc_retrievers_api import AdhocRetrieversApi
from mixpeek.api.retrievers_api import RetrieversApi
from mixpeek.exceptions import NotFoundException
from mixpeek.models.adhoc_execute_request import AdhocExecuteRequest
from mixpeek.models.adhoc_execution_detail import AdhocExecutionDetail
from mixpeek.models.adhoc_execution_summary import AdhocExecutionSummary
from mixpeek.models.create_retriever_request import CreateRetrieverRequest
from mixpeek.models.execute_retriever_request import ExecuteRetrieverRequest
from mixpeek.models.execution_detail import ExecutionDetail
from mixpeek.models.list_adhoc_executions_request import ListAdhocExecutionsRequest
from mixpeek.models.list_adhoc_executions_response import ListAdhocExecutionsResponse
from mixpeek.models.list_executions_request import ListExecutionsRequest
from mixpeek.models.list_executions_response import ListExecutionsResponse
from mixpeek.models.retriever_execution_summary import RetrieverExecutionSummary

from helpers import DENSE, PETS, PETS_TAIL_STAGES
from siftline.testing.server import Server, start_with_key

pytestmark = pytest.mark.slow

CREDITS_EXCEEDED = "Budget exceeded: Maximum credits limit reached"
SCHEMA = {"query": {"type": "text", "required": True}, "year": {"type": "integer", "default": 2000}}
STAGES = [
    {
        "stage_name": "dense",
        "stage_type": "filter",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [
                    {
                        "feature_uri": DENSE,
                        "query": {"input_mode": "text", "value": "{{INPUT.query}}"},
                        "top_k": 10,
                    }
                ],
                "final_top_k": 10,
            },
        },
    },
    *PETS_TAIL_STAGES,
]
STAGE_NAMES = ["dense", "pets", "newest", "top2"]


def canonical(inputs: dict[str, Any]) -> str:
    return json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def create_request(body: dict[str, Any]) -> CreateRetrieverRequest:
    request = CreateRetrieverRequest.from_dict(body)
    assert request is not None
    return request


def execute_request(body: dict[str, Any]) -> ExecuteRetrieverRequest:
    request = ExecuteRetrieverRequest.from_dict(body)
    assert request is not None
    return request


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    data_dir: Path = tmp_path_factory.mktemp("sdk-executions") / "data"
    srv, key = start_with_key(data_dir)
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        created = http.post(
            "/v1/collections",
            json={
                "collection_name": "notes",
                "feature_extractor": {
                    "feature_extractor_name": "text_extractor",
                    "input_mappings": {"text": "text"},
                },
                "payload_indexes": [
                    {"field_name": "kind", "type": "keyword"},
                    {"field_name": "year", "type": "integer"},
                ],
            },
        )
        assert created.status_code == 200, created.text
        loaded = http.post("/v1/collections/notes/documents/batch", json={"documents": PETS})
        assert loaded.status_code == 200, loaded.text
    yield srv, key
    srv.stop()


@pytest.fixture(scope="module")
def retriever_id(api_client: mixpeek.ApiClient) -> str:
    created = RetrieversApi(api_client).create_retriever(
        create_request(
            {
                "retriever_name": "pets-dense",
                "collection_identifiers": ["notes"],
                "input_schema": SCHEMA,
                "stages": STAGES,
            }
        )
    )
    assert created.retriever_id
    return created.retriever_id


def run_adhoc(api_client: mixpeek.ApiClient, inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    request = {
        "collection_identifiers": ["notes"],
        "input_schema": SCHEMA,
        "inputs": inputs,
        "stages": STAGES,
    }
    adhoc_request = AdhocExecuteRequest.from_dict({**request, **extra})
    assert adhoc_request is not None
    body = AdhocRetrieversApi(api_client).execute_adhoc_retriever(adhoc_request)
    assert isinstance(body, dict)
    return body


def test_a_saved_execution_reads_back_as_the_sdks_execution_detail(
    api_client: mixpeek.ApiClient, retriever_id: str
) -> None:
    api = RetrieversApi(api_client)
    result = api.execute_retriever(
        retriever_id, execute_request({"inputs": {"query": "a cat on a mat"}, "limit": 10})
    )
    assert result.status == "completed" and result.documents

    detail = api.get_execution_retrievers(retriever_id, result.execution_id)
    assert isinstance(detail, ExecutionDetail)
    assert detail.retriever_id == retriever_id and detail.execution_id == result.execution_id
    assert detail.status == "completed" and detail.error is None and detail.results is None
    assert detail.documents == result.documents
    assert [d["document_id"] for d in detail.documents] == ["dog", "cat"]
    assert detail.stage_statistics is not None and detail.stage_statistics.stages is not None
    assert list(detail.stage_statistics.stages) == STAGE_NAMES
    assert detail.stage_statistics == result.stage_statistics
    assert detail.stage_statistics.stages["top2"].output_count == 2
    assert detail.budget == result.budget and detail.budget and detail.budget["credits_used"] > 0
    assert detail.created_at is not None and detail.completed_at is not None
    assert detail.completed_at >= detail.created_at
    assert detail.stages_completed == detail.total_stages == 4 and detail.current_stage is None
    assert detail.documents_retained is True and detail.total_returned == 2
    assert detail.pagination and detail.pagination["total"] == 2 and detail.pagination["returned"] == 2
    assert api.get_execution_retrievers("pets-dense", result.execution_id) == detail


def test_an_adhoc_execution_reads_back_as_the_sdks_adhoc_detail_with_its_inputs_and_hash(
    api_client: mixpeek.ApiClient,
) -> None:
    inputs = {"query": "crème brûlée and a sleepy kitten", "year": 2019}
    body = run_adhoc(api_client, inputs)
    assert body["status"] == "completed"

    detail = AdhocRetrieversApi(api_client).get_adhoc_execution_retrievers(body["execution_id"])
    assert isinstance(detail, AdhocExecutionDetail)
    assert detail.execution_id == body["execution_id"]
    assert detail.execution_mode == "adhoc" and detail.status == "completed"
    assert detail.inputs == canonical(inputs) and json.loads(detail.inputs) == inputs
    assert detail.inputs_hash == hashlib.sha1(canonical(inputs).encode("utf-8")).hexdigest()
    assert detail.query_summary == inputs["query"]
    assert detail.stages_completed == detail.total_stages == 4
    assert detail.total_returned == len(body["documents"]) == 2
    assert detail.credits_used == pytest.approx(body["stage_statistics"]["credits_used"])
    assert detail.duration_ms == pytest.approx(body["stage_statistics"]["total_time_ms"])
    assert detail.cache_hit_rate is not None and 0 <= detail.cache_hit_rate <= 1
    assert detail.total_processed == sum(
        s["input_count"] for s in body["stage_statistics"]["stages"].values()
    )
    assert detail.timestamp is not None
    collection_id = body["documents"][0]["collection_id"]
    assert detail.collection_ids == [collection_id]


def test_a_failed_execution_reads_back_with_its_error_and_the_stages_that_ran(
    api_client: mixpeek.ApiClient,
) -> None:
    api = RetrieversApi(api_client)
    tight = api.create_retriever(
        create_request(
            {
                "retriever_name": "pets-tight",
                "collection_identifiers": ["notes"],
                "input_schema": SCHEMA,
                "stages": STAGES,
                "budget_limits": {"max_credits": 1.05},
            }
        )
    )
    assert tight.retriever_id
    result = api.execute_retriever(tight.retriever_id, execute_request({"inputs": {"query": "cat"}}))
    assert result.status == "failed"

    detail = api.get_execution_retrievers(tight.retriever_id, result.execution_id)
    assert detail.status == "failed" and detail.error == CREDITS_EXCEEDED
    assert detail.stage_statistics is not None and detail.stage_statistics.stages is not None
    assert list(detail.stage_statistics.stages) == ["dense"]
    assert detail.stages_completed == 1 and detail.total_stages == 4 and detail.documents == []
    assert detail.budget and detail.budget["max_credits"] == pytest.approx(1.05)

    failed = api.list_executions_retrievers(
        tight.retriever_id, list_executions_request=ListExecutionsRequest(status="failed")
    )
    assert [r.execution_id for r in failed.results or []] == [result.execution_id]
    assert (
        api.list_executions_retrievers(
            tight.retriever_id, list_executions_request=ListExecutionsRequest(status="completed")
        ).pagination.total
        == 0
    )


def test_a_retrievers_executions_list_into_the_sdks_response_newest_first(
    api_client: mixpeek.ApiClient, retriever_id: str
) -> None:
    api = RetrieversApi(api_client)
    request = execute_request({"inputs": {"query": "dogs in the park"}})
    runs = [api.execute_retriever(retriever_id, request).execution_id for _ in range(3)]

    listed = api.list_executions_retrievers(retriever_id, limit=1000)
    assert isinstance(listed, ListExecutionsResponse) and listed.results
    assert all(isinstance(r, RetrieverExecutionSummary) for r in listed.results)
    ordered = [r.execution_id for r in listed.results]
    assert ordered[:3] == runs[::-1]
    assert listed.pagination.total == len(ordered) and listed.pagination.has_next is False
    created = [r.created_at for r in listed.results]
    assert created == sorted(created, reverse=True)
    newest = listed.results[0]
    assert newest.status == "completed" and newest.total_returned == 2 and newest.inputs_hash
    assert newest.completed_at is not None and newest.completed_at >= newest.created_at

    page = api.list_executions_retrievers(retriever_id, limit=2, offset=1)
    assert [r.execution_id for r in page.results or []] == ordered[1:3]
    assert page.pagination.limit == 2 and page.pagination.offset == 1
    assert page.pagination.total == len(ordered) and page.pagination.has_next is (len(ordered) > 3)


def test_adhoc_executions_list_into_the_sdks_response_newest_first(api_client: mixpeek.ApiClient) -> None:
    adhoc = AdhocRetrieversApi(api_client)
    first = run_adhoc(api_client, {"query": "first"})["execution_id"]
    second = run_adhoc(api_client, {"query": "second"})["execution_id"]
    failed = run_adhoc(api_client, {"query": "third"}, budget_limits={"max_credits": 1.05})
    assert failed["status"] == "failed"

    listed = adhoc.list_adhoc_executions_retrievers(limit=1000)
    assert isinstance(listed, ListAdhocExecutionsResponse) and listed.results
    assert all(isinstance(r, AdhocExecutionSummary) and r.execution_mode == "adhoc" for r in listed.results)
    assert [r.execution_id for r in listed.results[:3]] == [failed["execution_id"], second, first]
    assert listed.total == len(listed.results)
    assert [r.query_summary for r in listed.results[:3]] == ["third", "second", "first"]

    completed = adhoc.list_adhoc_executions_retrievers(
        list_adhoc_executions_request=ListAdhocExecutionsRequest(status="completed")
    )
    assert completed.results and all(r.status == "completed" for r in completed.results)
    assert failed["execution_id"] not in [r.execution_id for r in completed.results]
    only_failed = adhoc.list_adhoc_executions_retrievers(
        list_adhoc_executions_request=ListAdhocExecutionsRequest(status="failed")
    )
    assert [r.execution_id for r in only_failed.results or []] == [failed["execution_id"]]


def test_status_and_profile_are_served_and_modes_do_not_mix(
    api_client: mixpeek.ApiClient, retriever_id: str
) -> None:
    api = RetrieversApi(api_client)
    saved = api.execute_retriever(retriever_id, execute_request({"inputs": {"query": "kitten"}}))
    adhoc_id = run_adhoc(api_client, {"query": "kitten"})["execution_id"]

    status = api.get_execution_status_retrievers(retriever_id, saved.execution_id)
    assert status["status"] == "completed" and status["stages_completed"] == status["total_stages"] == 4
    profile = api.get_execution_profile_retrievers(retriever_id, saved.execution_id)
    stages = profile["stages"]
    assert isinstance(stages, list) and [s["stage_name"] for s in stages] == STAGE_NAMES
    assert profile["bottleneck_stage"] in STAGE_NAMES

    with pytest.raises(NotFoundException):
        AdhocRetrieversApi(api_client).get_adhoc_execution_retrievers(saved.execution_id)
    with pytest.raises(NotFoundException):
        api.get_execution_retrievers(retriever_id, adhoc_id)


def test_explain_through_the_sdk_returns_explain_plan_and_each_documents_lineage(
    api_client: mixpeek.ApiClient, retriever_id: str
) -> None:
    api = RetrieversApi(api_client)
    result = api.execute_retriever(
        retriever_id, execute_request({"inputs": {"query": "a cat on a mat"}, "explain": True})
    )
    assert result.status == "completed" and result.explain_plan is not None
    assert [s["stage_name"] for s in result.explain_plan["stages"]] == STAGE_NAMES
    for document in result.documents or []:
        lineage = document["lineage"]
        assert lineage["origin"]["stage_name"] == "dense" and lineage["score"] == document["score"]
        assert lineage["legs"][0]["raw_score"] == lineage["origin"]["score"]
    detail = api.get_execution_retrievers(retriever_id, result.execution_id)
    assert detail.documents == result.documents
