"""Interactions through the official Mixpeek SDK (``RetrieverInteractionsApi``, mixpeek==1.3.783) against a
real Siftline server on 127.0.0.1: create, batch, list with a ``ListInteractionsRequest``, get and delete, each
answer parsed by the SDK itself into its model (InteractionResponse, BulkInteractionsResponse,
ListInteractionsResponse), and refusals raised as the SDK's exceptions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import mixpeek
import pytest
from mixpeek.api.retriever_interactions_api import RetrieverInteractionsApi
from mixpeek.api.retrievers_api import RetrieversApi
from mixpeek.exceptions import NotFoundException, UnprocessableEntityException
from mixpeek.models.bulk_interaction_item_result import BulkInteractionItemResult
from mixpeek.models.bulk_interactions_request import BulkInteractionsRequest
from mixpeek.models.bulk_interactions_response import BulkInteractionsResponse
from mixpeek.models.create_retriever_request import CreateRetrieverRequest
from mixpeek.models.execute_retriever_request import ExecuteRetrieverRequest
from mixpeek.models.execute_retriever_response import ExecuteRetrieverResponse
from mixpeek.models.interaction_response import InteractionResponse
from mixpeek.models.interaction_type import InteractionType
from mixpeek.models.list_interactions_request import ListInteractionsRequest
from mixpeek.models.list_interactions_response import ListInteractionsResponse
from mixpeek.models.search_interaction import SearchInteraction

from helpers import DENSE, PETS
from siftline.testing.server import Server, start_with_key

pytestmark = pytest.mark.slow

SCHEMA = {"query": {"type": "text", "required": True}}
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
    }
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    data_dir: Path = tmp_path_factory.mktemp("sdk-interactions") / "data"
    srv, key = start_with_key(data_dir)
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        collection = {
            "collection_name": "notes",
            "feature_extractor": {
                "feature_extractor_name": "text_extractor",
                "input_mappings": {"text": "text"},
            },
        }
        created = http.post("/v1/collections", json=collection)
        assert created.status_code == 200, created.text
        loaded = http.post("/v1/collections/notes/documents/batch", json={"documents": PETS})
        assert loaded.status_code == 200, loaded.text
    yield srv, key
    srv.stop()


@pytest.fixture(scope="module")
def retriever_id(api_client: mixpeek.ApiClient) -> str:
    request = CreateRetrieverRequest.from_dict(
        {
            "retriever_name": "pets",
            "collection_identifiers": ["notes"],
            "input_schema": SCHEMA,
            "stages": STAGES,
        }
    )
    assert request is not None
    created = RetrieversApi(api_client).create_retriever(request)
    assert created.retriever_id
    return created.retriever_id


@pytest.fixture
def execution(api_client: mixpeek.ApiClient, retriever_id: str) -> ExecuteRetrieverResponse:
    """A fresh execution of `pets` returning all six documents."""
    request = ExecuteRetrieverRequest.from_dict({"inputs": {"query": "a cat sleeping on a mat"}})
    assert request is not None
    result = RetrieversApi(api_client).execute_retriever(retriever_id, request)
    assert result.status == "completed" and result.documents and len(result.documents) == len(PETS)
    assert result.retriever_id == retriever_id
    return result


def interaction(execution: ExecuteRetrieverResponse, index: int, **fields: Any) -> SearchInteraction:
    assert execution.documents is not None
    defaults: dict[str, Any] = {
        "feature_id": execution.documents[index]["document_id"],
        "interaction_type": [InteractionType.CLICK],
        "position": index,
        "execution_id": execution.execution_id,
    }
    return SearchInteraction(**{**defaults, **fields})


def aware(moment: datetime) -> datetime:
    """A naive time from the server means UTC (as the SDK documents for occurred_at)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def by_execution(
    api: RetrieverInteractionsApi, execution_id: str, **filters: Any
) -> ListInteractionsResponse:
    request = ListInteractionsRequest(execution_id=execution_id, **filters)
    listed = api.list_interactions_retrievers(
        limit=1000, include_total=True, list_interactions_request=request
    )
    assert isinstance(listed, ListInteractionsResponse)
    assert listed.items == listed.results
    return listed


def test_create_get_list_and_delete_through_the_sdk(
    api_client: mixpeek.ApiClient, retriever_id: str, execution: ExecuteRetrieverResponse
) -> None:
    api = RetrieverInteractionsApi(api_client)
    assert execution.documents is not None
    doc = execution.documents[1]
    occurred = datetime(2025, 5, 6, 7, 8, 9, tzinfo=UTC)
    sent = interaction(
        execution,
        1,
        interaction_type=[InteractionType.VIEW, InteractionType.CLICK],
        retriever_id=retriever_id,
        user_id="sdk-user",
        session_id="sdk-session",
        metadata={"device": "desktop", "dwell_ms": 1200},
        query_snapshot={"query": "a cat sleeping on a mat"},
        document_score=doc["score"],
        result_set_size=len(execution.documents),
        feature_uri=DENSE,
        occurred_at=occurred,
    )

    made = api.create_interaction_retrievers(sent)
    assert isinstance(made, InteractionResponse)
    assert made.interaction_id and made.interaction_id.startswith("int_") and made.deduplicated is False
    assert (made.feature_id, made.position) == (doc["document_id"], 1)
    assert sorted(made.interaction_type) == sorted([InteractionType.VIEW, InteractionType.CLICK])
    assert (made.execution_id, made.retriever_id) == (execution.execution_id, retriever_id)
    assert (made.user_id, made.session_id) == ("sdk-user", "sdk-session")
    assert made.metadata == {"device": "desktop", "dwell_ms": 1200}
    assert made.query_snapshot == {"query": "a cat sleeping on a mat"}
    assert made.document_score == pytest.approx(doc["score"])
    assert made.result_set_size == len(execution.documents) and made.feature_uri == DENSE
    assert made.occurred_at is not None and aware(made.occurred_at) == occurred
    assert made.timestamp and not made.warning

    read = api.get_interaction_retrievers(made.interaction_id)
    assert isinstance(read, InteractionResponse)
    assert read.model_dump(exclude={"warning"}) == made.model_dump(exclude={"warning"})

    listed = by_execution(api, execution.execution_id)
    assert [r.interaction_id for r in listed.results] == [made.interaction_id]
    assert listed.results[0].model_dump(exclude={"warning"}) == read.model_dump(exclude={"warning"})
    assert listed.pagination.total == 1

    deleted = api.delete_interaction_retrievers(made.interaction_id)
    assert deleted["success"] is True
    with pytest.raises(NotFoundException):
        api.get_interaction_retrievers(made.interaction_id)
    with pytest.raises(NotFoundException):
        api.delete_interaction_retrievers(made.interaction_id)
    emptied = by_execution(api, execution.execution_id)
    assert emptied.results == [] and emptied.pagination.total == 0


def test_a_batch_through_the_sdk_and_its_list_filters(
    api_client: mixpeek.ApiClient, retriever_id: str, execution: ExecuteRetrieverResponse
) -> None:
    api = RetrieverInteractionsApi(api_client)
    items = [
        interaction(execution, 0, user_id="batch-a", session_id="batch-s"),
        interaction(
            execution, 2, user_id="batch-b", session_id="batch-s", interaction_type=[InteractionType.VIEW]
        ),
        interaction(
            execution,
            3,
            user_id="batch-a",
            interaction_type=[InteractionType.ADD_TO_CART, InteractionType.PURCHASE],
            occurred_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        ),
    ]

    answer = api.create_interactions_bulk_retrievers_batch(BulkInteractionsRequest(interactions=items))
    assert isinstance(answer, BulkInteractionsResponse)
    assert (answer.created, answer.failed) == (3, 0) and not answer.errors
    assert answer.results is not None and all(
        isinstance(r, BulkInteractionItemResult) for r in answer.results
    )
    results = sorted(answer.results, key=lambda r: r.index)
    assert [r.index for r in results] == [0, 1, 2]
    assert all(r.interaction_id.startswith("int_") and r.status == "created" for r in results)
    made = [r.interaction_id for r in results]

    for n, item in enumerate(items):
        read = api.get_interaction_retrievers(made[n])
        assert (read.feature_id, read.position, read.user_id) == (
            item.feature_id,
            item.position,
            item.user_id,
        )
        assert read.retriever_id == retriever_id  # inferred from the execution

    everything = by_execution(api, execution.execution_id)
    assert {r.interaction_id for r in everything.results} == set(made) and everything.pagination.total == 3
    user_a = by_execution(api, execution.execution_id, user_id="batch-a")
    assert {r.interaction_id for r in user_a.results} == {made[0], made[2]} and user_a.pagination.total == 2
    session = by_execution(api, execution.execution_id, session_id="batch-s")
    assert {r.interaction_id for r in session.results} == {made[0], made[1]}
    purchases = by_execution(api, execution.execution_id, interaction_type="purchase")
    assert [r.interaction_id for r in purchases.results] == [made[2]] and purchases.pagination.total == 1
    by_doc = by_execution(
        api, execution.execution_id, feature_id=items[1].feature_id, retriever_id=retriever_id
    )
    assert [r.interaction_id for r in by_doc.results] == [made[1]]

    page = api.list_interactions_retrievers(
        limit=1,
        offset=1,
        include_total=True,
        list_interactions_request=ListInteractionsRequest(execution_id=execution.execution_id),
    )
    assert len(page.results) == 1 and page.pagination.total == 3
    assert page.results[0].interaction_id == everything.results[1].interaction_id


def test_a_batch_with_failures_and_a_retried_batch_parse_in_the_sdk(
    api_client: mixpeek.ApiClient, execution: ExecuteRetrieverResponse
) -> None:
    api = RetrieverInteractionsApi(api_client)
    assert execution.documents is not None
    valid = interaction(execution, 0, user_id="mixed")
    not_returned = interaction(execution, 1, user_id="mixed")
    not_returned.feature_id = "not-a-returned-document"
    misplaced = interaction(execution, 4, user_id="mixed")
    misplaced.position = 1  # the document was at position 4

    answer = api.create_interactions_bulk_retrievers_batch(
        BulkInteractionsRequest(interactions=[valid, not_returned, misplaced])
    )
    assert isinstance(answer, BulkInteractionsResponse)
    assert (answer.created, answer.failed) == (1, 2)
    assert answer.errors is not None and len(answer.errors) == 2
    assert answer.errors[0].startswith("index 1:") and answer.errors[1].startswith("index 2:")
    stored = by_execution(api, execution.execution_id)
    assert [(r.feature_id, r.position) for r in stored.results] == [
        (execution.documents[0]["document_id"], 0)
    ]

    retried = api.create_interactions_bulk_retrievers_batch(BulkInteractionsRequest(interactions=[valid]))
    assert isinstance(retried, BulkInteractionsResponse) and retried.failed == 0
    assert by_execution(api, execution.execution_id).pagination.total == 1


def test_a_repeated_interaction_is_deduplicated_through_the_sdk(
    api_client: mixpeek.ApiClient, execution: ExecuteRetrieverResponse
) -> None:
    api = RetrieverInteractionsApi(api_client)
    sent = interaction(execution, 2, user_id="repeat", session_id="repeat-s")
    first = api.create_interaction_retrievers(sent)
    assert first.interaction_id and first.deduplicated is False

    again = api.create_interaction_retrievers(sent)
    assert isinstance(again, InteractionResponse)
    assert again.deduplicated is True and again.interaction_id is None
    assert [r.interaction_id for r in by_execution(api, execution.execution_id).results] == [
        first.interaction_id
    ]


def test_refusals_raise_the_sdks_exceptions_and_store_nothing(
    api_client: mixpeek.ApiClient, retriever_id: str, execution: ExecuteRetrieverResponse
) -> None:
    api = RetrieverInteractionsApi(api_client)
    assert execution.documents is not None
    unknown_execution = interaction(execution, 0)
    unknown_execution.execution_id = "exec_doesnotexist"
    with pytest.raises(NotFoundException):
        api.create_interaction_retrievers(unknown_execution)

    misplaced = interaction(execution, 3)
    misplaced.position = 0
    not_returned = interaction(execution, 0)
    not_returned.feature_id = "no-such-document"
    wrong_retriever = interaction(execution, 0, retriever_id="ret_someoneelse")
    for bad in (misplaced, not_returned, wrong_retriever):
        with pytest.raises(UnprocessableEntityException):
            api.create_interaction_retrievers(bad)

    with pytest.raises(NotFoundException):
        api.get_interaction_retrievers("int_doesnotexist")
    with pytest.raises(NotFoundException):
        api.delete_interaction_retrievers("int_doesnotexist")
    assert by_execution(api, execution.execution_id).pagination.total == 0
