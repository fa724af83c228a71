"""Bad input never gives a 500: each is a 4xx in the error envelope naming the problem, and nothing is written.

Statuses: 422 for validation (``details.errors[*].loc`` points at the bad field), 404 for an unknown
collection or document, 409 for a name or id already taken, 400 for an oversized batch.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import TEXT_COLLECTION, served, settings_for
from siftline.features.embedder import TextEmbedder

COL = "/v1/collections"
DOCS = f"{COL}/papers/documents"
SEED_DOCS = [
    {"document_id": "doc-1", "title": "Vitamin D", "text": "bone density", "category": "nutrition",
     "metadata": {"year": 2021}, "vectors": {"emb": [1.0, 0.0, 0.0, 0.0]}},
    {"document_id": "doc-2", "title": "Sleep", "text": "memory", "category": "neuro", "metadata": {"year": 2019}},
]  # fmt: skip


def assert_error(response: Any, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["status"] == status
    assert body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in response.text
    return body["error"]  # type: ignore[no-any-return]


def assert_invalid(response: Any, loc: list[str | int], *named: str) -> dict[str, Any]:
    """A 422 whose details list an error at ``loc`` and whose message names each of ``named``."""
    error = assert_error(response, 422, "ValidationError")
    locs = [e["loc"] for e in error["details"]["errors"]]
    assert loc in locs, locs
    for e in error["details"]["errors"]:
        assert isinstance(e["msg"], str) and e["msg"] and isinstance(e["type"], str)
    for word in named:
        assert word in error["message"], (word, error["message"])
    return error


def stored(client: TestClient) -> dict[str, Any]:
    """All documents of the collection (with vectors) and the collection record."""
    docs = client.post(f"{DOCS}/list", json={"return_vectors": True, "limit": 1000})
    assert docs.status_code == 200, docs.text
    col = client.get(f"{COL}/papers")
    assert col.status_code == 200, col.text
    return {"documents": docs.json()["results"], "collection": col.json()}


def _seed(client: TestClient) -> TestClient:
    assert client.post(COL, json=TEXT_COLLECTION).status_code == 200
    assert client.post(f"{DOCS}/batch", json={"documents": SEED_DOCS}).status_code == 200
    return client


@pytest.fixture(scope="module")
def papers(tmp_path_factory: pytest.TempPathFactory, embedder: TextEmbedder) -> Iterator[TestClient]:
    """The `papers` collection (text + a 4-d vector `emb`) in the default namespace with two documents.

    One server per module, built like conftest's ``client``: every test using it sends input that must be
    refused, and checks (``before``/``stored``) that nothing changed. Tests that write use ``fresh_papers``.
    """
    with served(settings_for(tmp_path_factory.mktemp("bad-input") / "data"), embedder) as (client, _):
        yield _seed(client)


@pytest.fixture
def fresh_papers(client: TestClient) -> TestClient:
    """The same collection on a server of its own (conftest's ``client``)."""
    return _seed(client)


@pytest.fixture
def before(papers: TestClient) -> dict[str, Any]:
    return stored(papers)


# -- vectors ------------------------------------------------------------------------------------------


def test_wrong_vector_dimension_is_422_naming_the_vector_and_both_dimensions(
    papers: TestClient, before: dict[str, Any]
) -> None:
    response = papers.post(DOCS, json={"text": "x", "vectors": {"emb": [1.0, 2.0, 3.0]}})
    error = assert_invalid(response, ["body", "vectors", "emb"], "emb", "3", "4")
    assert "dimension" in error["message"]
    assert stored(papers) == before


def test_wrong_vector_dimension_in_a_batch_points_at_the_document_and_writes_nothing(
    papers: TestClient, before: dict[str, Any]
) -> None:
    batch = {"documents": [{"text": "fine"}, {"text": "bad", "vectors": {"emb": [1.0] * 5}}]}
    response = papers.post(f"{DOCS}/batch", json=batch)
    assert_invalid(response, ["body", "documents", 1, "vectors", "emb"], "emb", "5", "4")
    assert stored(papers) == before


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_wrong_vector_dimension_on_update_leaves_the_document_unchanged(
    papers: TestClient, before: dict[str, Any], method: str
) -> None:
    body = {"text": "changed", "vectors": {"emb": [1.0, 2.0]}}
    response = papers.request(method, f"{DOCS}/doc-1", json=body)
    assert_invalid(response, ["body", "vectors", "emb"], "emb", "2", "4")
    assert stored(papers) == before


def test_unknown_vector_name_is_422_naming_it(papers: TestClient, before: dict[str, Any]) -> None:
    response = papers.post(DOCS, json={"text": "x", "vectors": {"nope": [1.0, 0.0, 0.0, 0.0]}})
    error = assert_invalid(response, ["body", "vectors", "nope"], "nope")
    assert "emb" in error["message"]  # says which vectors the collection has
    assert stored(papers) == before


@pytest.mark.parametrize(
    "vector",
    [["1", "2", "3", "4"], ["NaN", 0, 0, 0], ["Infinity", 0, 0, 0], [True, False, True, False], [[1], 2, 3, 4],
     [None, 0, 0, 0], "1,2,3,4", 7],
    ids=["strings", "nan-string", "inf-string", "booleans", "nested", "null", "a-string", "a-number"],
)  # fmt: skip
def test_vector_values_that_are_not_numbers_are_422(
    papers: TestClient, before: dict[str, Any], vector: Any
) -> None:
    response = papers.post(DOCS, json={"text": "x", "vectors": {"emb": vector}})
    assert_invalid(response, ["body", "vectors", "emb"], "emb")
    assert stored(papers) == before


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_json_numbers_in_a_vector_are_422(
    papers: TestClient, before: dict[str, Any], raw: bytes
) -> None:
    body = b'{"text": "x", "vectors": {"emb": [' + raw + b", 0, 0, 0]}}"
    response = papers.post(DOCS, content=body, headers={"Content-Type": "application/json"})
    assert_invalid(response, ["body", "vectors", "emb"], "emb", "finite")
    assert stored(papers) == before


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity"])
def test_non_finite_json_numbers_in_a_user_field_are_rejected(fresh_papers: TestClient, raw: bytes) -> None:
    papers = fresh_papers
    body = b'{"text": "x", "score": ' + raw + b"}"
    response = papers.post(DOCS, content=body, headers={"Content-Type": "application/json"})
    filtered = papers.post(f"{DOCS}/list", json={"filters": {"category": "nutrition"}})
    assert filtered.status_code == 200, filtered.text  # the collection stays usable whatever happened
    assert_invalid(response, ["body", "score"], "score")


def test_vector_values_beyond_float32_range_are_422(fresh_papers: TestClient) -> None:
    papers, before = fresh_papers, stored(fresh_papers)
    response = papers.post(DOCS, json={"text": "x", "vectors": {"emb": [1e39, 0.0, 0.0, 0.0]}})
    assert_invalid(response, ["body", "vectors", "emb"], "emb")
    assert stored(papers) == before


def test_vectors_that_are_not_an_object_are_422(papers: TestClient, before: dict[str, Any]) -> None:
    response = papers.post(DOCS, json={"text": "x", "vectors": [[1.0, 0.0, 0.0, 0.0]]})
    assert_invalid(response, ["body", "vectors"], "vectors")
    assert stored(papers) == before


# -- filters, sort and cursor -------------------------------------------------------------------------


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"field": "category", "value": "nutrition"}
    for _ in range(depth - 1):
        node = {"AND": [node]}
    return node


@pytest.mark.parametrize(
    ("filters", "loc", "named"),
    [
        ({"AND": "category"}, ["body", "filters", "AND"], ["AND", "list"]),
        ({"OR": [1]}, ["body", "filters", "OR", 0], ["OR.0", "filter object"]),
        ({"NOT": {"category": "x"}}, ["body", "filters", "NOT"], ["NOT", "list"]),
        ({"field": "category", "operator": "like", "value": "x"}, ["body", "filters", "operator"], ["like"]),
        ({"field": "category", "operator": "in", "value": "nutrition"}, ["body", "filters", "value"], ["in", "list"]),
        ({"field": "category", "operator": "nin", "value": 3}, ["body", "filters", "value"], ["nin", "list"]),
        ({"field": "title", "operator": "regex", "value": "(unclosed"}, ["body", "filters", "value"], ["regular"]),
        ({"field": "title", "operator": "regex", "value": 5}, ["body", "filters", "value"], ["regex"]),
        ({"field": "metadata.year", "operator": "gte", "value": [2020]}, ["body", "filters", "value"], ["gte"]),
        ({"field": "metadata.year", "operator": "exists", "value": "yes"}, ["body", "filters", "value"],
         ["exists"]),
        ({"field": "", "value": 1}, ["body", "filters", "field"], ["field"]),
        ({"field": "metadata..year", "value": 1}, ["body", "filters", "field"], ["metadata..year"]),
        ({"field": 7, "value": 1}, ["body", "filters", "field"], ["field"]),
        ({"field": "category"}, ["body", "filters", "value"], ["value"]),
        ({"field": "category", "value": "x", "extra": 1}, ["body", "filters", "extra"], ["extra"]),
        ({"operator": "eq", "value": 1}, ["body", "filters", "field"], ["field"]),
        ({"category": ["a", "b"]}, ["body", "filters", "category"], ["category", "in"]),
        ({"category": {"nested": 1}}, ["body", "filters", "category"], ["dynamic"]),
        ({"metadata.year": 2**70}, ["body", "filters", "metadata.year"], ["64 bits"]),
        ({"field": "category", "value": "x", "case_sensitive": "yes"}, ["body", "filters", "case_sensitive"],
         ["case_sensitive"]),
        ({"AND": [{"field": "category", "operator": "eq", "value": {"type": "dynamic", "field": "inputs.q"}}]},
         ["body", "filters"], ["dynamic"]),
        (_nested(17), ["body", "filters", *["AND", 0] * 16], ["16"]),
    ],
    ids=["and-not-list", "or-item-number", "not-object", "unknown-operator", "in-not-list", "nin-not-list",
         "bad-regex", "regex-not-string", "gte-list", "exists-not-bool", "empty-field", "empty-segment",
         "field-number", "missing-value", "extra-key", "operator-without-field", "shorthand-list",
         "shorthand-object", "int-too-big", "case-sensitive-not-bool", "dynamic-value", "nested-17"],
)  # fmt: skip
def test_malformed_filter_is_422_pointing_at_the_bad_part(
    papers: TestClient, filters: dict[str, Any], loc: list[str | int], named: list[str]
) -> None:
    response = papers.post(f"{DOCS}/list", json={"filters": filters})
    assert_invalid(response, loc, *named)


def test_filter_nested_exactly_16_levels_is_accepted(papers: TestClient) -> None:
    response = papers.post(f"{DOCS}/list", json={"filters": _nested(16)})
    assert response.status_code == 200, response.text
    assert [d["document_id"] for d in response.json()["results"]] == ["doc-1"]


@pytest.mark.parametrize("filters", [[{"category": "x"}], "category = x", 5])
def test_filters_that_are_not_an_object_are_422(papers: TestClient, filters: Any) -> None:
    assert_invalid(papers.post(f"{DOCS}/list", json={"filters": filters}), ["body", "filters"], "filters")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"sort": {"field": "title", "direction": "sideways"}}, ["body", "sort", "direction"]),
        ({"sort": {"direction": "asc"}}, ["body", "sort", "field"]),
        ({"sort": "title"}, ["body", "sort"]),
        ({"limit": 0}, ["body", "limit"]),
        ({"limit": 1001}, ["body", "limit"]),
        ({"offset": -1}, ["body", "offset"]),
        ({"return_vectors": "maybe"}, ["body", "return_vectors"]),
    ],
    ids=["sort-direction", "sort-no-field", "sort-string", "limit-0", "limit-1001", "offset-negative",
         "return-vectors-not-bool"],
)  # fmt: skip
def test_bad_list_body_is_422_pointing_at_the_field(
    papers: TestClient, body: dict[str, Any], loc: list[Any]
) -> None:
    assert_invalid(papers.post(f"{DOCS}/list", json=body), loc, str(loc[-1]))


@pytest.mark.parametrize(("query", "loc"), [("limit=0", ["query", "limit"]), ("offset=-1", ["query", "offset"]),
                                            ("limit=ten", ["query", "limit"])])  # fmt: skip
def test_bad_list_query_is_422_pointing_at_the_parameter(
    papers: TestClient, query: str, loc: list[Any]
) -> None:
    assert_invalid(papers.post(f"{DOCS}/list?{query}"), loc, str(loc[-1]))


@pytest.mark.parametrize(
    "cursor", ["not a cursor", "%%%", "bm90IGpzb24", base64.urlsafe_b64encode(b"[1]").decode()]
)
def test_garbage_cursor_is_a_4xx_naming_the_cursor(papers: TestClient, cursor: str) -> None:
    response = papers.post(f"{DOCS}/list", json={"cursor": cursor})
    assert response.status_code in (400, 422), response.text
    assert response.json()["success"] is False
    assert "cursor" in response.json()["error"]["message"]


def _cursor(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("data", "sort"),
    [({"r": "abc"}, None), ({"r": [1]}, None), ({"r": 10**30}, None), ({"o": "x"}, {"field": "title"})],
    ids=["r-string", "r-list", "r-huge", "o-string"],
)
def test_forged_cursor_is_a_4xx_naming_the_cursor(papers: TestClient, data: Any, sort: Any) -> None:
    response = papers.post(f"{DOCS}/list", json={"cursor": _cursor(data), "sort": sort})
    assert response.status_code in (400, 422), response.text
    assert "cursor" in response.json()["error"]["message"]


@pytest.mark.parametrize("field", ["metadata..year", "a\\b"], ids=["empty-segment", "backslash"])
def test_unusable_sort_field_is_a_4xx_naming_the_field(papers: TestClient, field: str) -> None:
    response = papers.post(f"{DOCS}/list", json={"sort": {"field": field}})
    assert response.status_code in (400, 422), response.text
    assert field in response.json()["error"]["message"]


def test_sort_field_with_a_quote_is_a_4xx_naming_the_field(papers: TestClient) -> None:
    response = papers.post(f"{DOCS}/list", json={"sort": {"field": 'a"b'}})
    assert response.status_code in (400, 422), response.text
    assert 'a"b' in response.json()["error"]["message"]


# -- unknown collection / document --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/collections/nope", None),
        ("PATCH", "/v1/collections/nope", {"description": "x"}),
        ("DELETE", "/v1/collections/nope", None),
        ("GET", "/v1/collections/nope/features", None),
        ("POST", "/v1/collections/nope/documents", {"text": "x"}),
        ("POST", "/v1/collections/nope/documents/batch", {"documents": [{"text": "x"}]}),
        ("POST", "/v1/collections/nope/documents/list", {}),
        ("GET", "/v1/collections/nope/documents/count", None),
        ("GET", "/v1/collections/nope/documents/doc-1", None),
        ("PUT", "/v1/collections/nope/documents/doc-1", {"text": "x"}),
        ("PATCH", "/v1/collections/nope/documents/doc-1", {"text": "x"}),
        ("DELETE", "/v1/collections/nope/documents/doc-1", None),
        ("GET", "/v1/collections/col_doesNotExist00/documents/count", None),
    ],
)
def test_unknown_collection_is_404_naming_it(
    papers: TestClient, before: dict[str, Any], method: str, path: str, body: Any
) -> None:
    response = papers.request(method, path, json=body)
    error = assert_error(response, 404, "NotFoundError")
    assert path.split("/")[3] in error["message"]
    assert stored(papers) == before


@pytest.mark.parametrize(
    ("method", "body"), [("GET", None), ("PUT", {"text": "x"}), ("PATCH", {"text": "x"}), ("DELETE", None)]
)
def test_unknown_document_is_404_naming_it(
    papers: TestClient, before: dict[str, Any], method: str, body: Any
) -> None:
    response = papers.request(method, f"{DOCS}/doc-missing", json=body)
    error = assert_error(response, 404, "NotFoundError")
    assert "doc-missing" in error["message"]
    assert stored(papers) == before


def test_unknown_route_is_404_in_the_envelope(papers: TestClient) -> None:
    assert_error(papers.get("/v1/nothing-here"), 404, "NotFoundError")


def test_wrong_method_is_405_in_the_envelope(papers: TestClient) -> None:
    response = papers.put(f"{COL}/papers", json={})
    assert response.status_code == 405
    assert response.json()["success"] is False and response.json()["status"] == 405


# -- batches ------------------------------------------------------------------------------------------


def test_oversized_batch_is_400_naming_the_limit_and_writes_nothing(
    papers: TestClient, before: dict[str, Any]
) -> None:
    response = papers.post(f"{DOCS}/batch", json={"documents": [{"category": "c"}] * 501})
    error = assert_error(response, 400, "BadRequestError")
    assert "501" in error["message"] and "500" in error["message"]
    assert stored(papers) == before


def test_batch_at_the_limit_is_accepted(client: TestClient) -> None:
    vec_only = {"collection_name": "vecs", "vector_configs": [{"name": "v", "dimension": 2}]}
    assert client.post(COL, json=vec_only).status_code == 200
    docs = [{"vectors": {"v": [1.0, float(i)]}} for i in range(500)]
    response = client.post(f"{COL}/vecs/documents/batch", json={"documents": docs})
    assert response.status_code == 200, response.text
    assert response.json()["count"] == 500


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"documents": {"text": "x"}}, ["body", "documents"]),
        ({"documents": "x"}, ["body", "documents"]),
        ({"docs": [{"text": "x"}]}, ["body", "documents"]),
        ({"documents": []}, ["body", "documents"]),
        ({"documents": [{"text": "ok"}, "not an object"]}, ["body", "documents", 1]),
        ({"documents": [{"text": "ok"}, [1, 2]]}, ["body", "documents", 1]),
        ({"documents": [{"text": "ok"}, {"document_id": "has space"}]}, ["body", "documents", 1, "document_id"]),
        ({"documents": [{"text": "ok"}, {"vectors": {"emb": "x"}}]}, ["body", "documents", 1, "vectors", "emb"]),
    ],
    ids=["documents-object", "documents-string", "no-documents-key", "empty", "item-string", "item-list",
         "bad-id", "bad-vector"],
)  # fmt: skip
def test_bad_batch_body_is_422_and_writes_nothing(
    papers: TestClient, before: dict[str, Any], body: dict[str, Any], loc: list[Any]
) -> None:
    assert_invalid(papers.post(f"{DOCS}/batch", json=body), loc, "documents")
    assert stored(papers) == before


def test_batch_body_that_is_not_an_object_is_422(papers: TestClient, before: dict[str, Any]) -> None:
    assert_invalid(papers.post(f"{DOCS}/batch", json=[{"text": "x"}]), ["body"], "body")
    assert stored(papers) == before


def test_duplicate_document_id_in_one_batch_is_422_and_writes_nothing(
    papers: TestClient, before: dict[str, Any]
) -> None:
    batch = {"documents": [{"document_id": "new-1", "text": "a"}, {"document_id": "new-1", "text": "b"}]}
    assert_invalid(papers.post(f"{DOCS}/batch", json=batch), ["body", "documents", 1, "document_id"], "new-1")
    assert stored(papers) == before


def test_batch_with_one_existing_document_id_is_409_and_writes_nothing(
    papers: TestClient, before: dict[str, Any]
) -> None:
    batch = {"documents": [{"document_id": "new-1", "text": "a"}, {"document_id": "doc-2", "text": "b"}]}
    error = assert_error(papers.post(f"{DOCS}/batch", json=batch), 409, "AlreadyExistsError")
    assert "doc-2" in error["message"]
    assert stored(papers) == before
    assert papers.get(f"{DOCS}/count").json()["count"] == 2


# -- single documents ---------------------------------------------------------------------------------


def test_existing_document_id_on_create_is_409(papers: TestClient, before: dict[str, Any]) -> None:
    error = assert_error(
        papers.post(DOCS, json={"document_id": "doc-1", "text": "again"}), 409, "AlreadyExistsError"
    )
    assert "doc-1" in error["message"]
    assert stored(papers) == before


@pytest.mark.parametrize(
    ("body", "loc", "named"),
    [
        ({"document_id": "has space", "text": "x"}, ["body", "document_id"], "document_id"),
        ({"document_id": 42, "text": "x"}, ["body", "document_id"], "document_id"),
        ({"document_id": "x" * 129, "text": "x"}, ["body", "document_id"], "document_id"),
        ({"collection_id": "col_other", "text": "x"}, ["body", "collection_id"], "col_other"),
    ],
    ids=["id-space", "id-number", "id-too-long", "other-collection"],
)
def test_bad_reserved_fields_on_create_are_422(
    papers: TestClient, before: dict[str, Any], body: dict[str, Any], loc: list[Any], named: str
) -> None:
    assert_invalid(papers.post(DOCS, json=body), loc, named)
    assert stored(papers) == before


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_document_id_in_the_body_that_differs_from_the_url_is_422(
    papers: TestClient, before: dict[str, Any], method: str
) -> None:
    response = papers.request(method, f"{DOCS}/doc-1", json={"document_id": "doc-2", "text": "x"})
    assert_invalid(response, ["body", "document_id"], "document_id")
    assert stored(papers) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", DOCS), ("POST", f"{DOCS}/batch"), ("POST", f"{DOCS}/list"), ("PUT", f"{DOCS}/doc-1"),
     ("PATCH", f"{DOCS}/doc-1"), ("POST", COL), ("PATCH", f"{COL}/papers"), ("POST", "/v1/namespaces")],
)  # fmt: skip
def test_malformed_json_is_422(papers: TestClient, before: dict[str, Any], method: str, path: str) -> None:
    response = papers.request(
        method, path, content=b'{"text": "x",', headers={"Content-Type": "application/json"}
    )
    error = assert_error(response, 422, "ValidationError")
    assert "JSON" in error["message"]
    assert error["details"]["errors"][0]["loc"][0] == "body"
    assert stored(papers) == before


@pytest.mark.parametrize(
    ("method", "path"), [("POST", DOCS), ("PUT", f"{DOCS}/doc-1"), ("PATCH", f"{DOCS}/doc-1")]
)
@pytest.mark.parametrize("body", [[{"text": "x"}], "text", 3, None], ids=["list", "string", "number", "null"])
def test_document_body_that_is_not_an_object_is_422(
    papers: TestClient, before: dict[str, Any], method: str, path: str, body: Any
) -> None:
    response = papers.request(
        method, path, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert_invalid(response, ["body"], "body")
    assert stored(papers) == before


# -- collections --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc", "named"),
    [
        ({"collection_name": "x", "feature_extractor": {"feature_extractor_name": "image_extractor"}},
         ["body", "feature_extractor", "feature_extractor_name"], "image_extractor"),
        ({"collection_name": "x", "feature_extractor": {"feature_extractor_name": "text_extractor", "version": "v9"}},
         ["body", "feature_extractor", "feature_extractor_name"], "text_extractor@v9"),
        ({"collection_name": "x"}, ["body"], "feature"),
        ({"collection_name": "x", "vector_configs": []}, ["body"], "feature"),
        ({"collection_name": "x", "vector_configs": [{"name": "v", "dimension": 3}, {"name": "v", "dimension": 2}]},
         ["body", "vector_configs", 1, "name"], "'v'"),
        ({"collection_name": "x", "vector_configs": [{"name": "v", "dimension": 3, "metric": "manhattan"}]},
         ["body", "vector_configs", 0, "metric"], "metric"),
        ({"collection_name": "x", "vector_configs": [{"name": "v", "dimension": 0}]},
         ["body", "vector_configs", 0, "dimension"], "dimension"),
        ({"collection_name": "x", "vector_configs": [{"name": "v", "dimension": 5000}]},
         ["body", "vector_configs", 0, "dimension"], "dimension"),
        ({"collection_name": "x", "vector_configs": [{"name": "v"}]},
         ["body", "vector_configs", 0, "dimension"], "dimension"),
        ({"collection_name": "x", "vector_configs": [{"name": "bad name", "dimension": 3}]},
         ["body", "vector_configs", 0, "name"], "name"),
        ({"collection_name": "x", "vector_configs": [{"name": "bm25", "dimension": 3}]},
         ["body", "vector_configs", 0, "name"], "bm25"),
        ({"collection_name": "x", "feature_extractor": {"feature_extractor_name": "text_extractor",
                                                        "input_mappings": {"image": "x"}}},
         ["body", "feature_extractor", "input_mappings"], "input_mappings"),
        ({"collection_name": "x", "vector_configs": [{"name": "v", "dimension": 2}],
          "payload_indexes": [{"field_name": "a", "type": "blob"}]},
         ["body", "payload_indexes", 0, "type"], "type"),
        ({"collection_name": "x", "vector_configs": [{"name": "v", "dimension": 2}],
          "payload_indexes": [{"field_name": "a", "type": "keyword"}, {"field_name": "a", "type": "integer"}]},
         ["body", "payload_indexes", 1, "field_name"], "'a'"),
        ({"collection_name": "bad name!", "vector_configs": [{"name": "v", "dimension": 2}]},
         ["body", "collection_name"], "collection_name"),
        ({"collection_name": "col_x", "vector_configs": [{"name": "v", "dimension": 2}]},
         ["body", "collection_name"], "col_"),
        ({"vector_configs": [{"name": "v", "dimension": 2}]}, ["body", "collection_name"], "collection_name"),
        ({"collection_name": "x", "vector_configs": [{"name": "v", "dimension": 2}], "bogus": 1},
         ["body", "bogus"], "bogus"),
    ],
    ids=["unknown-extractor", "unknown-version", "no-features", "empty-vector-configs", "duplicate-vector-names",
         "bad-metric", "dimension-0", "dimension-too-big", "no-dimension", "bad-vector-name", "vector-named-bm25",
         "bad-input-mapping", "bad-index-type", "index-twice", "bad-name", "name-col-prefix", "no-name",
         "unknown-field"],
)  # fmt: skip
def test_bad_collection_create_is_422_pointing_at_the_field(
    papers: TestClient, body: dict[str, Any], loc: list[Any], named: str
) -> None:
    listed = papers.post(f"{COL}/list", json={}).json()["results"]
    assert_invalid(papers.post(COL, json=body), loc, named)
    assert papers.post(f"{COL}/list", json={}).json()["results"] == listed


def test_boolean_dimension_is_422(client: TestClient) -> None:
    body = {"collection_name": "x", "vector_configs": [{"name": "v", "dimension": True}]}
    assert_invalid(client.post(COL, json=body), ["body", "vector_configs", 0, "dimension"], "dimension")


def test_duplicate_collection_name_is_409_and_keeps_the_first(
    papers: TestClient, before: dict[str, Any]
) -> None:
    other = {"collection_name": "papers", "vector_configs": [{"name": "v", "dimension": 2}]}
    error = assert_error(papers.post(COL, json=other), 409, "AlreadyExistsError")
    assert "papers" in error["message"]
    assert stored(papers) == before


def test_renaming_a_collection_onto_another_name_is_409(papers: TestClient, before: dict[str, Any]) -> None:
    other = {"collection_name": "other", "vector_configs": [{"name": "v", "dimension": 2}]}
    assert papers.post(COL, json=other).status_code == 200
    assert_error(papers.patch(f"{COL}/other", json={"collection_name": "papers"}), 409, "AlreadyExistsError")
    assert stored(papers) == before


@pytest.mark.parametrize(
    ("body", "loc"),
    [({"collection_name": "bad name!"}, ["body", "collection_name"]), ({"vector_configs": []}, ["body", "vector_configs"]),
     ({"metadata": "x"}, ["body", "metadata"])],
    ids=["bad-name", "features-not-patchable", "metadata-not-object"],
)  # fmt: skip
def test_bad_collection_patch_is_422(
    papers: TestClient, before: dict[str, Any], body: dict[str, Any], loc: list[Any]
) -> None:
    assert_invalid(papers.patch(f"{COL}/papers", json=body), loc, str(loc[-1]))
    assert stored(papers) == before


# -- property: nothing a client sends gives a 5xx -----------------------------------------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_KEYS = st.sampled_from(
    ["AND", "OR", "NOT", "field", "operator", "value", "case_sensitive", "category", "metadata.year", "title",
     "_internal.created_at", "document_id", "type"]
) | st.text(max_size=8)  # fmt: skip
_OPERATORS = st.sampled_from(
    ["eq", "ne", "gt", "lt", "gte", "lte", "in", "nin", "contains", "starts_with", "ends_with", "exists",
     "is_null", "text", "EQ", "bogus"]
)  # fmt: skip
_CONDITIONS = st.fixed_dictionaries(
    {"field": st.sampled_from(["category", "metadata.year", "title", "document_id", "x.y", ""]) | st.text(max_size=6),
     "operator": _OPERATORS, "value": _SCALARS | st.lists(_SCALARS, max_size=3)},
    optional={"case_sensitive": st.booleans() | _SCALARS},
)  # fmt: skip
_JSON = st.recursive(
    _SCALARS | _CONDITIONS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_KEYS, children, max_size=3),
    max_leaves=12,
)
_FILTERS = st.dictionaries(_KEYS, _JSON, max_size=3) | _JSON


@settings(max_examples=50, deadline=None)
@given(filters=_FILTERS)
def test_random_filters_never_give_a_5xx(papers: TestClient, filters: Any) -> None:
    before_count = papers.get(f"{DOCS}/count").json()["count"]
    response = papers.post(f"{DOCS}/list", json={"filters": filters})
    assert response.status_code < 500, (filters, response.text)
    if response.status_code != 200:
        assert response.json()["success"] is False
    count = papers.get(f"{DOCS}/count")
    assert count.status_code == 200 and count.json()["count"] == before_count


_DOC_KEYS = st.sampled_from(
    ["document_id", "collection_id", "vectors", "_internal", "text", "title", "metadata"]
) | (st.text(max_size=8))
_DOC_VALUES = st.recursive(
    _SCALARS
    | st.lists(st.floats(-2, 2, allow_nan=False), min_size=3, max_size=5)
    | st.fixed_dictionaries(
        {},
        optional={"emb": st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=5) | _SCALARS},
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=st.dictionaries(_DOC_KEYS, _DOC_VALUES, max_size=5))
def test_random_document_bodies_never_give_a_5xx(fresh_papers: TestClient, document: dict[str, Any]) -> None:
    papers = fresh_papers
    before_count = papers.get(f"{DOCS}/count").json()["count"]
    response = papers.post(DOCS, json=document)
    assert response.status_code < 500, (document, response.text)
    after_count = papers.get(f"{DOCS}/count").json()["count"]
    if response.status_code == 200:
        assert after_count == before_count + 1
        doc_id = response.json()["document_id"]
        got = papers.get(f"{DOCS}/{doc_id}", params={"return_vectors": "true"})
        assert got.status_code == 200, (document, got.text)
        listed = papers.post(f"{DOCS}/list", json={"filters": {"document_id": doc_id}})
        assert listed.status_code == 200, (document, listed.text)
    else:
        assert response.json()["success"] is False
        assert after_count == before_count


def test_a_body_over_the_size_limit_is_refused_before_parsing(tmp_path: Any, embedder: TextEmbedder) -> None:
    with served(settings_for(tmp_path / "small", max_request_bytes=4096), embedder) as (http, _):
        assert http.post(COL, json=TEXT_COLLECTION).status_code == 200
        big = {"documents": [{"text": "x" * 100} for _ in range(100)]}
        error = assert_error(http.post(f"{DOCS}/batch", json=big), 400, "BadRequestError")
        assert "4,096" in error["message"] and "SIFTLINE_MAX_REQUEST_BYTES" in error["message"]
        assert http.get(f"{DOCS}/count").json()["count"] == 0


def test_the_default_namespace_cannot_be_deleted(client: TestClient) -> None:
    error = assert_error(client.delete("/v1/namespaces/default"), 400, "BadRequestError")
    assert "default" in error["message"]
    assert client.post(f"{COL}/list").status_code == 200
