"""Executing retrievers over HTTP, saved and ad hoc: the response contract, inputs, filters, pagination
(offset, cursor, keyset), vectors, budget, failing stages and a deleted collection.

Corpus: 12 short documents p01…p12 with a category, a year and a 4-d vector ``emb`` at angle 0.1·i from
[1, 0, 0, 0], so a vector search for [1, 0, 0, 0] ranks them p01, p02, … p12 with distinct scores.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from helpers import TEXT_COLLECTION, served, settings_for, tiny_cross_encoder
from siftline.credits import stage_credits
from siftline.features.embedder import TextEmbedder

R = "/v1/retrievers"
COLLECTION = TEXT_COLLECTION["collection_name"]
EMB_URI = "mixpeek://vectors@v1/emb"
BM25_URI = "mixpeek://text_extractor@v1/bm25"
CREDITS_EXCEEDED = "Budget exceeded: Maximum credits limit reached"
TIME_EXCEEDED = "Budget exceeded: Maximum time limit reached"
ROWS = [
    ("Cats purr", "a cat purrs when content", "pets", 2015),
    ("Dog walks", "walking a dog every day", "pets", 2018),
    ("Stock picks", "markets and stocks for beginners", "finance", 2020),
    ("Pasta night", "a quick pasta dinner", "food", 2012),
    ("Kitten care", "how to feed a kitten and a cat", "pets", 2021),
    ("Bond basics", "bonds and interest rates explained", "finance", 2016),
    ("Soup season", "warm soup recipes", "food", 2019),
    ("Cat toys", "toys a cat will love", "pets", 2014),
    ("Crypto", "digital currency markets", "finance", 2013),
    ("Bread", "baking sourdough bread at home", "food", 2017),
    ("Parrots", "talking parrots and their care", "pets", 2011),
    ("Savings", "saving money each month", "finance", 2010),
]


def emb(i: int) -> list[float]:
    return [math.cos(0.1 * i), math.sin(0.1 * i), 0.0, 0.0]


DOCS = [
    {"document_id": f"p{i + 1:02d}", "title": title, "text": text, "category": category, "year": year,
     "vectors": {"emb": emb(i)}}
    for i, (title, text, category, year) in enumerate(ROWS)
]  # fmt: skip
ALL = [d["document_id"] for d in DOCS]  # the ranking for [1, 0, 0, 0]
PETS = [d["document_id"] for d in DOCS if d["category"] == "pets"]
SCHEMA = {"v": {"type": "array", "default": [1, 0, 0, 0]}, "q": {"type": "text", "default": "cat"}}


def search(name: str = "search", vector: Any = "{{ INPUT.v }}", **params: Any) -> dict[str, Any]:
    query = {"input_mode": "vector", "value": vector}
    return {
        "stage_name": name,
        "stage_type": "filter",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [{"feature_uri": EMB_URI, "query": query}],
                "final_top_k": 50,
                **params,
            },
        },
    }


HYBRID = {
    "stage_name": "hybrid",
    "stage_type": "filter",
    "config": {
        "stage_id": "feature_search",
        "parameters": {
            "searches": [
                {"feature_uri": EMB_URI, "query": {"input_mode": "vector", "value": "{{ INPUT.v }}"}},
                {"feature_uri": BM25_URI, "query": {"input_mode": "text", "value": "{{ INPUT.q }}"}},
            ],
            "final_top_k": 50,
        },
    },
}
BY_YEAR = {
    "stage_name": "by_year",
    "stage_type": "sort",
    "config": {"stage_id": "sort_attribute", "parameters": {"field": "year"}},
}
SAVED = {
    "retriever_name": "vec",
    "collection_identifiers": [COLLECTION],
    "input_schema": SCHEMA,
    "stages": [search(), {"stage_name": "cap", "config": {"stage_id": "limit", "parameters": {"limit": 50}}}],
}


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def error(response: Any, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["success"] is False and payload["error"]["type"] == error_type
    return payload["error"]


def adhoc(client: TestClient, stages: list[dict[str, Any]], **extra: Any) -> Any:
    body = {"collection_identifiers": [COLLECTION], "input_schema": SCHEMA, "stages": stages, **extra}
    return client.post(f"{R}/execute", json=body)


def ids(payload: dict[str, Any]) -> list[str]:
    return [d["document_id"] for d in payload["documents"]]


def load(client: TestClient) -> TestClient:
    assert client.post("/v1/collections", json=TEXT_COLLECTION).status_code == 200
    response = client.post(f"/v1/collections/{COLLECTION}/documents/batch", json={"documents": DOCS})
    assert response.status_code == 200, response.text
    return client


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, embedder: TextEmbedder) -> Iterator[TestClient]:
    """The corpus and the saved retriever `vec`, one server per module: tests that only execute."""
    with served(settings_for(tmp_path_factory.mktemp("execute") / "data"), embedder) as (client, _):
        load(client)
        ok(client.post(R, json=SAVED))
        yield client


@pytest.fixture
def fresh(client: TestClient) -> TestClient:
    """The corpus on a server of its own: tests that create retrievers or delete things."""
    return load(client)


# -- the response -----------------------------------------------------------------------------------------


def test_a_saved_execution_returns_ranked_documents_with_statistics_and_budget(corpus: TestClient) -> None:
    result = ok(corpus.post(f"{R}/vec/execute", json={"inputs": {"v": [1, 0, 0, 0]}, "limit": 5}))

    assert result["execution_id"].startswith("exec_") and result["status"] == "completed"
    assert result["retriever_id"] == ok(corpus.get(f"{R}/vec"))["retriever_id"]
    assert "error" not in result
    assert ids(result) == ALL[:5]
    collection_id = ok(corpus.get(f"/v1/collections/{COLLECTION}"))["collection_id"]
    for doc, source, i in zip(result["documents"], DOCS, range(5), strict=False):
        assert doc["collection_id"] == collection_id
        assert doc["score"] == pytest.approx(math.cos(0.1 * i), abs=1e-5)
        assert {k: doc[k] for k in ("title", "text", "category", "year")} == {
            k: source[k] for k in ("title", "text", "category", "year")
        }
        assert "vectors" not in doc
    assert result["pagination"]["total"] == 12 and result["pagination"]["returned"] == 5

    stats = result["stage_statistics"]
    assert list(stats["stages"]) == ["search", "cap"]
    for stage in stats["stages"].values():
        assert {"input_count", "output_count", "duration_ms", "efficiency", "metadata"} <= set(stage)
    assert [(s["input_count"], s["output_count"]) for s in stats["stages"].values()] == [(0, 12), (12, 12)]
    assert [s["efficiency"] for s in stats["stages"].values()] == [0.0, 1.0]
    assert stats["total_time_ms"] > 0

    per_stage = [s["metadata"]["credits"] for s in stats["stages"].values()]
    assert per_stage == pytest.approx([stage_credits("feature_search", 1, 12), stage_credits("limit", 1, 12)])
    assert result["budget"]["credits_used"] > 0
    assert result["budget"]["credits_used"] == pytest.approx(sum(per_stage), abs=1e-6)
    assert stats["credits_used"] == pytest.approx(sum(per_stage), abs=1e-6)


def test_an_adhoc_execution_answers_like_a_saved_one_with_the_adhoc_header(corpus: TestClient) -> None:
    response = adhoc(corpus, SAVED["stages"], inputs={"v": [1, 0, 0, 0]}, limit=5)
    result = ok(response)

    assert response.headers["X-Execution-Mode"] == "adhoc"
    assert result["execution_id"].startswith("exec_") and result["status"] == "completed"
    saved = ok(corpus.post(f"{R}/vec/execute", json={"inputs": {"v": [1, 0, 0, 0]}, "limit": 5}))
    assert result["documents"] == saved["documents"] and result["pagination"] == saved["pagination"]
    assert list(result["stage_statistics"]["stages"]) == ["search", "cap"]
    assert result["budget"]["credits_used"] == pytest.approx(saved["budget"]["credits_used"])


def test_every_execution_gets_its_own_id(corpus: TestClient) -> None:
    first = ok(corpus.post(f"{R}/vec/execute", json={}))
    second = ok(corpus.post(f"{R}/vec/execute", json={}))
    assert first["execution_id"] != second["execution_id"]
    assert first["documents"] == second["documents"]


def test_a_hybrid_pipeline_reports_each_search_and_stage(corpus: TestClient) -> None:
    result = ok(adhoc(corpus, [HYBRID, BY_YEAR], inputs={"q": "cat"}, limit=50))

    stats = result["stage_statistics"]["stages"]
    assert [s["feature_uri"] for s in stats["hybrid"]["metadata"]["searches"]] == [EMB_URI, BM25_URI]
    assert stats["hybrid"]["metadata"]["fusion"] == "rrf"
    assert stats["by_year"]["input_count"] == stats["hybrid"]["output_count"] == len(result["documents"])
    years = [d["year"] for d in result["documents"]]
    assert years == sorted(years, reverse=True)
    assert stats["by_year"]["metadata"]["credits"] == pytest.approx(stage_credits("sort_attribute", 1, 12))
    assert stats["hybrid"]["metadata"]["credits"] == pytest.approx(stage_credits("feature_search", 2, 12))


# -- inputs ---------------------------------------------------------------------------------------------


def test_a_missing_required_input_is_a_422_naming_it(corpus: TestClient) -> None:
    schema = {**SCHEMA, "q": {"type": "text", "required": True}}
    err = error(
        adhoc(corpus, [HYBRID], input_schema=schema, inputs={"v": [1, 0, 0, 0]}), 422, "ValidationError"
    )
    assert err["details"]["errors"] == [
        {"loc": ["body", "inputs", "q"], "msg": "input 'q' is required", "type": "missing"}
    ]
    assert "'q'" in err["message"]


@pytest.mark.parametrize(
    "inputs, name",
    [({"v": "1,0,0,0"}, "v"), ({"q": 42}, "q"), ({"v": {"x": 1}}, "v"), ({"q": ["cat"]}, "q")],
)
def test_an_input_of_the_wrong_type_is_a_422_naming_it(
    corpus: TestClient, inputs: dict[str, Any], name: str
) -> None:
    err = error(corpus.post(f"{R}/vec/execute", json={"inputs": inputs}), 422, "ValidationError")
    assert err["details"]["errors"][0]["loc"] == ["body", "inputs", name] and f"'{name}'" in err["message"]


def test_an_input_outside_its_enum_is_a_422(corpus: TestClient) -> None:
    schema = {**SCHEMA, "q": {"type": "text", "enum": ["cat", "dog"]}}
    err = error(adhoc(corpus, [HYBRID], input_schema=schema, inputs={"q": "bird"}), 422, "ValidationError")
    assert err["details"]["errors"][0]["loc"] == ["body", "inputs", "q"]


def test_input_defaults_are_applied(corpus: TestClient) -> None:
    defaulted = ok(corpus.post(f"{R}/vec/execute", json={"limit": 50}))
    explicit = ok(corpus.post(f"{R}/vec/execute", json={"inputs": {"v": [1, 0, 0, 0]}, "limit": 50}))
    assert ids(defaulted) == ids(explicit) == ALL
    other = ok(corpus.post(f"{R}/vec/execute", json={"inputs": {"v": emb(11)}, "limit": 50}))
    assert ids(other) == ALL[::-1]


# -- filters --------------------------------------------------------------------------------------------


def test_request_filters_are_anded_into_every_search(corpus: TestClient) -> None:
    pets = {"AND": [{"field": "category", "operator": "eq", "value": "pets"}]}
    result = ok(adhoc(corpus, [HYBRID], inputs={"q": "markets cat"}, filters=pets, limit=50))

    assert sorted(ids(result)) == sorted(PETS)  # the bm25 leg found finance documents: filtered out too
    assert all(d["category"] == "pets" for d in result["documents"])
    assert result["stage_statistics"]["stages"]["hybrid"]["metadata"]["filtered"] is True


def test_request_filters_combine_with_stage_pre_filters_and_read_inputs(corpus: TestClient) -> None:
    stage = search()
    stage["config"]["pre_filters"] = {"AND": [{"field": "year", "operator": "gte", "value": 2014}]}
    since = {
        "AND": [{"field": "year", "operator": "lte", "value": {"type": "dynamic", "field": "inputs.until"}}]
    }
    schema = {**SCHEMA, "until": {"type": "integer"}}

    result = ok(adhoc(corpus, [stage], input_schema=schema, inputs={"until": 2016}, filters=since, limit=50))
    assert sorted(d["year"] for d in result["documents"]) == [2014, 2015, 2016]
    assert ids(result) == [
        d for d in ALL if 2014 <= next(x["year"] for x in DOCS if x["document_id"] == d) <= 2016
    ]


def test_malformed_request_filters_are_a_422_locating_the_problem(corpus: TestClient) -> None:
    bad = {"AND": [{"field": "category", "operator": "like", "value": "p%"}]}
    err = error(corpus.post(f"{R}/vec/execute", json={"filters": bad}), 422, "ValidationError")
    assert err["details"]["errors"][0]["loc"] == ["body", "filters", "AND", 0, "operator"]


# -- pagination -----------------------------------------------------------------------------------------


def execute(client: TestClient, **body: Any) -> dict[str, Any]:
    return ok(client.post(f"{R}/vec/execute", json=body))


def test_offset_pages_continue_each_other(corpus: TestClient) -> None:
    pages = [
        execute(corpus, pagination={"method": "offset", "page_size": 5, "page_number": n}) for n in (1, 2, 3)
    ]

    assert ids(pages[0]) + ids(pages[1]) + ids(pages[2]) == ALL
    first, second, last = (p["pagination"] for p in pages)
    assert (first["has_previous"], first["has_next"], first["offset"], first["returned"]) == (
        False,
        True,
        0,
        5,
    )
    assert (second["has_previous"], second["has_next"], second["offset"]) == (True, True, 5)
    assert (last["has_next"], last["returned"], last["total"]) == (False, 2, 12)
    beyond = execute(corpus, pagination={"method": "offset", "page_size": 5, "page_number": 4})
    assert beyond["documents"] == [] and beyond["pagination"]["returned"] == 0


def test_walking_the_cursor_yields_every_result_exactly_once(corpus: TestClient) -> None:
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = {"method": "cursor", "limit": 5, **({"cursor": cursor} if cursor else {})}
        result = execute(corpus, inputs={"v": [0.6, 0.8, 0, 0]}, pagination=page)
        assert result["pagination"]["total"] == 12 and result["pagination"]["returned"] == len(
            result["documents"]
        )
        seen += ids(result)
        cursor = result["pagination"]["next_cursor"]
        if cursor is None:
            assert result["pagination"]["has_next"] is False
            break
    full = ids(execute(corpus, inputs={"v": [0.6, 0.8, 0, 0]}, limit=50))
    assert seen == full and len(set(seen)) == 12


def test_a_cursor_used_with_other_inputs_or_filters_is_a_400(corpus: TestClient) -> None:
    first = execute(corpus, pagination={"method": "cursor", "limit": 5})
    cursor = first["pagination"]["next_cursor"]
    assert cursor

    next_page = {"method": "cursor", "limit": 5, "cursor": cursor}
    for other in ({"inputs": {"v": [0, 1, 0, 0]}}, {"filters": {"category": "pets"}}):
        response = corpus.post(f"{R}/vec/execute", json={**other, "pagination": next_page})
        assert "cursor" in error(response, 400, "BadRequestError")["message"]
    # the saved retriever's cursor does not fit an ad hoc query of the same stages
    error(adhoc(corpus, SAVED["stages"], pagination=next_page), 400, "BadRequestError")
    for garbage in ("not-a-cursor", "eyJ9", "W10", "bnVsbA", "%%%"):
        response = corpus.post(
            f"{R}/vec/execute", json={"pagination": {"method": "cursor", "cursor": garbage}}
        )
        error(response, 400, "BadRequestError")


def test_keyset_pages_continue_after_the_previous_last_document(corpus: TestClient) -> None:
    seen: list[str] = []
    after: dict[str, Any] | None = None
    for _ in range(10):
        page = {"method": "keyset", "limit": 5, **({"after": after} if after else {})}
        result = execute(corpus, pagination=page)
        seen += ids(result)
        after = result["pagination"]["next_cursor"]
        if after is None:
            break
        assert after["document_id"] == seen[-1]
    assert seen == ALL


@pytest.mark.parametrize("key", ["limit", "page_size"])
def test_limit_and_page_size_shorthands_size_the_page(corpus: TestClient, key: str) -> None:
    result = execute(corpus, **{key: 3})
    assert ids(result) == ALL[:3]
    assert result["pagination"]["returned"] == 3 and result["pagination"]["total"] == 12
    assert result["pagination"]["has_next"] is True


def test_the_default_page_has_ten_documents(corpus: TestClient) -> None:
    result = execute(corpus)
    assert ids(result) == ALL[:10] and result["pagination"]["total"] == 12


def test_return_vectors_adds_each_documents_vectors(corpus: TestClient) -> None:
    with_vectors = execute(corpus, return_vectors=True, limit=50)
    for doc in with_vectors["documents"]:
        i = ALL.index(doc["document_id"])
        assert doc["vectors"]["emb"] == pytest.approx(emb(i), abs=1e-6)
    assert all("vectors" not in doc for doc in execute(corpus, limit=50)["documents"])


# -- budget ---------------------------------------------------------------------------------------------

FIRST_STAGE = stage_credits("feature_search", 1, 12)
TWO_STAGES = [search(), BY_YEAR]


def test_a_request_credit_budget_too_small_for_the_second_stage_fails_the_run(corpus: TestClient) -> None:
    budget = {"max_credits": FIRST_STAGE + 0.005}  # the second stage costs at least 0.01
    for response in (
        adhoc(corpus, TWO_STAGES, budget_limits=budget),
        corpus.post(f"{R}/vec/execute", json={"budget_limits": budget}),
    ):
        result = ok(response)
        assert result["status"] == "failed"
        assert result["error"] == CREDITS_EXCEEDED
        assert list(result["stage_statistics"]["stages"]) == ["search"]
        assert result["documents"] == [] and result["budget"]["credits_used"] == pytest.approx(FIRST_STAGE)
        assert result["budget"]["max_credits"] == pytest.approx(FIRST_STAGE + 0.005)


def test_a_retriever_credit_budget_too_small_for_the_second_stage_fails_its_runs(fresh: TestClient) -> None:
    ok(
        fresh.post(
            R,
            json={**SAVED, "retriever_name": "tight", "budget_limits": {"max_credits": FIRST_STAGE + 0.005}},
        )
    )
    result = ok(fresh.post(f"{R}/tight/execute", json={}))

    assert result["status"] == "failed" and result["error"] == CREDITS_EXCEEDED
    assert list(result["stage_statistics"]["stages"]) == ["search"]
    assert result["stage_statistics"]["stages"]["search"]["output_count"] == 12


def test_a_request_budget_does_not_lift_the_retrievers_credit_limit(fresh: TestClient) -> None:
    tight = {**SAVED, "retriever_name": "tight", "budget_limits": {"max_credits": FIRST_STAGE + 0.005}}
    ok(fresh.post(R, json=tight))
    result = ok(fresh.post(f"{R}/tight/execute", json={"budget_limits": {"max_time_ms": 60_000}}))
    assert result["status"] == "failed" and result["error"] == CREDITS_EXCEEDED


def test_a_zero_time_budget_on_the_request_fails_the_run(corpus: TestClient) -> None:
    for response in (
        adhoc(corpus, TWO_STAGES, budget_limits={"max_time_ms": 0}),
        corpus.post(f"{R}/vec/execute", json={"budget_limits": {"max_time_ms": 0}}),
    ):
        result = ok(response)
        assert result["status"] == "failed" and result["error"] == TIME_EXCEEDED
        assert result["stage_statistics"]["stages"] == {} and result["documents"] == []


def test_a_zero_time_budget_on_the_retriever_fails_its_runs(fresh: TestClient) -> None:
    ok(fresh.post(R, json={**SAVED, "retriever_name": "hurried", "budget_limits": {"max_time_ms": 0}}))
    result = ok(fresh.post(f"{R}/hurried/execute", json={}))
    assert result["status"] == "failed" and result["error"] == TIME_EXCEEDED
    assert result["stage_statistics"]["stages"] == {}


def test_a_generous_budget_completes_and_reports_what_remains(corpus: TestClient) -> None:
    result = ok(adhoc(corpus, TWO_STAGES, budget_limits={"max_credits": 10, "max_time_ms": 60_000}))
    assert result["status"] == "completed"
    budget = result["budget"]
    assert budget["credits_remaining"] == pytest.approx(10 - budget["credits_used"], abs=1e-6)
    assert budget["max_time_ms"] == 60_000 and budget["time_used_ms"] >= 0


# -- failures -------------------------------------------------------------------------------------------


def test_a_stage_failing_at_run_time_fails_the_run_naming_it(corpus: TestClient) -> None:
    stages = [search("first"), search("bad", vector="{{ INPUT.w }}"), BY_YEAR]
    schema = {**SCHEMA, "w": {"type": "array", "required": True}}
    result = ok(adhoc(corpus, stages, input_schema=schema, inputs={"w": [1, 0, 0]}))  # emb has 4 dimensions

    assert result["status"] == "failed" and result["documents"] == []
    assert result["error"].startswith("Stage 'bad' (feature_search, index 1) failed:")
    assert "3 dimensions" in result["error"]
    stages_run = result["stage_statistics"]["stages"]
    assert list(stages_run) == ["first", "bad"]
    assert stages_run["first"]["output_count"] == 12 and stages_run["first"]["error"] is None
    assert stages_run["bad"]["error"]
    assert result["budget"]["credits_used"] == pytest.approx(FIRST_STAGE)


def test_a_saved_retriever_whose_collection_was_deleted_fails_its_runs(fresh: TestClient) -> None:
    ok(fresh.post(R, json=SAVED))
    assert ok(fresh.post(f"{R}/vec/execute", json={}))["status"] == "completed"
    ok(fresh.delete(f"/v1/collections/{COLLECTION}"))

    result = ok(fresh.post(f"{R}/vec/execute", json={}))
    assert result["status"] == "failed" and result["documents"] == []
    assert result["error"].startswith("Retriever execution failed: Collection not found")
    assert result["execution_id"].startswith("exec_")


def test_a_rerank_whose_model_was_removed_after_creation_fails_the_run_naming_it(
    fresh: TestClient, tmp_path: Path
) -> None:
    folder = tiny_cross_encoder().build_counting_cross_encoder(tmp_path / "ce", 4937)  # counts "cat"
    rerank = {
        "stage_name": "ce",
        "stage_type": "sort",
        "config": {"stage_id": "rerank", "parameters": {"model_path": str(folder), "query": "cat"}},
    }
    ok(fresh.post(R, json={**SAVED, "retriever_name": "reranked", "stages": [search(), rerank]}))
    assert ok(fresh.post(f"{R}/reranked/execute", json={}))["status"] == "completed"
    shutil.rmtree(folder)

    response = fresh.post(f"{R}/reranked/execute", json={})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "failed" and result["error"].startswith("Stage 'ce' (rerank, index 1) failed:")
    assert list(result["stage_statistics"]["stages"]) == ["search", "ce"]
    assert result["stage_statistics"]["stages"]["search"]["output_count"] == 12


# -- bad input is never a 500 ---------------------------------------------------------------------------

BAD_EXECUTE_BODIES: list[Any] = [
    {"inputs": [1, 2]},
    {"inputs": "v"},
    {"filters": {"AND": "x"}},
    {"filters": {"OR": [{"field": "", "value": 1}]}},
    {"limit": 0},
    {"limit": 501},
    {"limit": "ten"},
    {"page_size": -3},
    {"pagination": "offset"},
    {"pagination": {"method": "random"}},
    pytest.param(
        {"pagination": {"method": "offset", "page_number": 0}},
        id="page-number-0",
    ),
    {"pagination": {"method": "offset", "page_size": True}},
    {"pagination": {"method": "cursor", "cursor": 12}},
    {"pagination": {"method": "keyset", "after": {"score": 1}}},
    {"pagination": {"method": "keyset", "after": "p03"}},
    {"budget_limits": {"max_credits": -1}},
    {"budget_limits": {"max_credits": "lots"}},
    {"budget_limits": {"tokens": 5}},
    {"return_vectors": "sometimes"},
]


@pytest.mark.parametrize("bad", BAD_EXECUTE_BODIES)
def test_bad_execute_bodies_are_4xx_errors_not_500(corpus: TestClient, bad: dict[str, Any]) -> None:
    for response in (corpus.post(f"{R}/vec/execute", json=bad), adhoc(corpus, SAVED["stages"], **bad)):
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["success"] is False


@pytest.mark.parametrize(
    "bad",
    [
        {"stages": []},
        {"stages": "search"},
        {"stages": [{"stage_id": "nope"}]},
        {"collection_identifiers": ["ghost"]},
        {"collection_identifiers": "papers"},
        {"input_schema": {"v": {"type": "tensor"}}},
        {"stages": [search(vector="{{ INPUT.undeclared }}")]},
    ],
)
def test_bad_adhoc_definitions_are_422_not_500(corpus: TestClient, bad: dict[str, Any]) -> None:
    body = {"collection_identifiers": [COLLECTION], "input_schema": SCHEMA, "stages": SAVED["stages"], **bad}
    error(corpus.post(f"{R}/execute", json=body), 422, "ValidationError")


def test_an_adhoc_execution_without_stages_is_a_422(corpus: TestClient) -> None:
    error(corpus.post(f"{R}/execute", json={"collection_identifiers": [COLLECTION]}), 422, "ValidationError")
