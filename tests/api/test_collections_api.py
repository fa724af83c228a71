"""Collections over HTTP: create, read by id or name, features, list pages, patch, delete, document_count."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from helpers import TEXT_COLLECTION

COL = "/v1/collections"
DENSE_URI = "mixpeek://text_extractor@v1/all_minilm_l6_v2"
BM25_URI = "mixpeek://text_extractor@v1/bm25"
EMB_URI = "mixpeek://vectors@v1/emb"
VECTORS_ONLY = {
    "collection_name": "vecs",
    "vector_configs": [{"name": "v", "dimension": 3, "metric": "dot_product"}],
}


@pytest.fixture
def papers(client: TestClient) -> dict[str, Any]:
    response = client.post(
        COL, json={**TEXT_COLLECTION, "description": "Papers", "metadata": {"team": "bio"}}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_create_returns_200_with_its_configuration(client: TestClient, papers: dict[str, Any]) -> None:
    assert papers["collection_id"].startswith("col_")
    assert papers["collection_name"] == "papers"
    assert papers["description"] == "Papers"
    assert papers["metadata"] == {"team": "bio"}
    assert papers["feature_extractor"] == TEXT_COLLECTION["feature_extractor"]
    assert papers["vector_configs"] == [{"name": "emb", "dimension": 4, "metric": "cosine"}]
    assert papers["payload_indexes"] == [{"field_name": "category", "type": "keyword"}]
    assert papers["document_count"] == 0
    default = client.get("/v1/namespaces/default").json()
    assert papers["namespace_id"] == default["namespace_id"]


def test_get_by_id_and_by_name_are_the_same(client: TestClient, papers: dict[str, Any]) -> None:
    by_id = client.get(f"{COL}/{papers['collection_id']}")
    by_name = client.get(f"{COL}/papers")
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json() == by_name.json() == papers


def test_features_lists_text_dense_bm25_and_user_vectors(client: TestClient, papers: dict[str, Any]) -> None:
    response = client.get(f"{COL}/papers/features")
    assert response.status_code == 200
    features = {f["feature_uri"]: f for f in response.json()["features"]}
    assert set(features) == {DENSE_URI, BM25_URI, EMB_URI}
    dense, bm25, emb = features[DENSE_URI], features[BM25_URI], features[EMB_URI]
    assert (dense["type"], dense["dimension"], dense["metric"]) == ("dense", 384, "cosine")
    assert dense["extractor"] == "text_extractor@v1"
    assert dense["source_fields"] == ["title", "text"]
    assert bm25["type"] == "bm25"
    assert (emb["name"], emb["type"], emb["dimension"], emb["metric"]) == ("emb", "dense", 4, "cosine")
    assert papers["features"] == response.json()["features"]


def test_text_extractor_with_a_single_field_mapping(client: TestClient) -> None:
    body = {"collection_name": "notes", "feature_extractor": {"feature_extractor_name": "text_extractor",
                                                              "input_mappings": {"text": "body"}}}  # fmt: skip
    response = client.post(COL, json=body)
    assert response.status_code == 200, response.text
    features = response.json()["features"]
    assert {f["feature_uri"] for f in features} == {DENSE_URI, BM25_URI}
    assert all(f["source_fields"] == ["body"] for f in features)
    doc = client.post(f"{COL}/notes/documents", json={"document_id": "n", "body": "a short note"})
    assert doc.status_code == 200
    vectors = client.get(f"{COL}/notes/documents/n", params={"return_vectors": "true"}).json()["vectors"]
    assert len(vectors["all_minilm_l6_v2"]) == 384


def test_vectors_only_collection(client: TestClient) -> None:
    created = client.post(COL, json=VECTORS_ONLY)
    assert created.status_code == 200, created.text
    assert created.json()["feature_extractor"] is None
    features = client.get(f"{COL}/vecs/features").json()["features"]
    assert [(f["feature_uri"], f["type"], f["dimension"], f["metric"]) for f in features] == [
        ("mixpeek://vectors@v1/v", "dense", 3, "dot_product")
    ]
    doc = client.post(
        f"{COL}/vecs/documents", json={"document_id": "a", "vectors": {"v": [1.0, 2.0, 3.0]}, "k": 1}
    )
    assert doc.status_code == 200, doc.text
    got = client.get(f"{COL}/vecs/documents/a", params={"return_vectors": "true"}).json()
    assert got["vectors"] == {"v": [1.0, 2.0, 3.0]}
    assert got["k"] == 1


def test_vectors_only_collection_accepts_documents_without_vectors(client: TestClient) -> None:
    client.post(COL, json=VECTORS_ONLY)
    response = client.post(f"{COL}/vecs/documents", json={"document_id": "plain", "text": "no vector"})
    assert response.status_code == 200, response.text
    got = client.get(f"{COL}/vecs/documents/plain", params={"return_vectors": "true"}).json()
    assert got["vectors"] == {}


def test_document_count_follows_writes(client: TestClient, papers: dict[str, Any]) -> None:
    docs = [{"document_id": f"d{i}", "text": f"note {i}"} for i in range(3)]
    client.post(f"{COL}/papers/documents/batch", json={"documents": docs})
    assert client.get(f"{COL}/papers").json()["document_count"] == 3
    client.delete(f"{COL}/papers/documents/d0")
    assert client.get(f"{COL}/papers").json()["document_count"] == 2
    listed = client.post(f"{COL}/list", json={}).json()["results"]
    assert [c["document_count"] for c in listed] == [2]


def _names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [c["collection_name"] for c in response.json()["results"]]


def test_list_with_limit_offset_and_total_count(client: TestClient) -> None:
    for name in ("c1", "c2", "c3"):
        assert client.post(COL, json={**VECTORS_ONLY, "collection_name": name}).status_code == 200
    everything = client.post(f"{COL}/list", json={})
    assert _names(everything) == ["c1", "c2", "c3"]
    assert everything.json()["total_count"] == 3
    page = client.post(f"{COL}/list", json={"limit": 2})
    assert _names(page) == ["c1", "c2"]
    assert page.json()["total_count"] == 3
    assert page.json()["pagination"]["has_next"] is True
    last = client.post(f"{COL}/list", json={"limit": 2, "offset": 2})
    assert _names(last) == ["c3"]
    assert last.json()["pagination"]["has_next"] is False
    assert _names(client.post(f"{COL}/list?limit=1&offset=1")) == ["c2"]
    assert _names(client.post(f"{COL}/list")) == ["c1", "c2", "c3"]


def test_patch_renames_and_describes(client: TestClient, papers: dict[str, Any]) -> None:
    client.post(f"{COL}/papers/documents", json={"document_id": "d", "text": "kept"})
    response = client.patch(f"{COL}/papers", json={"collection_name": "articles", "description": "Articles",
                                                   "metadata": {"team": "chem"}})  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["collection_id"], body["collection_name"]) == (papers["collection_id"], "articles")
    assert (body["description"], body["metadata"]) == ("Articles", {"team": "chem"})
    assert body["features"] == papers["features"]
    assert body["created_at"] == papers["created_at"]
    assert client.get(f"{COL}/papers").status_code == 404
    assert client.get(f"{COL}/articles").json() == body
    assert client.get(f"{COL}/articles/documents/d").json()["text"] == "kept"


def test_patch_with_only_a_description_keeps_the_rest(client: TestClient, papers: dict[str, Any]) -> None:
    body = client.patch(f"{COL}/{papers['collection_id']}", json={"description": "New"}).json()
    assert (body["collection_name"], body["description"], body["metadata"]) == (
        "papers",
        "New",
        {"team": "bio"},
    )


def test_patch_can_clear_the_description(client: TestClient, papers: dict[str, Any]) -> None:
    assert client.patch(f"{COL}/papers", json={"description": None}).json()["description"] is None


def test_delete_removes_the_collection_and_its_documents(client: TestClient, papers: dict[str, Any]) -> None:
    docs = [
        {"document_id": "d1", "text": "one", "vectors": {"emb": [1, 0, 0, 0]}},
        {"document_id": "d2", "text": "2"},
    ]
    client.post(f"{COL}/papers/documents/batch", json={"documents": docs})
    response = client.delete(f"{COL}/papers")
    assert response.status_code == 200
    assert response.json()["success"] is True
    assert client.get(f"{COL}/papers").status_code == 404
    assert client.get(f"{COL}/{papers['collection_id']}").status_code == 404
    assert client.get(f"{COL}/{papers['collection_id']}/documents/count").status_code == 404
    assert _names(client.post(f"{COL}/list", json={})) == []


def test_a_new_collection_of_a_deleted_name_starts_empty(client: TestClient, papers: dict[str, Any]) -> None:
    client.post(
        f"{COL}/papers/documents", json={"document_id": "d1", "text": "old", "vectors": {"emb": [1, 0, 0, 0]}}
    )
    client.delete(f"{COL}/papers")
    again = client.post(COL, json=TEXT_COLLECTION)
    assert again.status_code == 200
    assert again.json()["collection_id"] != papers["collection_id"]
    assert again.json()["document_count"] == 0
    assert client.get(f"{COL}/papers/documents/count").json()["count"] == 0
    assert client.post(f"{COL}/papers/documents/list", json={}).json()["results"] == []
    assert client.get(f"{COL}/papers/documents/d1").status_code == 404
    recreated = client.post(f"{COL}/papers/documents", json={"document_id": "d1", "text": "new"})
    assert recreated.status_code == 200
    vectors = client.get(f"{COL}/papers/documents/d1", params={"return_vectors": "true"}).json()["vectors"]
    assert set(vectors) == {"all_minilm_l6_v2"}  # the old collection's `emb` vector is gone


def test_delete_by_id(client: TestClient, papers: dict[str, Any]) -> None:
    assert client.delete(f"{COL}/{papers['collection_id']}").status_code == 200
    assert client.get(f"{COL}/papers").status_code == 404
