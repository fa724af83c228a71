"""Documents over HTTP: create, batch, read, replace, merge-patch, delete, list with filters/sort/pages, count."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from helpers import TEXT_COLLECTION, served, settings_for
from siftline.features.embedder import TextEmbedder

DOCS = "/v1/collections/papers/documents"
DENSE = "all_minilm_l6_v2"
CORPUS = [
    {"document_id": "p1", "title": "Vitamin D", "text": "bone density in adults", "category": "Nutrition",
     "metadata": {"year": 2021, "tag": "rct"}},
    {"document_id": "p2", "title": "Sleep", "text": "memory consolidation", "category": "neuro",
     "metadata": {"year": 2019}},
    {"document_id": "p3", "title": "Coffee", "text": "caffeine and focus", "category": "nutrition",
     "metadata": {"year": 2023, "tag": "cohort"}},
    {"document_id": "p4", "title": "Running", "text": "cardio health", "category": "exercise",
     "metadata": {"year": 2020}},
    {"document_id": "p5", "title": "Fasting", "text": "insulin response", "category": "nutrition",
     "metadata": {"year": 2018}},
]  # fmt: skip


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [d["document_id"] for d in response.json()["results"]]


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


@pytest.fixture
def papers(client: TestClient) -> TestClient:
    """The `papers` collection: text of title+text (MiniLM + BM25), a 4-d cosine vector `emb`, no documents."""
    assert client.post("/v1/collections", json=TEXT_COLLECTION).status_code == 200
    return client


def _load(client: TestClient) -> TestClient:
    response = client.post(f"{DOCS}/batch", json={"documents": CORPUS})
    assert response.status_code == 200, response.text
    return client


@pytest.fixture
def corpus(papers: TestClient) -> TestClient:
    """`papers` holding CORPUS, on a server of its own: for tests that change documents."""
    return _load(papers)


@pytest.fixture(scope="module")
def read_corpus(tmp_path_factory: pytest.TempPathFactory, embedder: TextEmbedder) -> Iterator[TestClient]:
    """`papers` holding CORPUS on one server per module (built like conftest's ``client``): read-only tests."""
    with served(settings_for(tmp_path_factory.mktemp("documents") / "data"), embedder) as (client, _):
        assert client.post("/v1/collections", json=TEXT_COLLECTION).status_code == 200
        yield _load(client)


# -- create and read ----------------------------------------------------------------------------------


def test_create_without_id_generates_a_doc_id(papers: TestClient) -> None:
    response = papers.post(DOCS, json={"title": "T", "text": "hello"})
    assert response.status_code == 200
    assert response.json()["document_id"].startswith("doc_")


def test_create_keeps_the_given_id_and_returns_user_fields_at_the_root(papers: TestClient) -> None:
    body = {
        "document_id": "paper-1",
        "title": "T",
        "text": "hello",
        "category": "c",
        "metadata": {"year": 2021},
    }
    response = papers.post(DOCS, json=body)
    assert response.status_code == 200
    doc = response.json()
    assert doc["document_id"] == "paper-1"
    assert doc["collection_id"].startswith("col_")
    assert {k: doc[k] for k in ("title", "text", "category", "metadata")} == {
        "title": "T", "text": "hello", "category": "c", "metadata": {"year": 2021}
    }  # fmt: skip
    assert "vectors" not in doc
    assert papers.get(f"{DOCS}/paper-1").json() == doc


def test_internal_holds_timestamps_and_content_hash(papers: TestClient) -> None:
    internal = papers.post(DOCS, json={"text": "hello"}).json()["_internal"]
    assert internal["created_at"] == internal["updated_at"]
    assert internal["created_at"].endswith("Z")
    assert len(internal["content_hash"]) == 64


def test_same_user_fields_give_the_same_content_hash(papers: TestClient) -> None:
    first = papers.post(DOCS, json={"text": "same", "n": 1}).json()["_internal"]["content_hash"]
    second = papers.post(DOCS, json={"n": 1, "text": "same"}).json()["_internal"]["content_hash"]
    third = papers.post(DOCS, json={"text": "other", "n": 1}).json()["_internal"]["content_hash"]
    assert first == second != third


def test_batch_create_returns_the_ids_in_order(papers: TestClient) -> None:
    response = papers.post(
        f"{DOCS}/batch", json={"documents": [{"document_id": "a", "text": "x"}, {"text": "y"}]}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert body["document_ids"][0] == "a" and body["document_ids"][1].startswith("doc_")
    assert papers.get(f"{DOCS}/count").json()["count"] == 2
    assert papers.get(f"{DOCS}/{body['document_ids'][1]}").json()["text"] == "y"


def test_return_vectors_gives_the_384_d_unit_text_vector_and_the_supplied_vector(papers: TestClient) -> None:
    papers.post(
        DOCS, json={"document_id": "v1", "text": "hello world", "vectors": {"emb": [3.0, 0.0, 4.0, 0.0]}}
    )
    vectors = papers.get(f"{DOCS}/v1", params={"return_vectors": "true"}).json()["vectors"]
    assert len(vectors[DENSE]) == 384
    assert norm(vectors[DENSE]) == pytest.approx(1.0, abs=1e-3)
    assert vectors["emb"] == pytest.approx(
        [0.6, 0.0, 0.8, 0.0], abs=1e-6
    )  # cosine vectors are stored normalised


def test_supplied_euclidean_vector_is_returned_unchanged(client: TestClient) -> None:
    body = {
        "collection_name": "vecs",
        "vector_configs": [{"name": "v", "dimension": 3, "metric": "euclidean"}],
    }
    assert client.post("/v1/collections", json=body).status_code == 200
    client.post(
        "/v1/collections/vecs/documents", json={"document_id": "d", "vectors": {"v": [1.5, -2.0, 8.0]}}
    )
    got = client.get("/v1/collections/vecs/documents/d", params={"return_vectors": "true"}).json()
    assert got["vectors"] == {"v": [1.5, -2.0, 8.0]}


def test_vectors_are_absent_unless_asked_for(read_corpus: TestClient) -> None:
    assert "vectors" not in read_corpus.get(f"{DOCS}/p1").json()
    assert all("vectors" not in d for d in read_corpus.post(f"{DOCS}/list", json={}).json()["results"])
    listed = read_corpus.post(f"{DOCS}/list", json={"return_vectors": True}).json()["results"]
    assert all(len(d["vectors"][DENSE]) == 384 for d in listed)


# -- replace (PUT) ------------------------------------------------------------------------------------


def test_put_replaces_all_fields_and_keeps_created_at(corpus: TestClient) -> None:
    before = corpus.get(f"{DOCS}/p1").json()
    response = corpus.put(f"{DOCS}/p1", json={"title": "New", "text": "new text"})
    assert response.status_code == 200
    after = response.json()
    assert (after["title"], after["text"]) == ("New", "new text")
    assert "category" not in after and "metadata" not in after
    assert after["_internal"]["created_at"] == before["_internal"]["created_at"]
    assert after["_internal"]["updated_at"] != before["_internal"]["updated_at"]
    assert after["_internal"]["content_hash"] != before["_internal"]["content_hash"]
    assert corpus.get(f"{DOCS}/p1").json() == after


def test_a_document_read_can_be_put_back_unchanged(corpus: TestClient) -> None:
    before = corpus.get(f"{DOCS}/p1").json()
    response = corpus.put(f"{DOCS}/p1", json=before)
    assert response.status_code == 200, response.text
    after = response.json()
    assert {k: v for k, v in after.items() if k != "_internal"} == {
        k: v for k, v in before.items() if k != "_internal"
    }
    assert after["_internal"]["content_hash"] == before["_internal"]["content_hash"]
    assert after["_internal"]["created_at"] == before["_internal"]["created_at"]


def test_a_document_read_with_vectors_can_be_put_back_unchanged(corpus: TestClient) -> None:
    before = corpus.get(f"{DOCS}/p2", params={"return_vectors": "true"}).json()
    assert corpus.put(f"{DOCS}/p2", json=before).status_code == 200
    after = corpus.get(f"{DOCS}/p2", params={"return_vectors": "true"}).json()
    assert after["vectors"][DENSE] == pytest.approx(before["vectors"][DENSE], abs=1e-6)
    assert after["text"] == before["text"]


def test_put_with_changed_text_re_embeds(corpus: TestClient) -> None:
    before = corpus.get(f"{DOCS}/p1", params={"return_vectors": "true"}).json()["vectors"][DENSE]
    corpus.put(f"{DOCS}/p1", json={"title": "Volcanoes", "text": "lava flows on Iceland"})
    after = corpus.get(f"{DOCS}/p1", params={"return_vectors": "true"}).json()["vectors"][DENSE]
    assert len(after) == 384 and norm(after) == pytest.approx(1.0, abs=1e-3)
    assert sum(a * b for a, b in zip(before, after, strict=True)) < 0.9


def test_put_with_same_text_as_a_new_document_gives_the_same_vector(corpus: TestClient) -> None:
    corpus.put(f"{DOCS}/p1", json={"title": "Coffee", "text": "caffeine and focus"})
    got = corpus.get(f"{DOCS}/p1", params={"return_vectors": "true"}).json()["vectors"][DENSE]
    ref = corpus.get(f"{DOCS}/p3", params={"return_vectors": "true"}).json()["vectors"][DENSE]
    assert got == pytest.approx(ref, abs=1e-5)


# -- merge patch (PATCH) ------------------------------------------------------------------------------


def test_patch_merges_nested_objects_and_null_removes(corpus: TestClient) -> None:
    response = corpus.patch(
        f"{DOCS}/p1", json={"metadata": {"year": 2022, "tag": None, "new": "x"}, "category": None}
    )
    assert response.status_code == 200
    doc = response.json()
    assert doc["metadata"] == {"year": 2022, "new": "x"}
    assert "category" not in doc
    assert (doc["title"], doc["text"]) == ("Vitamin D", "bone density in adults")
    assert corpus.get(f"{DOCS}/p1").json() == doc


def test_patch_replaces_lists_and_scalars_and_adds_fields(corpus: TestClient) -> None:
    corpus.patch(f"{DOCS}/p2", json={"tags": ["a", "b"]})
    doc = corpus.patch(f"{DOCS}/p2", json={"tags": ["c"], "metadata": "flat now", "extra": 1}).json()
    assert (doc["tags"], doc["metadata"], doc["extra"]) == (["c"], "flat now", 1)


def test_patch_keeps_created_at_and_moves_updated_at(corpus: TestClient) -> None:
    before = corpus.get(f"{DOCS}/p2").json()["_internal"]
    after = corpus.patch(f"{DOCS}/p2", json={"category": "sleep"}).json()["_internal"]
    assert after["created_at"] == before["created_at"]
    assert after["updated_at"] != before["updated_at"]


def test_patch_accepts_internal_and_collection_id_in_the_body(corpus: TestClient) -> None:
    doc = corpus.get(f"{DOCS}/p2").json()
    body = {
        "_internal": {"created_at": "1999-01-01T00:00:00Z"},
        "collection_id": doc["collection_id"],
        "x": 1,
    }
    response = corpus.patch(f"{DOCS}/p2", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["_internal"]["created_at"] == doc["_internal"]["created_at"]  # system-managed
    assert response.json()["x"] == 1


def test_patch_without_text_change_keeps_the_text_vector_identical(corpus: TestClient) -> None:
    before = corpus.get(f"{DOCS}/p3", params={"return_vectors": "true"}).json()["vectors"]
    corpus.patch(f"{DOCS}/p3", json={"category": "drinks", "metadata": {"year": 2024}})
    after = corpus.get(f"{DOCS}/p3", params={"return_vectors": "true"}).json()["vectors"]
    assert after[DENSE] == before[DENSE]


def test_patch_that_changes_the_text_re_embeds(corpus: TestClient) -> None:
    before = corpus.get(f"{DOCS}/p3", params={"return_vectors": "true"}).json()["vectors"][DENSE]
    corpus.patch(f"{DOCS}/p3", json={"text": "glaciers retreat in the Alps"})
    after = corpus.get(f"{DOCS}/p3", params={"return_vectors": "true"}).json()["vectors"][DENSE]
    assert sum(a * b for a, b in zip(before, after, strict=True)) < 0.9


def test_patch_can_replace_a_supplied_vector_and_keep_the_others(papers: TestClient) -> None:
    papers.post(DOCS, json={"document_id": "v", "text": "hi", "vectors": {"emb": [1.0, 0.0, 0.0, 0.0]}})
    before = papers.get(f"{DOCS}/v", params={"return_vectors": "true"}).json()["vectors"]
    papers.patch(f"{DOCS}/v", json={"vectors": {"emb": [0.0, 2.0, 0.0, 0.0]}})
    after = papers.get(f"{DOCS}/v", params={"return_vectors": "true"}).json()["vectors"]
    assert after["emb"] == pytest.approx([0.0, 1.0, 0.0, 0.0])
    assert after[DENSE] == before[DENSE]


def test_a_document_id_that_is_accepted_can_be_read_back(papers: TestClient) -> None:
    created = papers.post(DOCS, json={"document_id": "count", "text": "hello"})
    if created.status_code != 200:  # refusing the route's name is fine too
        assert created.status_code == 422
        return
    assert papers.get(f"{DOCS}/count").json().get("document_id") == "count"


# -- delete -------------------------------------------------------------------------------------------


def test_delete_then_get_is_404_and_count_drops(corpus: TestClient) -> None:
    response = corpus.delete(f"{DOCS}/p4")
    assert response.status_code == 200
    assert response.json()["success"] is True
    assert corpus.get(f"{DOCS}/p4").status_code == 404
    assert corpus.get(f"{DOCS}/count").json()["count"] == 4
    assert "p4" not in ids(corpus.post(f"{DOCS}/list", json={}))
    assert corpus.delete(f"{DOCS}/p4").status_code == 404


def test_a_deleted_id_can_be_created_again(corpus: TestClient) -> None:
    corpus.delete(f"{DOCS}/p4")
    response = corpus.post(DOCS, json={"document_id": "p4", "text": "back again"})
    assert response.status_code == 200
    assert corpus.get(f"{DOCS}/p4").json()["text"] == "back again"


# -- list: filters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"category": "NUTRITION"}, ["p1", "p3", "p5"]),
        ({"category": "nutrition", "case_sensitive": True}, ["p3", "p5"]),
        ({"field": "category", "operator": "eq", "value": "Nutrition", "case_sensitive": True}, ["p1"]),
        ({"AND": [{"category": "nutrition"}, {"field": "metadata.year", "operator": "gte", "value": 2021}]},
         ["p1", "p3"]),
        ({"OR": [{"category": "neuro"}, {"category": "exercise"}]}, ["p2", "p4"]),
        ({"NOT": [{"category": "nutrition"}]}, ["p2", "p4"]),
        ({"field": "metadata.year", "operator": "gte", "value": 2020}, ["p1", "p3", "p4"]),
        ({"field": "metadata.year", "operator": "lt", "value": 2020}, ["p2", "p5"]),
        ({"field": "category", "operator": "in", "value": ["neuro", "EXERCISE"]}, ["p2", "p4"]),
        ({"field": "category", "operator": "nin", "value": ["nutrition"]}, ["p2", "p4"]),
        ({"field": "metadata.tag", "operator": "exists", "value": True}, ["p1", "p3"]),
        ({"field": "metadata.tag", "operator": "exists", "value": False}, ["p2", "p4", "p5"]),
        ({"field": "title", "operator": "starts_with", "value": "s"}, ["p2"]),
        ({"field": "text", "operator": "contains", "value": "DENSITY"}, ["p1"]),
        ({"field": "text", "operator": "regex", "value": "^ca"}, ["p3", "p4"]),
        ({"field": "document_id", "operator": "in", "value": ["p5", "p1"]}, ["p1", "p5"]),
        ({"AND": [{"OR": [{"category": "neuro"}, {"category": "nutrition"}]},
                  {"NOT": [{"field": "metadata.year", "operator": "lte", "value": 2019}]}]}, ["p1", "p3"]),
        ({}, ["p1", "p2", "p3", "p4", "p5"]),
    ],
    ids=["eq-shorthand-case-insensitive", "eq-case-sensitive", "eq-condition-case-sensitive", "and-gte", "or",
         "not", "gte-year", "lt-year", "in", "nin", "exists", "not-exists", "starts-with", "contains", "regex",
         "document-id-in", "nested", "empty"],
)  # fmt: skip
def test_list_with_filters(read_corpus: TestClient, filters: dict[str, Any], expected: list[str]) -> None:
    assert sorted(ids(read_corpus.post(f"{DOCS}/list", json={"filters": filters}))) == expected


def test_filter_on_a_non_ascii_field_name(papers: TestClient) -> None:
    papers.post(
        DOCS, json={"document_id": "fr", "text": "x", "città": "Roma", "métadonnées": {"année": 2020}}
    )
    papers.post(DOCS, json={"document_id": "en", "text": "y", "città": "Milano"})
    assert ids(papers.post(f"{DOCS}/list", json={"filters": {"città": "roma"}})) == ["fr"]
    year = {"field": "métadonnées.année", "operator": "gte", "value": 2019}
    assert ids(papers.post(f"{DOCS}/list", json={"filters": year})) == ["fr"]


def test_filtered_count_of_a_list_matches_include_total(read_corpus: TestClient) -> None:
    body = {"filters": {"category": "nutrition"}, "include_total": True, "limit": 1}
    response = read_corpus.post(f"{DOCS}/list", json=body).json()
    assert response["total_documents"] == 3
    assert response["pagination"]["total"] == 3
    assert response["pagination"]["total_pages"] == 3
    assert len(response["results"]) == 1


# -- list: sort and pages -----------------------------------------------------------------------------


def test_sort_ascending_and_descending(read_corpus: TestClient) -> None:
    asc = ids(read_corpus.post(f"{DOCS}/list", json={"sort": {"field": "metadata.year", "direction": "asc"}}))
    desc = ids(
        read_corpus.post(f"{DOCS}/list", json={"sort": {"field": "metadata.year", "direction": "desc"}})
    )
    assert asc == ["p5", "p2", "p4", "p1", "p3"]
    assert desc == list(reversed(asc))


def test_sort_defaults_to_ascending(read_corpus: TestClient) -> None:
    assert ids(read_corpus.post(f"{DOCS}/list", json={"sort": {"field": "title"}})) == [
        "p3",
        "p5",
        "p4",
        "p2",
        "p1",
    ]


def test_limit_and_offset(read_corpus: TestClient) -> None:
    assert ids(read_corpus.post(f"{DOCS}/list", json={"limit": 2})) == ["p1", "p2"]
    assert ids(read_corpus.post(f"{DOCS}/list", json={"limit": 2, "offset": 2})) == ["p3", "p4"]
    assert ids(read_corpus.post(f"{DOCS}/list?limit=2&offset=4")) == ["p5"]
    body = {"limit": 2, "offset": 1, "sort": {"field": "metadata.year", "direction": "desc"}}
    assert ids(read_corpus.post(f"{DOCS}/list", json=body)) == ["p1", "p4"]


def _all_pages(client: TestClient, body: dict[str, Any]) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        response = client.post(f"{DOCS}/list", json={**body, "cursor": cursor})
        seen += ids(response)
        page = response.json()["pagination"]
        cursor = page["next_cursor"]
        assert page["has_next"] == (cursor is not None)
        if cursor is None:
            return seen
    raise AssertionError(f"cursor pages did not end: {seen}")


@pytest.mark.parametrize(
    "body",
    [{"limit": 2}, {"limit": 1}, {"limit": 2, "sort": {"field": "metadata.year", "direction": "desc"}},
     {"limit": 2, "filters": {"category": "nutrition"}}, {"limit": 5}, {"limit": 10}],
    ids=["by-2", "by-1", "sorted", "filtered", "exactly-all", "more-than-all"],
)  # fmt: skip
def test_cursor_pages_cover_every_document_exactly_once(
    read_corpus: TestClient, body: dict[str, Any]
) -> None:
    pages = _all_pages(read_corpus, body)
    everything = ids(read_corpus.post(f"{DOCS}/list", json={k: v for k, v in body.items() if k != "limit"}))
    assert len(pages) == len(set(pages))
    assert pages == everything


def test_cursor_in_the_query_string(read_corpus: TestClient) -> None:
    first = read_corpus.post(f"{DOCS}/list", json={"limit": 3}).json()
    cursor = first["pagination"]["next_cursor"]
    second = read_corpus.post(f"{DOCS}/list", params={"cursor": cursor}, json={"limit": 3})
    assert ids(second) == ["p4", "p5"]


def test_include_total_and_count(read_corpus: TestClient) -> None:
    without = read_corpus.post(f"{DOCS}/list", json={"limit": 2}).json()
    assert without["total_documents"] is None
    counted = read_corpus.post(f"{DOCS}/list", json={"limit": 2, "include_total": True}).json()
    assert counted["total_documents"] == 5
    assert counted["pagination"]["total"] == 5 and counted["pagination"]["has_next"] is True
    assert read_corpus.post(f"{DOCS}/list?include_total=true&limit=2").json()["total_documents"] == 5
    count = read_corpus.get(f"{DOCS}/count").json()
    assert count["count"] == 5
    assert count["collection_id"].startswith("col_")


def test_empty_collection_lists_nothing(papers: TestClient) -> None:
    response = papers.post(f"{DOCS}/list", json={"include_total": True}).json()
    assert response["results"] == [] and response["total_documents"] == 0
    assert response["pagination"]["next_cursor"] is None
    assert papers.get(f"{DOCS}/count").json()["count"] == 0


def test_list_without_a_body(read_corpus: TestClient) -> None:
    assert ids(read_corpus.post(f"{DOCS}/list")) == ["p1", "p2", "p3", "p4", "p5"]
