"""Retrievers over HTTP: create, read by id or name, list, PATCH (metadata only), delete, clone, the
stage catalogue, validation at creation (each error a 422 locating the stage and field), namespaces."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from helpers import TEXT_COLLECTION, served, settings_for
from siftline.features.embedder import TextEmbedder

R = "/v1/retrievers"
COLLECTION = TEXT_COLLECTION["collection_name"]
EMB_URI = "mixpeek://vectors@v1/emb"
DENSE_URI = "mixpeek://text_extractor@v1/all_minilm_l6_v2"
BM25_URI = "mixpeek://text_extractor@v1/bm25"
SEARCH = {
    "stage_name": "search",
    "stage_type": "filter",
    "config": {
        "stage_id": "feature_search",
        "parameters": {
            "searches": [
                {
                    "feature_uri": EMB_URI,
                    "query": {"input_mode": "vector", "value": "{{ INPUT.v }}"},
                    "top_k": 10,
                },
                {
                    "feature_uri": BM25_URI,
                    "query": {"input_mode": "text", "value": "{{ INPUT.q }}"},
                    "top_k": 10,
                },
            ],
            "fusion": "rrf",
            "final_top_k": 5,
        },
    },
}
CAP = {
    "stage_name": "cap",
    "stage_type": "reduce",
    "config": {"stage_id": "limit", "parameters": {"limit": 3}},
}
SCHEMA = {"v": {"type": "array", "default": [1, 0, 0, 0]}, "q": {"type": "text", "default": "cat"}}
DOCS = [
    {"document_id": "cat", "text": "a cat on a mat", "category": "pets", "vectors": {"emb": [1, 0, 0, 0]}},
    {"document_id": "dog", "text": "a dog in a park", "category": "pets", "vectors": {"emb": [0, 1, 0, 0]}},
    {"document_id": "bank", "text": "rates went up", "category": "money", "vectors": {"emb": [0, 0, 1, 0]}},
]


def body(name: str = "hybrid", **overrides: Any) -> dict[str, Any]:
    """A valid create body: a hybrid search then a limit over `papers`."""
    out: dict[str, Any] = {
        "retriever_name": name,
        "description": "vector + bm25, capped",
        "collection_identifiers": [COLLECTION],
        "stages": [copy.deepcopy(SEARCH), copy.deepcopy(CAP)],
        "input_schema": copy.deepcopy(SCHEMA),
        "budget_limits": {"max_credits": 50},
        "tags": ["prod"],
        "metadata": {"owner": "search"},
    }
    out.update(overrides)
    return out


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()


def error(response: Any, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["success"] is False and payload["status"] == status
    assert payload["error"]["type"] == error_type
    return payload["error"]


@pytest.fixture
def papers(client: TestClient) -> TestClient:
    """A fresh server holding the empty `papers` collection (text features and the 4-d `emb` vector)."""
    ok(client.post("/v1/collections", json=TEXT_COLLECTION))
    return client


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, embedder: TextEmbedder) -> Iterator[TestClient]:
    """`papers` with three documents and the retriever `hybrid`, one server per module: read-only tests."""
    with served(settings_for(tmp_path_factory.mktemp("retrievers") / "data"), embedder) as (client, _):
        ok(client.post("/v1/collections", json=TEXT_COLLECTION))
        ok(client.post(f"/v1/collections/{COLLECTION}/documents/batch", json={"documents": DOCS}))
        ok(client.post(R, json=body()))
        yield client


# -- create and read ------------------------------------------------------------------------------------


def test_create_returns_the_retriever_with_an_id_and_its_normalised_stages(papers: TestClient) -> None:
    created = ok(papers.post(R, json=body()))

    assert created["retriever_id"].startswith("ret_") and created["retriever_name"] == "hybrid"
    assert created["description"] == "vector + bm25, capped" and created["version"] == 1
    collection_id = ok(papers.get(f"/v1/collections/{COLLECTION}"))["collection_id"]
    assert created["collection_ids"] == [collection_id]
    assert [s["stage_name"] for s in created["stages"]] == ["search", "cap"]
    assert [s["stage_type"] for s in created["stages"]] == ["filter", "reduce"]
    assert created["stages"][0]["config"]["stage_id"] == "feature_search"
    assert (
        created["stages"][0]["config"]["parameters"] == SEARCH["config"]["parameters"]
    )  # templates kept raw
    assert created["input_schema"]["v"] == {"type": "array", "default": [1, 0, 0, 0]}
    assert created["budget_limits"] == {"max_credits": 50}
    assert created["tags"] == ["prod"] and created["metadata"] == {"owner": "search"}
    assert created["created_at"] and created["updated_at"]


def test_get_by_id_and_by_name_return_the_same_retriever(shared: TestClient) -> None:
    by_name = ok(shared.get(f"{R}/hybrid"))
    by_id = ok(shared.get(f"{R}/{by_name['retriever_id']}"))
    assert by_id == by_name and by_name["retriever_name"] == "hybrid"


def test_get_of_an_unknown_retriever_is_404(shared: TestClient) -> None:
    err = error(shared.get(f"{R}/nope"), 404, "NotFoundError")
    assert "nope" in err["message"]
    error(shared.get(f"{R}/ret_0000000000000000"), 404, "NotFoundError")


def test_a_taken_name_is_a_409(papers: TestClient) -> None:
    ok(papers.post(R, json=body()))
    err = error(papers.post(R, json=body(description="again")), 409, "AlreadyExistsError")
    assert "hybrid" in err["message"]
    assert ok(papers.post(f"{R}/list"))["total"] == 1


def test_both_stage_forms_are_accepted_and_stored_alike(papers: TestClient) -> None:
    flat = [
        {"stage_id": "feature_search", "stage_type": "filter", "parameters": SEARCH["config"]["parameters"]},
        {"stage_name": "cap", "stage_id": "limit", "parameters": {"limit": 3}},
    ]
    nested = ok(papers.post(R, json=body("nested")))
    flat_made = ok(papers.post(R, json=body("flat", stages=flat)))

    assert flat_made["stages"][0]["stage_name"] == "feature_search"  # named after its stage id
    assert flat_made["stages"][0]["config"] == nested["stages"][0]["config"]
    assert flat_made["stages"][1]["stage_type"] == "reduce"  # filled in from the stage
    assert flat_made["stages"][1]["config"] == nested["stages"][1]["config"]


def test_list_is_newest_first_with_the_total(papers: TestClient) -> None:
    for name in ("first", "second", "third"):
        ok(papers.post(R, json=body(name)))

    listed = ok(papers.post(f"{R}/list"))
    assert [r["retriever_name"] for r in listed["results"]] == ["third", "second", "first"]
    assert listed["total"] == 3
    page = ok(papers.post(f"{R}/list", json={"limit": 2}))
    assert [r["retriever_name"] for r in page["results"]] == ["third", "second"]
    assert page["total"] == 3 and page["pagination"]["has_next"] is True
    rest = ok(papers.post(f"{R}/list", json={"limit": 2, "offset": 2}))
    assert [r["retriever_name"] for r in rest["results"]] == ["first"] and rest["pagination"][
        "has_next"
    ] is False


# -- PATCH ----------------------------------------------------------------------------------------------


def test_patch_changes_metadata_and_increments_the_version(papers: TestClient) -> None:
    created = ok(papers.post(R, json=body()))
    changes = {
        "retriever_name": "hybrid-v2",
        "description": "renamed",
        "tags": ["beta", "x"],
        "metadata": {"owner": "someone"},
        "budget_limits": {"max_credits": 5, "max_time_ms": 1000},
    }
    patched = ok(papers.patch(f"{R}/hybrid", json=changes))["retriever"]

    assert patched["retriever_id"] == created["retriever_id"] and patched["version"] == 2
    for key, value in changes.items():
        assert patched[key] == value
    assert patched["stages"] == created["stages"] and patched["created_at"] == created["created_at"]
    assert ok(papers.get(f"{R}/hybrid-v2")) == patched
    error(papers.get(f"{R}/hybrid"), 404, "NotFoundError")

    again = ok(papers.patch(f"{R}/{created['retriever_id']}", json={"description": "third"}))["retriever"]
    assert again["version"] == 3 and again["retriever_name"] == "hybrid-v2" and again["tags"] == ["beta", "x"]


@pytest.mark.parametrize(
    "field, value",
    [
        ("stages", [CAP]),
        ("collection_identifiers", []),
        ("input_schema", {"q": {"type": "text"}}),
    ],
)
def test_patch_of_stages_collections_or_inputs_is_a_422_pointing_to_clone(
    papers: TestClient, field: str, value: Any
) -> None:
    created = ok(papers.post(R, json=body()))
    err = error(papers.patch(f"{R}/hybrid", json={field: value, "description": "x"}), 422, "ValidationError")

    assert err["details"]["errors"][0]["loc"] == ["body", field]
    assert "clone" in err["message"]
    assert ok(papers.get(f"{R}/hybrid")) == created  # nothing changed, not even the description


def test_patch_onto_a_taken_name_is_a_409(papers: TestClient) -> None:
    ok(papers.post(R, json=body("one")))
    two = ok(papers.post(R, json=body("two")))
    error(papers.patch(f"{R}/two", json={"retriever_name": "one"}), 409, "AlreadyExistsError")
    assert ok(papers.get(f"{R}/two")) == two


@pytest.mark.parametrize(
    "changes, loc",
    [
        ({"budget_limits": {"max_credits": -1}}, ["body", "budget_limits", "max_credits"]),
        ({"retriever_name": "ret_sneaky"}, ["body", "retriever_name"]),
    ],
)
def test_patch_with_a_bad_value_is_a_422(papers: TestClient, changes: dict[str, Any], loc: list[Any]) -> None:
    ok(papers.post(R, json=body()))
    err = error(papers.patch(f"{R}/hybrid", json=changes), 422, "ValidationError")
    assert err["details"]["errors"][0]["loc"] == loc
    assert ok(papers.get(f"{R}/hybrid"))["version"] == 1


# -- DELETE and clone -----------------------------------------------------------------------------------


def test_delete_removes_the_retriever(papers: TestClient) -> None:
    created = ok(papers.post(R, json=body()))
    ok(papers.post(R, json=body("other")))

    assert ok(papers.delete(f"{R}/{created['retriever_id']}"))["success"] is True
    error(papers.get(f"{R}/hybrid"), 404, "NotFoundError")
    error(papers.delete(f"{R}/hybrid"), 404, "NotFoundError")
    assert [r["retriever_name"] for r in ok(papers.post(f"{R}/list"))["results"]] == ["other"]
    ok(papers.post(R, json=body()))  # the name is free again


def test_clone_makes_a_new_retriever_with_the_overrides_and_leaves_the_source(papers: TestClient) -> None:
    source = ok(papers.post(R, json=body()))
    stages = [copy.deepcopy(SEARCH)]
    stages[0]["config"]["parameters"]["final_top_k"] = 2
    response = papers.post(
        f"{R}/hybrid/clone", json={"retriever_name": "narrow", "stages": stages, "description": "two results"}
    )
    cloned = ok(response, 201)
    clone = cloned["retriever"]

    assert cloned["source_retriever_id"] == source["retriever_id"]
    assert clone["retriever_id"] != source["retriever_id"] and clone["retriever_id"].startswith("ret_")
    assert clone["retriever_name"] == "narrow" and clone["description"] == "two results"
    assert [s["stage_name"] for s in clone["stages"]] == ["search"]
    assert clone["stages"][0]["config"]["parameters"]["final_top_k"] == 2
    for kept in ("collection_ids", "input_schema", "budget_limits", "tags", "metadata"):
        assert clone[kept] == source[kept]
    assert clone["version"] == 1
    assert ok(papers.get(f"{R}/hybrid")) == source
    assert ok(papers.post(f"{R}/list"))["total"] == 2


def test_clone_without_a_name_gets_a_copy_name(papers: TestClient) -> None:
    ok(papers.post(R, json=body()))
    clone = ok(papers.post(f"{R}/hybrid/clone", json={}), 201)["retriever"]
    assert clone["retriever_name"] == "hybrid-copy" and len(clone["stages"]) == 2


def test_clone_validates_like_create_and_creates_nothing_when_invalid(papers: TestClient) -> None:
    ok(papers.post(R, json=body()))
    bad = [{"stage_name": "x", "config": {"stage_id": "limit", "parameters": {"limit": 0}}}]
    err = error(papers.post(f"{R}/hybrid/clone", json={"stages": bad}), 422, "ValidationError")
    assert err["details"]["errors"][0]["loc"] == ["body", "stages", 0, "config", "parameters", "limit"]
    error(papers.post(f"{R}/hybrid/clone", json={"retriever_name": "hybrid"}), 409, "AlreadyExistsError")
    assert ok(papers.post(f"{R}/list"))["total"] == 1


# -- validation at creation -----------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def at_search(**params: Any) -> Mutation:
    def mutate(b: dict[str, Any]) -> None:
        b["stages"][0]["config"]["parameters"].update(params)

    return mutate


def at_first_search(**fields: Any) -> Mutation:
    def mutate(b: dict[str, Any]) -> None:
        b["stages"][0]["config"]["parameters"]["searches"][0].update(fields)

    return mutate


def set_key(*path: Any, value: Any) -> Mutation:
    def mutate(b: dict[str, Any]) -> None:
        target = b
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


P0: list[Any] = ["body", "stages", 0, "config", "parameters"]
INVALID: list[Any] = [
    pytest.param(set_key("stages", 0, "config", "stage_id", value="nope"),
                 ["body", "stages", 0, "config", "stage_id"], ["nope", "feature_search"],
                 id="unknown-stage-id"),
    pytest.param(set_key("stages", 1, value={"stage_id": "nope", "parameters": {}}),
                 ["body", "stages", 1, "stage_id"], ["nope", "limit"], id="unknown-stage-id-flat"),
    pytest.param(set_key("stages", 0, "stage_type", value="sort"),
                 ["body", "stages", 0, "stage_type"], ["feature_search", "filter"], id="stage-type-mismatch"),
    pytest.param(at_search(final_top_k=0), [*P0, "final_top_k"], ["final_top_k"], id="final-top-k-0"),
    pytest.param(at_search(bogus=1), [*P0, "bogus"], ["bogus"], id="unknown-parameter"),
    pytest.param(at_search(fusion="bogus"), [*P0, "fusion"], ["fusion", "rrf"], id="fusion-bogus"),
    pytest.param(set_key("stages", 1, "config", "parameters", "limit", value=-1),
                 ["body", "stages", 1, "config", "parameters", "limit"], ["limit"], id="limit-negative"),
    pytest.param(at_first_search(top_k=0), [*P0, "searches", 0, "top_k"], ["top_k"], id="top-k-0"),
    pytest.param(at_first_search(feature_uri="mixpeek://image_extractor@v1/clip"),
                 [*P0, "searches", 0, "feature_uri"],
                 ["mixpeek://image_extractor@v1/clip", "available", EMB_URI, BM25_URI, DENSE_URI],
                 id="feature-uri-the-collections-lack"),
    pytest.param(at_first_search(query={"input_mode": "vector", "value": "{{ INPUT.nope }}"}), P0,
                 ["search", "nope", "input_schema"], id="template-reads-undeclared-input"),
    pytest.param(at_first_search(query={"input_mode": "vector", "value": "{{ INPUT.v "}),
                 [*P0, "searches", 0, "query", "value"], ["does not parse"], id="template-syntax-error"),
    pytest.param(set_key("collection_identifiers", value=[COLLECTION, "ghost"]),
                 ["body", "collection_identifiers", 1], ["ghost"], id="unknown-collection"),
    pytest.param(set_key("stages", 0, "config", "pre_filters",
                         value={"AND": [{"field": "x", "operator": "near"}]}),
                 ["body", "stages", 0, "config", "pre_filters", "AND", 0, "operator"], ["near"],
                 id="malformed-pre-filters"),
    pytest.param(set_key("stages", 1, "config", "post_filters", value={"OR": "category"}),
                 ["body", "stages", 1, "config", "post_filters", "OR"], ["OR"], id="malformed-post-filters"),
    pytest.param(set_key("stages", 1, "stage_name", value="search"),
                 ["body", "stages", 1, "stage_name"], ["search", "twice"], id="duplicate-stage-names"),
    pytest.param(set_key("stages", value=[]), ["body", "stages"], ["at least one stage"], id="empty-stages"),
    pytest.param(set_key("input_schema", "v", "type", value="vector"),
                 ["body", "input_schema", "v", "type"], ["type"], id="unknown-input-type"),
    pytest.param(set_key("budget_limits", value={"max_credits": -1}),
                 ["body", "budget_limits", "max_credits"], ["max_credits"], id="negative-budget"),
    pytest.param(set_key("retriever_name", value="ret_looks_like_an_id"), ["body", "retriever_name"],
                 ["retriever name"], id="name-like-an-id"),
    pytest.param(at_first_search(query=[1, 0, 0]), [*P0, "searches", 0], ["dimension"],
                 id="literal-vector-of-the-wrong-dimension"),
    pytest.param(at_first_search(query={"input_mode": "text", "value": "cat"}), [*P0, "searches", 0],
                 ["vector"], id="text-query-on-a-user-vector-feature"),
]  # fmt: skip


@pytest.mark.parametrize("mutate, loc, words", INVALID)
def test_an_invalid_retriever_is_a_422_locating_the_stage_and_field(
    shared: TestClient, request: pytest.FixtureRequest, mutate: Mutation, loc: list[Any], words: list[str]
) -> None:
    invalid = body(f"bad-{request.node.callspec.id}")
    mutate(invalid)
    err = error(shared.post(R, json=invalid), 422, "ValidationError")

    errors = err["details"]["errors"]
    assert errors and errors[0]["loc"][: len(loc)] == loc, errors
    for word in words:
        assert word in err["message"], err["message"]
    error(shared.get(f"{R}/{invalid['retriever_name']}"), 404, "NotFoundError")  # nothing was stored


@pytest.mark.parametrize(
    "broken",
    [
        {"retriever_name": "x"},  # no stages
        {"retriever_name": "x", "stages": "feature_search"},
        {"retriever_name": "x", "stages": [42]},
        {"retriever_name": "x", "stages": [{"config": "feature_search"}]},
        {"retriever_name": "x", "stages": [{"config": {"stage_id": "limit", "parameters": [1]}}]},
        {"retriever_name": "x", "stages": [CAP], "input_schema": {"q": "text"}},
        {"stages": [CAP]},
    ],
)
def test_malformed_bodies_are_422_not_500(shared: TestClient, broken: dict[str, Any]) -> None:
    error(shared.post(R, json=broken), 422, "ValidationError")


# -- the stage catalogue --------------------------------------------------------------------------------


def test_the_stage_catalogue_lists_every_built_stage_with_its_schema(shared: TestClient) -> None:
    stages = {s["stage_id"]: s for s in ok(shared.get(f"{R}/stages"))}

    expected = {
        "feature_search": "filter",
        "attribute_filter": "filter",
        "sort_relevance": "sort",
        "sort_attribute": "sort",
        "rerank": "sort",
        "limit": "reduce",
        "group_by": "reduce",
    }
    assert set(expected) <= set(stages)
    for stage_id, category in expected.items():
        assert stages[stage_id]["category"] == category
        assert stages[stage_id]["description"]
        assert isinstance(stages[stage_id]["parameter_schema"]["properties"], dict)
    for stage in stages.values():
        assert stage["category"] in ("filter", "sort", "reduce", "apply", "enrich")
    assert {"searches", "final_top_k", "fusion"} <= set(
        stages["feature_search"]["parameter_schema"]["properties"]
    )
    assert "limit" in stages["limit"]["parameter_schema"]["required"]


# -- namespaces -----------------------------------------------------------------------------------------


def test_a_retriever_of_one_namespace_is_not_found_through_another(papers: TestClient) -> None:
    created = ok(papers.post(R, json=body()))
    ok(papers.post("/v1/namespaces", json={"namespace_name": "beta"}))
    beta = {"X-Namespace": "beta"}

    for ident in ("hybrid", created["retriever_id"]):
        error(papers.get(f"{R}/{ident}", headers=beta), 404, "NotFoundError")
        error(papers.patch(f"{R}/{ident}", json={"description": "x"}, headers=beta), 404, "NotFoundError")
        error(papers.delete(f"{R}/{ident}", headers=beta), 404, "NotFoundError")
        error(
            papers.post(f"{R}/{ident}/clone", json={"retriever_name": "stolen"}, headers=beta),
            404,
            "NotFoundError",
        )
        error(papers.post(f"{R}/{ident}/execute", json={}, headers=beta), 404, "NotFoundError")
    assert ok(papers.post(f"{R}/list", headers=beta))["total"] == 0
    assert ok(papers.get(f"{R}/hybrid")) == created  # untouched

    # beta may use the same name for its own retriever over its own collection
    ok(papers.post("/v1/collections", json=TEXT_COLLECTION, headers=beta))
    theirs = ok(papers.post(R, json=body(), headers=beta))
    assert theirs["retriever_id"] != created["retriever_id"]
    assert ok(papers.get(f"{R}/hybrid", headers=beta))["retriever_id"] == theirs["retriever_id"]
    assert ok(papers.get(f"{R}/hybrid"))["retriever_id"] == created["retriever_id"]


def test_a_retriever_cannot_use_a_collection_of_another_namespace(papers: TestClient) -> None:
    collection_id = ok(papers.get(f"/v1/collections/{COLLECTION}"))["collection_id"]
    ok(papers.post("/v1/namespaces", json={"namespace_name": "beta"}))
    err = error(
        papers.post(R, json=body(collection_identifiers=[collection_id]), headers={"X-Namespace": "beta"}),
        422,
        "ValidationError",
    )
    assert err["details"]["errors"][0]["loc"] == ["body", "collection_identifiers", 0]
