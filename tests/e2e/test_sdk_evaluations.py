"""Evaluations and learned-fusion records through the official Mixpeek SDK (mixpeek==1.3.783) against a real
Siftline server on 127.0.0.1: ``RetrieverEvaluationsApi`` creates, lists and reads datasets, starts an
evaluation (202 → StartEvaluationResponse), polls it until completed (EvaluationRecord with
``metrics_by_k``) and lists evaluations; a learned-fusion execution read back through ``RetrieversApi``
parses as ``ExecutionDetail`` with its ``learned_fusion_context`` filled.

The corpus: eight documents with two 2-d vectors each; ``a`` at 0, 0.2, …, 1.4 radians (so ``[1, 0]`` ranks
``d0, d1, …, d7``) and ``b`` the other way round.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mixpeek
import pytest
from mixpeek.api.retriever_evaluations_api import RetrieverEvaluationsApi
from mixpeek.api.retriever_interactions_api import RetrieverInteractionsApi
from mixpeek.api.retrievers_api import RetrieversApi
from mixpeek.exceptions import NotFoundException, UnprocessableEntityException
from mixpeek.models.create_dataset_request import CreateDatasetRequest
from mixpeek.models.create_retriever_request import CreateRetrieverRequest
from mixpeek.models.dataset_list_response import DatasetListResponse
from mixpeek.models.evaluation_config import EvaluationConfig
from mixpeek.models.evaluation_dataset import EvaluationDataset
from mixpeek.models.evaluation_list_response import EvaluationListResponse
from mixpeek.models.evaluation_record import EvaluationRecord
from mixpeek.models.evaluation_status import EvaluationStatus
from mixpeek.models.execute_retriever_request import ExecuteRetrieverRequest
from mixpeek.models.execution_detail import ExecutionDetail
from mixpeek.models.ground_truth_query import GroundTruthQuery
from mixpeek.models.interaction_type import InteractionType
from mixpeek.models.search_interaction import SearchInteraction
from mixpeek.models.start_evaluation_request import StartEvaluationRequest
from mixpeek.models.start_evaluation_response import StartEvaluationResponse

from siftline.testing.server import Server, siftline, start_with_key

pytestmark = pytest.mark.slow

A, B = "mixpeek://vectors@v1/a", "mixpeek://vectors@v1/b"
DOCS = [
    {
        "document_id": f"d{i}",
        "vectors": {
            "a": [math.cos(0.2 * i), math.sin(0.2 * i)],
            "b": [math.cos(0.2 * (7 - i)), math.sin(0.2 * (7 - i))],
        },
    }
    for i in range(8)
]
POLL_SECONDS = 60.0
K_VALUES = {"1", "5", "10", "20"}


def vector_search(uri: str, value: Any) -> dict[str, Any]:
    return {"feature_uri": uri, "query": {"input_mode": "vector", "value": value}, "top_k": 20}


BY_A = {
    "stage_name": "search",
    "stage_type": "filter",
    "config": {
        "stage_id": "feature_search",
        "parameters": {"searches": [vector_search(A, "{{INPUT.v}}")], "final_top_k": 20},
    },
}
LEARNED = {
    "stage_name": "search",
    "stage_type": "filter",
    "config": {
        "stage_id": "feature_search",
        "parameters": {
            "searches": [vector_search(A, [1, 0]), vector_search(B, [1, 0])],
            "fusion": "learned",
            "final_top_k": 8,
            "learning_config": {"context_features": ["INPUT.user_id"], "min_interactions": 1},
        },
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    data_dir: Path = tmp_path_factory.mktemp("sdk-evaluations") / "data"
    srv, key = start_with_key(data_dir)
    try:
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            vectors = [{"name": n, "dimension": 2, "metric": "cosine"} for n in ("a", "b")]
            created = http.post(
                "/v1/collections", json={"collection_name": "notes", "vector_configs": vectors}
            )
            assert created.status_code == 200, created.text
            loaded = http.post("/v1/collections/notes/documents/batch", json={"documents": DOCS})
            assert loaded.status_code == 200, loaded.text
        yield srv, key
    finally:
        srv.stop()


def create_retriever(
    api_client: mixpeek.ApiClient, name: str, stage: dict[str, Any], schema: dict[str, Any]
) -> str:
    request = CreateRetrieverRequest.from_dict(
        {
            "retriever_name": name,
            "collection_identifiers": ["notes"],
            "input_schema": schema,
            "stages": [stage],
        }
    )
    assert request is not None
    created = RetrieversApi(api_client).create_retriever(request)
    assert created.retriever_id
    return created.retriever_id


@pytest.fixture(scope="module")
def by_a(api_client: mixpeek.ApiClient) -> str:
    return create_retriever(api_client, "by-a", BY_A, {"v": {"type": "array", "required": True}})


def judged(qid: str, relevant: list[str], vector: Any = (1.0, 0.0)) -> GroundTruthQuery:
    return GroundTruthQuery(query_id=qid, query_input={"v": list(vector)}, relevant_documents=relevant)


def poll(api: RetrieverEvaluationsApi, retriever_id: str, evaluation_id: str) -> EvaluationRecord:
    deadline = time.monotonic() + POLL_SECONDS
    while True:
        record = api.get_evaluation_retrievers(retriever_id, evaluation_id)
        assert isinstance(record, EvaluationRecord)
        if record.status in (EvaluationStatus.COMPLETED, EvaluationStatus.FAILED):
            return record
        assert time.monotonic() < deadline, f"evaluation still {record.status} after {POLL_SECONDS}s"
        time.sleep(0.05)


def test_datasets_and_evaluations_through_the_sdk(api_client: mixpeek.ApiClient, by_a: str) -> None:
    api = RetrieverEvaluationsApi(api_client)
    request = CreateDatasetRequest(
        dataset_name="circle",
        description="hand-judged",
        metadata={"owner": "tests"},
        queries=[
            judged("first", ["d0"]),
            judged("third", ["d2"]),
            GroundTruthQuery(
                query_id="graded",
                query_input={"v": [1.0, 0.0]},
                relevant_documents=["d0", "d1"],
                relevance_scores={"d0": 1, "d1": 2},
            ),
            GroundTruthQuery(query_id="bad", query_input={"v": "not a vector"}, relevant_documents=["d0"]),
        ],
    )
    dataset = api.create_dataset_retrievers_evaluations(request)
    assert isinstance(dataset, EvaluationDataset)
    assert dataset.dataset_id and dataset.dataset_name == "circle" and dataset.query_count == 4
    assert dataset.description == "hand-judged" and dataset.metadata == {"owner": "tests"}
    assert [q.query_id for q in dataset.queries] == ["first", "third", "graded", "bad"]
    assert dataset.queries[2].relevance_scores == {"d0": 1, "d1": 2}

    listed = api.list_datasets_retrievers_evaluations(page=1, page_size=10)
    assert isinstance(listed, DatasetListResponse)
    assert listed.total == 1 and listed.page == 1 and listed.page_size == 10
    assert [d.dataset_id for d in listed.datasets] == [dataset.dataset_id]
    for identifier in (dataset.dataset_id, "circle"):
        got = api.get_dataset_retrievers_evaluations(identifier)
        assert isinstance(got, EvaluationDataset)
        assert got == dataset
    with pytest.raises(NotFoundException):
        api.get_dataset_retrievers_evaluations("nowhere")

    started = api.start_evaluation_retrievers(by_a, StartEvaluationRequest(dataset_name="circle"))
    assert isinstance(started, StartEvaluationResponse)
    assert started.evaluation_id and started.task_id == started.evaluation_id
    assert started.status == "pending" and started.task_type == "retriever.evaluation"
    raw = api.start_evaluation_retrievers_with_http_info(by_a, StartEvaluationRequest(dataset_name="circle"))
    assert raw.status_code == 202
    assert isinstance(raw.data, StartEvaluationResponse)

    record = poll(api, by_a, started.evaluation_id)
    assert record.status == EvaluationStatus.COMPLETED, record.error_message
    assert record.evaluation_id == started.evaluation_id and record.retriever_id == by_a
    assert record.dataset_id == dataset.dataset_id and record.dataset_name == "circle"
    assert record.query_count == 4 and record.completed_at is not None
    assert record.config.k_values == [1, 5, 10, 20]
    assert record.total_queries == 4 and record.evaluated_queries == 3 and record.skipped_queries == 1
    assert record.metrics_by_k is not None and set(record.metrics_by_k) == K_VALUES
    graded_ndcg = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert record.metrics_by_k["10"]["ndcg"] == pytest.approx((1 + 0.5 + graded_ndcg) / 3)
    assert record.metrics_by_k["10"]["mrr"] == pytest.approx((1 + 1 / 3 + 1) / 3)
    assert record.metrics_by_k["1"]["ndcg"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert record.overall_metrics is not None
    assert record.overall_metrics["ndcg@10"] == pytest.approx(record.metrics_by_k["10"]["ndcg"])
    assert record.query_results is not None
    outcomes = {o.query_id: o for o in record.query_results}
    assert outcomes["bad"].status == "skipped" and outcomes["bad"].error and "'v'" in outcomes["bad"].error
    assert outcomes["bad"].retrieved_count is None
    assert outcomes["first"].status == "evaluated" and outcomes["first"].retrieved_count == 8

    config = EvaluationConfig(k_values=[3], metrics=["mrr"])
    second = api.start_evaluation_retrievers(
        by_a, StartEvaluationRequest(dataset_name=dataset.dataset_id, evaluation_config=config)
    )
    narrowed = poll(api, by_a, second.evaluation_id)
    assert narrowed.status == EvaluationStatus.COMPLETED
    assert narrowed.metrics_by_k == {"3": {"mrr": pytest.approx((1 + 1 / 3 + 1) / 3)}}
    assert narrowed.config.k_values == [3] and narrowed.config.metrics == ["mrr"]

    poll(api, by_a, raw.data.evaluation_id)  # the run started to check the 202 completes too
    everything = api.list_evaluations_retrievers(by_a)
    assert isinstance(everything, EvaluationListResponse)
    assert everything.total == 3
    assert [e.evaluation_id for e in everything.evaluations] == [
        second.evaluation_id,
        raw.data.evaluation_id,
        started.evaluation_id,
    ]
    completed = api.list_evaluations_retrievers(
        by_a, status=EvaluationStatus.COMPLETED, dataset_name="circle", page=1, page_size=2
    )
    assert completed.total == 3 and completed.page_size == 2 and len(completed.evaluations) == 2
    assert api.list_evaluations_retrievers(by_a, status=EvaluationStatus.FAILED).total == 0
    assert api.list_evaluations_retrievers(by_a, dataset_name="elsewhere").evaluations == []


def test_refusals_come_back_as_the_sdks_exceptions(api_client: mixpeek.ApiClient, by_a: str) -> None:
    api = RetrieverEvaluationsApi(api_client)
    with pytest.raises(NotFoundException):
        api.start_evaluation_retrievers(by_a, StartEvaluationRequest(dataset_name="no-such-dataset"))
    api.create_dataset_retrievers_evaluations(
        CreateDatasetRequest(dataset_name="for-refusals", queries=[judged("q", ["d0"])])
    )
    bad = StartEvaluationRequest(
        dataset_name="for-refusals", evaluation_config=EvaluationConfig(k_values=[0])
    )
    with pytest.raises(UnprocessableEntityException) as refused:
        api.start_evaluation_retrievers(by_a, bad)
    assert "k_values" in str(refused.value.body)
    duplicate = CreateDatasetRequest(dataset_name="dupes", queries=[judged("q", ["d0"]), judged("q", ["d1"])])
    with pytest.raises(UnprocessableEntityException) as refused:
        api.create_dataset_retrievers_evaluations(duplicate)
    assert "query_id" in str(refused.value.body)
    with pytest.raises(NotFoundException):
        api.get_dataset_retrievers_evaluations("dupes")


def raw_detail(api: RetrieversApi, retriever_id: str, execution_id: str) -> ExecutionDetail:
    """The record as JSON off the wire, parsed by the SDK model itself (from_json)."""
    response = api.get_execution_retrievers_without_preload_content(retriever_id, execution_id)
    assert response.status == 200
    detail = ExecutionDetail.from_json(response.data.decode())
    assert detail is not None
    return detail


def test_a_learned_fusion_execution_reads_back_as_execution_detail_with_its_context(
    api_client: mixpeek.ApiClient,
) -> None:
    retriever_id = create_retriever(api_client, "learned", LEARNED, {"user_id": {"type": "string"}})
    api = RetrieversApi(api_client)
    request = ExecuteRetrieverRequest.from_dict({"inputs": {"user_id": "u1"}})
    assert request is not None

    first = api.execute_retriever(retriever_id, request)
    assert first.status == "completed" and first.documents and len(first.documents) == 8
    for detail in (api.get_execution_retrievers(retriever_id, first.execution_id),
                   raw_detail(api, retriever_id, first.execution_id)):  # fmt: skip
        assert isinstance(detail, ExecutionDetail)
        assert detail.execution_id == first.execution_id and detail.status == "completed"
        context = detail.learned_fusion_context
        assert context is not None
        assert context == first.learned_fusion_context
        assert context["context_level"] == "prior"  # nothing learned yet
        assert context["feature_uris"] == [A, B]
        weights = context["sampled_weights"]
        assert set(weights) == {A, B} and sum(weights.values()) == pytest.approx(1.0, abs=1e-6)
        assert all(0 <= w <= 1 for w in weights.values())
        assert isinstance(context["effective_exploration"], float) and context["effective_exploration"] > 0
        assert isinstance(context["context_key"], str)
        assert isinstance(context["seed"], int)

    # one click through the SDK: with min_interactions 1 the personal context is used from then on
    assert first.documents is not None
    click = SearchInteraction(
        feature_id=first.documents[0]["document_id"],
        interaction_type=[InteractionType.CLICK],
        position=0,
        execution_id=first.execution_id,
        user_id="u1",
    )
    RetrieverInteractionsApi(api_client).create_interaction_retrievers(click)
    second = api.execute_retriever(retriever_id, request)
    detail = raw_detail(api, retriever_id, second.execution_id)
    context = detail.learned_fusion_context
    assert context is not None and context == second.learned_fusion_context
    assert context["context_level"] == "personal" and context["context_key"] == "INPUT.user_id=u1"
    assert set(context["sampled_weights"]) == {A, B}
    listed = api.get_execution_retrievers(retriever_id, second.execution_id)
    assert listed.learned_fusion_context == context


def test_a_cli_command_run_beside_the_server_does_not_fail_its_evaluations(
    api_client: mixpeek.ApiClient, server: tuple[Server, str], by_a: str
) -> None:
    """The server keeps running while the CLI works on its data directory (README): evaluations queued or
    running on the server stay pending / in progress and complete; none is reported failed meanwhile."""
    api = RetrieverEvaluationsApi(api_client)
    queries = [judged(f"q{i}", [f"d{i % 8}"]) for i in range(1000)]
    api.create_dataset_retrievers_evaluations(CreateDatasetRequest(dataset_name="long", queries=queries))
    started = [
        api.start_evaluation_retrievers(by_a, StartEvaluationRequest(dataset_name="long")).evaluation_id
        for _ in range(3)
    ]
    srv, _ = server
    listed = siftline("keys", "list", "--data-dir", str(srv.data_dir))
    assert listed.returncode == 0, listed.stderr

    deadline = time.monotonic() + 3 * POLL_SECONDS
    while True:
        records = [api.get_evaluation_retrievers(by_a, e) for e in started]
        for record in records:
            assert record.status != EvaluationStatus.FAILED, (record.evaluation_id, record.error_message)
        if all(r.status == EvaluationStatus.COMPLETED for r in records):
            break
        assert time.monotonic() < deadline, [r.status for r in records]
        time.sleep(0.05)
    assert all(r.evaluated_queries == 1000 for r in records)
