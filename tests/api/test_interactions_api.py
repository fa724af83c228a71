"""Interactions over HTTP (issue 11, /work/notes/interactions_contract.md): a user's click, view or purchase on
a document an execution returned, recorded with ``POST /v1/retrievers/interactions`` (or ``…/batch``),
listed with filters, read and deleted by id; checked against the execution it names; identical ones within
five minutes dropped; kept per namespace and across restarts.

Corpus: 8 documents p01…p08 with a 4-d vector ``emb`` at angle 0.1·i from [1, 0, 0, 0], so the retriever
``vec`` (a vector search for [1, 0, 0, 0]) returns them in the order p01, p02, … p08.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mixpeek.models.interaction_response import InteractionResponse
from mixpeek.models.list_interactions_response import ListInteractionsResponse

from helpers import TEXT_COLLECTION, bearer, served, settings_for
from siftline.config import Settings
from siftline.features.embedder import TextEmbedder
from siftline.service import interactions as interactions_service

R = "/v1/retrievers"
IR = f"{R}/interactions"
COLLECTION = TEXT_COLLECTION["collection_name"]
EMB_URI = "mixpeek://vectors@v1/emb"
DOC_IDS = [f"p{i + 1:02d}" for i in range(8)]
DOCS = [
    {"document_id": doc_id, "title": f"Paper {i}", "text": f"notes on topic {i}",
     "vectors": {"emb": [math.cos(0.1 * i), math.sin(0.1 * i), 0.0, 0.0]}}
    for i, doc_id in enumerate(DOC_IDS)
]  # fmt: skip
STAGES = [
    {
        "stage_name": "search",
        "stage_type": "filter",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [
                    {"feature_uri": EMB_URI, "query": {"input_mode": "vector", "value": "{{ INPUT.v }}"}}
                ],
                "final_top_k": 50,
            },
        },
    }
]
SCHEMA = {"v": {"type": "array", "default": [1, 0, 0, 0]}}
SAVED = {
    "retriever_name": "vec",
    "collection_identifiers": [COLLECTION],
    "input_schema": SCHEMA,
    "stages": STAGES,
}
# The second page of three: p04, p05, p06 (absolute ranks 3, 4, 5).
PAGE_2 = {"pagination": {"method": "offset", "page_size": 3, "page_number": 2}}


# -- helpers ---------------------------------------------------------------------------------------------


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def refused(response: Any, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["status"] == status, body
    assert body["error"]["type"] == error_type, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def bad_fields(error: dict[str, Any]) -> list[str]:
    """Every location named in a 422's ``details.errors``, flattened to strings."""
    return [str(part) for e in error["details"]["errors"] for part in e["loc"]]


def when(stamp: str) -> datetime:
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def load(client: TestClient, headers: dict[str, str] | None = None) -> TestClient:
    ok(client.post("/v1/collections", json=TEXT_COLLECTION, headers=headers))
    ok(
        client.post(
            f"/v1/collections/{COLLECTION}/documents/batch", json={"documents": DOCS}, headers=headers
        )
    )
    ok(client.post(R, json=SAVED, headers=headers))
    ok(client.post(R, json={**SAVED, "retriever_name": "vec2"}, headers=headers))
    return client


def execute(
    client: TestClient, retriever: str = "vec", headers: dict[str, str] | None = None, **body: Any
) -> dict[str, Any]:
    result = ok(client.post(f"{R}/{retriever}/execute", json=body, headers=headers))
    assert result["status"] == "completed", result
    return result


def adhoc(client: TestClient) -> dict[str, Any]:
    request = {"collection_identifiers": [COLLECTION], "input_schema": SCHEMA, "stages": STAGES}
    result = ok(client.post(f"{R}/execute", json=request))
    assert result["status"] == "completed", result
    return result


def returned(execution: dict[str, Any]) -> list[str]:
    return [d["document_id"] for d in execution["documents"]]


def click(execution: dict[str, Any], index: int = 0, **fields: Any) -> dict[str, Any]:
    """An interaction on the document at ``index`` of the execution's returned page, at that position."""
    return {
        "execution_id": execution["execution_id"],
        "feature_id": execution["documents"][index]["document_id"],
        "position": index,
        "interaction_type": ["click"],
        **fields,
    }


def record(client: TestClient, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return client.post(IR, json=body, headers=headers)


def created(
    client: TestClient, body: dict[str, Any], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    found = ok(record(client, body, headers))
    assert found["deduplicated"] is False, found
    assert isinstance(found["interaction_id"], str) and found["interaction_id"].startswith("int_"), found
    return found


def batch(client: TestClient, items: list[dict[str, Any]], headers: dict[str, str] | None = None) -> Any:
    return client.post(f"{IR}/batch", json={"interactions": items}, headers=headers)


def listed(
    client: TestClient,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    **filters: Any,
) -> dict[str, Any]:
    query = {"include_total": "true", "limit": 1000, **(params or {})}
    found = ok(client.post(f"{IR}/list", json=filters, params=query, headers=headers))
    assert found["items"] == found["results"]
    assert ListInteractionsResponse.from_dict(found) is not None
    return found


def ids(payload: dict[str, Any]) -> list[str]:
    return [r["interaction_id"] for r in payload["results"]]


def everything(client: TestClient, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every interaction of the namespace (the tests store far fewer than 1,000 per namespace)."""
    found = listed(client, headers)
    assert found["pagination"]["total"] == len(found["results"])
    return found["results"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, embedder: TextEmbedder) -> Iterator[TestClient]:
    """The corpus and the retrievers `vec` and `vec2`, one server for the module (tests that only add)."""
    with served(settings_for(tmp_path_factory.mktemp("interactions") / "data"), embedder) as (client, _):
        yield load(client)


@pytest.fixture
def fresh(client: TestClient) -> TestClient:
    """The corpus on a server of its own: tests that count every interaction of the namespace."""
    return load(client)


# -- create, get, list, delete ---------------------------------------------------------------------------


def test_an_interaction_is_created_read_listed_and_deleted(fresh: TestClient) -> None:
    execution = execute(fresh)
    assert returned(execution) == DOC_IDS
    before = datetime.now(UTC)
    made = created(fresh, click(execution, 2))
    after = datetime.now(UTC)

    assert (made["feature_id"], made["position"], made["interaction_type"]) == ("p03", 2, ["click"])
    assert made["execution_id"] == execution["execution_id"]
    assert before - timedelta(seconds=1) <= when(made["timestamp"]) <= after + timedelta(seconds=1)
    assert not made.get("warning")
    assert InteractionResponse.from_dict(made) is not None

    read = ok(fresh.get(f"{IR}/{made['interaction_id']}"))
    assert read["interaction_id"] == made["interaction_id"] and read["feature_id"] == "p03"
    assert read["timestamp"] == made["timestamp"] and read["execution_id"] == execution["execution_id"]
    assert InteractionResponse.from_dict(read) is not None

    assert [r["interaction_id"] for r in everything(fresh)] == [made["interaction_id"]]

    deleted = ok(fresh.delete(f"{IR}/{made['interaction_id']}"))
    assert deleted["success"] is True and isinstance(deleted["message"], str)
    refused(fresh.get(f"{IR}/{made['interaction_id']}"), 404, "NotFoundError")
    refused(fresh.delete(f"{IR}/{made['interaction_id']}"), 404, "NotFoundError")
    assert everything(fresh) == []


def test_every_field_of_a_search_interaction_is_stored_and_returned(corpus: TestClient) -> None:
    execution = execute(corpus)
    sent = {
        "feature_id": "p02",
        "interaction_type": ["view", "click", "long_view"],
        "position": 1,
        "metadata": {
            "device": "mobile",
            "dwell_ms": 5400,
            "viewport": {"w": 390, "h": 844},
            "tags": ["a", "b"],
        },
        "user_id": "user-every-field",
        "session_id": "sess-every-field",
        "execution_id": execution["execution_id"],
        "retriever_id": execution["retriever_id"],
        "query_snapshot": {"v": [1, 0, 0, 0], "filters": {"category": "any"}},
        "document_score": 0.8731,
        "result_set_size": 8,
        "feature_uri": EMB_URI,
        "occurred_at": "2025-03-04T05:06:07Z",
    }
    made = created(corpus, sent)
    read = ok(corpus.get(f"{IR}/{made['interaction_id']}"))
    in_list = listed(corpus, user_id="user-every-field")["results"]
    assert [r["interaction_id"] for r in in_list] == [made["interaction_id"]]

    for found in (made, read, in_list[0]):
        for field in ("feature_id", "position", "metadata", "user_id", "session_id", "execution_id",
                      "retriever_id", "query_snapshot", "result_set_size", "feature_uri"):  # fmt: skip
            assert found[field] == sent[field], field
        assert sorted(found["interaction_type"]) == sorted(sent["interaction_type"])
        assert found["document_score"] == pytest.approx(sent["document_score"])
        assert when(found["occurred_at"]) == datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
        assert found["interaction_id"] == made["interaction_id"] and found["timestamp"] == made["timestamp"]
        parsed = InteractionResponse.from_dict(found)
        assert parsed is not None and parsed.metadata == sent["metadata"]


def test_document_id_is_accepted_as_an_alias_of_feature_id(corpus: TestClient) -> None:
    execution = execute(corpus)
    body = click(execution, 3)
    del body["feature_id"]
    made = created(corpus, {**body, "document_id": "p04"})

    assert made["feature_id"] == "p04" and made["position"] == 3
    assert ok(corpus.get(f"{IR}/{made['interaction_id']}"))["feature_id"] == "p04"
    assert ids(listed(corpus, execution_id=execution["execution_id"], feature_id="p04")) == [
        made["interaction_id"]
    ]


def test_a_single_interaction_type_string_is_a_one_element_list(corpus: TestClient) -> None:
    execution = execute(corpus)
    made = created(corpus, click(execution, 0, interaction_type="purchase"))

    assert made["interaction_type"] == ["purchase"]
    assert ok(corpus.get(f"{IR}/{made['interaction_id']}"))["interaction_type"] == ["purchase"]


def test_the_retriever_is_inferred_from_the_execution_and_a_matching_one_is_accepted(
    corpus: TestClient,
) -> None:
    execution = execute(corpus, "vec2")
    retriever_id = ok(corpus.get(f"{R}/vec2"))["retriever_id"]
    assert execution["retriever_id"] == retriever_id

    inferred = created(corpus, click(execution, 0))
    assert inferred["retriever_id"] == retriever_id
    assert ok(corpus.get(f"{IR}/{inferred['interaction_id']}"))["retriever_id"] == retriever_id
    given = created(corpus, click(execution, 1, retriever_id=retriever_id))
    assert given["retriever_id"] == retriever_id

    assert ids(listed(corpus, retriever_id=retriever_id)) == [
        given["interaction_id"],
        inferred["interaction_id"],
    ]


def test_an_interaction_on_an_adhoc_execution_is_accepted(corpus: TestClient) -> None:
    execution = adhoc(corpus)
    assert returned(execution) == DOC_IDS
    made = created(corpus, click(execution, 4, interaction_type=["view"]))

    assert (made["execution_id"], made["feature_id"], made["position"]) == (
        execution["execution_id"],
        "p05",
        4,
    )
    assert ids(listed(corpus, execution_id=execution["execution_id"])) == [made["interaction_id"]]


def test_a_paged_execution_accepts_the_index_in_the_page_or_the_absolute_rank(corpus: TestClient) -> None:
    execution = execute(corpus, **PAGE_2)
    assert returned(execution) == ["p04", "p05", "p06"]

    in_page = created(corpus, {**click(execution, 1), "user_id": "paged-user"})
    absolute = created(corpus, {**click(execution, 1), "position": 4, "user_id": "paged-user"})

    assert (in_page["feature_id"], in_page["position"]) == ("p05", 1)
    assert (absolute["feature_id"], absolute["position"]) == ("p05", 4)
    assert set(ids(listed(corpus, execution_id=execution["execution_id"]))) == {
        in_page["interaction_id"],
        absolute["interaction_id"],
    }


def test_an_interaction_on_an_execution_whose_documents_were_not_retained_is_accepted_with_a_warning(
    tmp_path: Path, embedder: TextEmbedder
) -> None:
    with served(settings_for(tmp_path / "data", retain_documents_days=0), embedder) as (client, _):
        load(client)
        execution = execute(client)
        assert (
            ok(client.get(f"{R}/vec/executions/{execution['execution_id']}"))["documents_retained"] is False
        )

        made = created(client, click(execution, 2))
        assert isinstance(made["warning"], str) and made["warning"]
        assert made["feature_id"] == "p03"
        assert ids(listed(client, execution_id=execution["execution_id"])) == [made["interaction_id"]]


# -- batch -----------------------------------------------------------------------------------------------


def test_a_batch_stores_its_valid_items_and_reports_each_failed_one(fresh: TestClient) -> None:
    execution = execute(fresh)
    items = [
        click(execution, 0),
        click(execution, 0, feature_id="not-returned"),  # a document the execution did not return
        click(execution, 1, interaction_type=["view", "click"]),
        click(execution, 2, interaction_type=["teleport"]),  # an unknown type
        click(execution, 3, position=-1),  # a negative position
        click(execution, 4, interaction_type="share"),
        click(execution, 5, position=6),  # p06 was not at position 6
    ]
    answer = ok(batch(fresh, items))

    assert (answer["created"], answer["failed"]) == (3, 4)
    assert len(answer["errors"]) == 4
    for index, message in zip((1, 3, 4, 6), answer["errors"], strict=True):
        assert message.startswith(f"index {index}:"), answer["errors"]
    assert "not-returned" in answer["errors"][0] and "teleport" in answer["errors"][1]

    by_index = {r["index"]: r for r in answer["results"]}
    good = [by_index[i] for i in (0, 2, 5)]
    for item in good:
        assert item["interaction_id"].startswith("int_"), item
    for i in (1, 3, 4, 6):  # a failed item is left out of results or reported with its error and no id
        assert i not in by_index or (not by_index[i].get("interaction_id") and by_index[i]["error"]), (
            by_index[i]
        )

    stored = everything(fresh)
    assert {r["interaction_id"] for r in stored} == {r["interaction_id"] for r in good}
    assert sorted((r["feature_id"], r["position"]) for r in stored) == [("p01", 0), ("p02", 1), ("p05", 4)]
    assert ok(fresh.get(f"{IR}/{good[2]['interaction_id']}"))["interaction_type"] == ["share"]
    # the contract's per-item result: {index, interaction_id, deduplicated, error?}
    assert [item.get("deduplicated") for item in good] == [False] * 3, good


def test_a_batch_of_1000_is_stored_and_one_of_1001_or_none_is_a_422_storing_nothing(
    fresh: TestClient,
) -> None:
    execution = execute(fresh)
    too_many = [click(execution, i % 8, user_id=f"u{i}") for i in range(1001)]
    for items in (too_many, []):
        refused(batch(fresh, items), 422, "ValidationError")
    assert everything(fresh) == []

    answer = ok(batch(fresh, too_many[:1000]))
    assert (answer["created"], answer["failed"]) == (1000, 0) and not answer["errors"]
    assert listed(fresh, params={"limit": 1})["pagination"]["total"] == 1000


def test_a_batch_sent_twice_is_deduplicated_the_second_time(fresh: TestClient) -> None:
    execution = execute(fresh)
    items = [click(execution, i, user_id="retrying") for i in range(3)]
    first = ok(batch(fresh, items))
    assert (first["created"], first["failed"]) == (3, 0)

    second = ok(batch(fresh, items))
    assert second["failed"] == 0 and not second["errors"]
    assert len(everything(fresh)) == 3
    again = sorted(second["results"], key=lambda r: r["index"])
    assert [r["index"] for r in again] == [0, 1, 2]
    # no new id: either none or the id of the interaction already stored
    originals = {r["index"]: r["interaction_id"] for r in first["results"]}
    assert all(r.get("interaction_id") in (None, originals[r["index"]]) for r in again), again
    assert [r.get("deduplicated") for r in again] == [True] * 3, again


def test_identical_items_in_one_batch_are_stored_once(fresh: TestClient) -> None:
    execution = execute(fresh)
    item = click(execution, 1, user_id="double-tap")
    answer = ok(batch(fresh, [item, item, click(execution, 2, user_id="double-tap")]))

    assert answer["failed"] == 0 and not answer["errors"]
    stored = everything(fresh)
    assert sorted(r["feature_id"] for r in stored) == ["p02", "p03"]
    assert {r["index"]: r["interaction_id"] for r in answer["results"]}[0] in {
        r["interaction_id"] for r in stored
    }


# -- list ------------------------------------------------------------------------------------------------


@pytest.fixture
def four(fresh: TestClient) -> tuple[TestClient, dict[str, str]]:
    """Four interactions on two executions of two retrievers, made in the order a, b, c, d."""
    ex_a, ex_b = execute(fresh, "vec"), execute(fresh, "vec2")
    made = {
        "a": created(fresh, click(ex_a, 0, user_id="u1", session_id="s1")),
        "b": created(fresh, click(ex_a, 1, interaction_type=["view"], user_id="u2", session_id="s1")),
        "c": created(
            fresh, click(ex_b, 0, interaction_type=["click", "purchase"], user_id="u1", session_id="s2")
        ),
        "d": created(fresh, click(ex_b, 2, interaction_type=["view"], user_id="u3", session_id="s2")),
    }
    names = {k: v["interaction_id"] for k, v in made.items()}
    names["ex_a"], names["ex_b"] = ex_a["execution_id"], ex_b["execution_id"]
    names["vec"], names["vec2"] = ex_a["retriever_id"], ex_b["retriever_id"]
    return fresh, names


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, "dcba"),
        ({"execution_id": "ex_a"}, "ba"),
        ({"execution_id": "ex_b"}, "dc"),
        ({"retriever_id": "vec2"}, "dc"),
        ({"session_id": "s1"}, "ba"),
        ({"user_id": "u1"}, "ca"),
        ({"feature_id": "p01"}, "ca"),
        ({"feature_id": "p03"}, "d"),
        ({"interaction_type": "click"}, "ca"),
        ({"interaction_type": "purchase"}, "c"),
        ({"interaction_type": "view"}, "db"),
        ({"execution_id": "ex_a", "user_id": "u1"}, "a"),
        ({"session_id": "s2", "interaction_type": "view"}, "d"),
        ({"user_id": "nobody"}, ""),
        ({"execution_id": "exec_doesnotexist"}, ""),
    ],
    ids=str,
)
def test_the_list_filters_and_puts_the_newest_first(
    four: tuple[TestClient, dict[str, str]], filters: dict[str, str], expected: str
) -> None:
    client, names = four
    body = {k: names.get(v, v) if k in ("execution_id", "retriever_id") else v for k, v in filters.items()}
    found = listed(client, **body)
    assert ids(found) == [names[k] for k in expected]
    assert found["pagination"]["total"] == len(expected)


def test_the_list_filters_by_a_time_range_on_when_it_occurred(fresh: TestClient) -> None:
    execution = execute(fresh)
    old = {
        name: created(fresh, click(execution, 0, user_id=name, occurred_at=at))["interaction_id"]
        for name, at in (("jan", "2024-01-01T12:00:00Z"), ("jun", "2024-06-01T12:00:00Z"),
                         ("2025", "2025-01-01T12:00:00Z"))
    }  # fmt: skip
    now = created(fresh, click(execution, 0, user_id="now"))["interaction_id"]

    def window(**bounds: str) -> set[str]:
        return set(ids(listed(fresh, **bounds)))

    assert window(since="2024-03-01T00:00:00Z") == {old["jun"], old["2025"], now}
    assert window(until="2024-03-01T00:00:00Z") == {old["jan"]}
    assert window(since="2024-03-01T00:00:00Z", until="2024-12-31T00:00:00Z") == {old["jun"]}
    assert window(since="2023-01-01T00:00:00Z", until="2025-06-01T00:00:00Z") == set(old.values())
    assert window(since=(datetime.now(UTC) - timedelta(hours=1)).isoformat()) == {now}
    assert window(until="2023-01-01T00:00:00Z") == set()


def test_the_list_is_paged_with_limit_and_offset_newest_first(fresh: TestClient) -> None:
    execution = execute(fresh)
    made = [created(fresh, click(execution, i))["interaction_id"] for i in range(5)][::-1]
    stamps = [when(r["timestamp"]) for r in everything(fresh)]
    assert stamps == sorted(stamps, reverse=True)

    first = listed(fresh, params={"limit": 2, "offset": 0})
    assert ids(first) == made[:2]
    assert first["pagination"]["total"] == 5 and first["pagination"]["has_next"] is True
    assert (first["pagination"]["limit"], first["pagination"]["offset"]) == (2, 0)
    assert ids(listed(fresh, params={"limit": 2, "offset": 2})) == made[2:4]
    last = listed(fresh, params={"limit": 2, "offset": 4})
    assert ids(last) == made[4:] and last["pagination"]["has_next"] is False
    assert ids(listed(fresh, params={"limit": 2, "offset": 10})) == []
    assert ids(listed(fresh, params={"limit": 3}, execution_id=execution["execution_id"])) == made[:3]


@pytest.mark.parametrize("limit", [0, 1001, -1])
def test_a_list_limit_outside_1_to_1000_is_a_422(corpus: TestClient, limit: int) -> None:
    refused(corpus.post(f"{IR}/list", json={}, params={"limit": limit}), 422, "ValidationError")


# -- deduplication ---------------------------------------------------------------------------------------


def test_the_same_interaction_twice_within_five_minutes_is_stored_once(corpus: TestClient) -> None:
    execution = execute(corpus)
    body = click(execution, 2, user_id="twice", session_id="sess-twice", interaction_type=["click", "view"])
    first = created(corpus, body)

    again = ok(record(corpus, body))
    assert again["deduplicated"] is True and again["interaction_id"] is None
    assert InteractionResponse.from_dict(again) is not None
    reordered = ok(record(corpus, {**body, "interaction_type": ["view", "click"]}))
    assert reordered["deduplicated"] is True and reordered["interaction_id"] is None
    with_alias = {k: v for k, v in body.items() if k != "feature_id"} | {"document_id": body["feature_id"]}
    assert ok(record(corpus, with_alias))["deduplicated"] is True

    assert ids(listed(corpus, execution_id=execution["execution_id"])) == [first["interaction_id"]]


@pytest.mark.parametrize(
    "change",
    [
        {"interaction_type": ["view"]},
        {"interaction_type": ["click", "view"]},
        {"position": 5},  # the same document, at its absolute rank instead of its index in the page
        {"user_id": "someone-else"},
        {"session_id": "another-session"},
        {"user_id": None},
    ],
    ids=str,
)
def test_a_different_type_position_user_or_session_is_not_a_duplicate(
    corpus: TestClient, change: dict[str, Any]
) -> None:
    execution = execute(corpus, **PAGE_2)
    body = click(execution, 2, user_id="u-dup", session_id="s-dup")
    assert (body["feature_id"], body["position"]) == ("p06", 2)
    first = created(corpus, body)
    second = created(corpus, {**body, **change})

    assert first["interaction_id"] != second["interaction_id"]
    assert set(ids(listed(corpus, execution_id=execution["execution_id"]))) == {
        first["interaction_id"],
        second["interaction_id"],
    }


def test_the_same_interaction_on_another_execution_is_not_a_duplicate(corpus: TestClient) -> None:
    one, two = execute(corpus), execute(corpus)
    first = created(corpus, click(one, 0, user_id="two-executions"))
    second = created(corpus, click(two, 0, user_id="two-executions"))
    assert ids(listed(corpus, user_id="two-executions")) == [
        second["interaction_id"],
        first["interaction_id"],
    ]


def test_the_same_interaction_after_five_minutes_is_stored_again(
    fresh: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution = execute(fresh)
    body = click(execution, 0, user_id="comes-back")
    first = created(fresh, body)
    start = when(first["timestamp"])

    monkeypatch.setattr(interactions_service, "utcnow", lambda: start + timedelta(minutes=4, seconds=50))
    assert ok(record(fresh, body))["deduplicated"] is True
    monkeypatch.setattr(interactions_service, "utcnow", lambda: start + timedelta(minutes=5, seconds=10))
    later = created(fresh, body)

    assert later["interaction_id"] != first["interaction_id"]
    assert set(ids(listed(fresh))) == {first["interaction_id"], later["interaction_id"]}


# -- bad input: refused, nothing stored ------------------------------------------------------------------


def _no_such_execution(ex: dict[str, Any]) -> dict[str, Any]:
    return {**click(ex, 0), "execution_id": "exec_doesnotexist"}


def _without_execution(ex: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in click(ex, 0, retriever_id=ex["retriever_id"]).items() if k != "execution_id"}


def _without_feature(ex: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in click(ex, 0).items() if k != "feature_id"}


BAD: dict[str, tuple[Callable[[dict[str, Any]], dict[str, Any]], int, str | None]] = {
    "unknown execution": (_no_such_execution, 404, None),
    "document not returned": (lambda ex: click(ex, 0, feature_id="p08"), 422, None),
    "unknown document": (lambda ex: click(ex, 0, feature_id="no-such-doc"), 422, None),
    "wrong position": (lambda ex: click(ex, 0, position=1), 422, None),
    "position past the page": (lambda ex: click(ex, 0, position=40), 422, None),
    "negative position": (lambda ex: click(ex, 0, position=-1), 422, "position"),
    "fractional position": (lambda ex: click(ex, 0, position=1.5), 422, "position"),
    "text position": (lambda ex: click(ex, 0, position="first"), 422, "position"),
    "missing position": (
        lambda ex: {k: v for k, v in click(ex, 0).items() if k != "position"},
        422,
        "position",
    ),
    "unknown type": (lambda ex: click(ex, 0, interaction_type=["teleport"]), 422, "interaction_type"),
    "unknown type among known": (
        lambda ex: click(ex, 0, interaction_type=["click", "x"]),
        422,
        "interaction_type",
    ),
    "unknown single type": (lambda ex: click(ex, 0, interaction_type="teleport"), 422, "interaction_type"),
    "no type": (lambda ex: click(ex, 0, interaction_type=[]), 422, "interaction_type"),
    "missing feature": (_without_feature, 422, "feature_id"),
    "wrong retriever": (lambda ex: click(ex, 0, retriever_id="ret_doesnotexist"), 422, None),
    "retriever without execution": (_without_execution, 422, None),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_and_nothing_is_stored(corpus: TestClient, case: str) -> None:
    execution = execute(corpus, **PAGE_2)  # p04, p05, p06
    make, status, field = BAD[case]
    before = everything(corpus)

    error = refused(
        record(corpus, make(execution)), status, "NotFoundError" if status == 404 else "ValidationError"
    )
    if field is not None:
        assert field in bad_fields(error), error
    assert everything(corpus) == before


def test_a_wrong_position_is_refused_saying_where_the_document_was(corpus: TestClient) -> None:
    execution = execute(corpus)
    assert returned(execution)[5] == "p06"
    before = everything(corpus)

    error = refused(record(corpus, click(execution, 5, position=1)), 422, "ValidationError")
    assert "p06" in error["message"] and "5" in error["message"], error
    assert everything(corpus) == before


def test_a_retriever_that_is_not_the_executions_is_refused(corpus: TestClient) -> None:
    execution = execute(corpus, "vec")
    other = ok(corpus.get(f"{R}/vec2"))["retriever_id"]
    before = everything(corpus)

    refused(record(corpus, click(execution, 0, retriever_id=other)), 422, "ValidationError")
    refused(record(corpus, click(adhoc(corpus), 0, retriever_id=other)), 422, "ValidationError")
    assert everything(corpus) == before


def test_an_execution_of_another_namespace_is_not_found(
    client: TestClient, make_key: Callable[..., str]
) -> None:
    load(client)
    execution = execute(client)
    limited_to_b = bearer(make_key("ns-b"), "ns-b")  # a key of namespace B only (B is created)
    admin_in_b = {"X-Namespace": "ns-b"}

    for headers in (limited_to_b, admin_in_b):
        error = refused(record(client, click(execution, 0), headers), 404, "NotFoundError")
        assert execution["execution_id"] in error["message"]
        answer = ok(batch(client, [click(execution, 1)], headers))
        assert (answer["created"], answer["failed"]) == (0, 1)
        assert everything(client, headers) == []
    assert everything(client) == []


def test_an_interaction_of_another_namespace_cannot_be_read_listed_or_deleted(
    client: TestClient, make_key: Callable[..., str]
) -> None:
    load(client)
    made = created(client, click(execute(client), 0))
    interaction_id = made["interaction_id"]

    for headers in (bearer(make_key("ns-b"), "ns-b"), {"X-Namespace": "ns-b"}):
        refused(client.get(f"{IR}/{interaction_id}", headers=headers), 404, "NotFoundError")
        refused(client.delete(f"{IR}/{interaction_id}", headers=headers), 404, "NotFoundError")
        assert everything(client, headers) == []
    read = ok(client.get(f"{IR}/{interaction_id}"))
    assert (read["interaction_id"], read["feature_id"]) == (interaction_id, made["feature_id"])
    assert ids(listed(client)) == [interaction_id]


def test_namespaces_keep_their_own_interactions(client: TestClient) -> None:
    ok(client.post("/v1/namespaces", json={"namespace_name": "ns-b"}))
    b = {"X-Namespace": "ns-b"}
    load(client)
    load(client, b)
    in_default = created(client, click(execute(client), 0))
    in_b = created(client, click(execute(client, headers=b), 1), b)

    assert ids(listed(client)) == [in_default["interaction_id"]]
    assert ids(listed(client, b)) == [in_b["interaction_id"]]
    refused(client.get(f"{IR}/{in_b['interaction_id']}"), 404, "NotFoundError")
    assert ok(client.get(f"{IR}/{in_b['interaction_id']}", headers=b))["feature_id"] == "p02"


@pytest.mark.parametrize("interaction_id", ["int_doesnotexist", "nothing-like-an-id"])
def test_an_unknown_interaction_is_not_found(corpus: TestClient, interaction_id: str) -> None:
    refused(corpus.get(f"{IR}/{interaction_id}"), 404, "NotFoundError")
    refused(corpus.delete(f"{IR}/{interaction_id}"), 404, "NotFoundError")


# -- durability and concurrency --------------------------------------------------------------------------


def test_interactions_survive_a_restart(settings: Settings, embedder: TextEmbedder) -> None:
    with served(settings, embedder) as (client, _):
        load(client)
        execution = execute(client)
        made = created(client, click(execution, 1, user_id="durable", metadata={"k": "v"}))
        answer = ok(batch(client, [click(execution, i, user_id="durable") for i in (2, 3)]))
        assert answer["created"] == 2
        before = everything(client)
    assert len(before) == 3

    with served(settings, embedder) as (client, _):
        assert everything(client) == before
        assert ok(client.get(f"{IR}/{made['interaction_id']}"))["metadata"] == {"k": "v"}
        assert ids(listed(client, user_id="durable", execution_id=execution["execution_id"])) == ids(
            {"results": before}
        )


def test_an_interaction_recorded_before_a_restart_still_deduplicates_after_it(
    settings: Settings, embedder: TextEmbedder
) -> None:
    with served(settings, embedder) as (client, _):
        load(client)
        execution = execute(client)
        body = click(execution, 1, user_id="retry-across-restart")
        first = created(client, body)
    with served(settings, embedder) as (client, _):
        again = ok(record(client, body))
        assert again["deduplicated"] is True and again["interaction_id"] is None
        assert ids(listed(client)) == [first["interaction_id"]]


def test_concurrent_writers_lose_no_interaction(fresh: TestClient) -> None:
    execution = execute(fresh)
    threads, per_thread = 8, 50
    barrier = threading.Barrier(threads)
    answers: dict[int, list[Any]] = {}

    def write(t: int) -> None:
        barrier.wait()
        answers[t] = [
            record(fresh, click(execution, (t + i) % 8, user_id=f"user-{t}-{i}", session_id=f"s-{t}"))
            for i in range(per_thread)
        ]

    workers = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
    assert time.monotonic() - started < 240 and len(answers) == threads

    responses = [r for t in range(threads) for r in answers[t]]
    assert [r.status_code for r in responses] == [200] * threads * per_thread, [
        r.text for r in responses if r.status_code != 200
    ][:3]
    made = [r.json() for r in responses]
    assert not any(m["deduplicated"] for m in made)
    made_ids = {m["interaction_id"] for m in made}
    assert len(made_ids) == threads * per_thread

    stored = everything(fresh)
    assert {r["interaction_id"] for r in stored} == made_ids
    assert {r["user_id"] for r in stored} == {
        f"user-{t}-{i}" for t in range(threads) for i in range(per_thread)
    }
    for t in range(threads):
        assert listed(fresh, session_id=f"s-{t}")["pagination"]["total"] == per_thread
