"""Namespaces over HTTP: the default namespace, create, read by id or name, list, rename, cascading delete."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from helpers import TEXT_COLLECTION

NS = "/v1/namespaces"


def assert_error(response: Any, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["success"], body["status"], body["error"]["type"]) == (False, status, error_type)
    assert body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture
def team(client: TestClient) -> dict[str, Any]:
    response = client.post(
        NS, json={"namespace_name": "team-a", "description": "Team A", "metadata": {"k": 1}}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_default_namespace_exists_on_start(client: TestClient) -> None:
    response = client.get(f"{NS}/default")
    assert response.status_code == 200
    assert response.json()["namespace_name"] == "default"
    assert response.json()["namespace_id"].startswith("ns_")
    assert [ns["namespace_name"] for ns in client.post(f"{NS}/list", json={}).json()["results"]] == [
        "default"
    ]


def test_create_returns_200_with_the_namespace(team: dict[str, Any]) -> None:
    assert team["namespace_id"].startswith("ns_")
    assert (team["namespace_name"], team["description"], team["metadata"]) == ("team-a", "Team A", {"k": 1})
    assert team["collection_count"] == 0
    assert team["created_at"] == team["updated_at"]


def test_get_by_id_and_by_name_are_the_same(client: TestClient, team: dict[str, Any]) -> None:
    by_id = client.get(f"{NS}/{team['namespace_id']}")
    by_name = client.get(f"{NS}/team-a")
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json() == by_name.json() == team


def test_list_shows_every_namespace_with_total_count(client: TestClient, team: dict[str, Any]) -> None:
    client.post(NS, json={"namespace_name": "team-b"})
    response = client.post(f"{NS}/list", json={})
    assert response.status_code == 200
    assert [ns["namespace_name"] for ns in response.json()["results"]] == ["default", "team-a", "team-b"]
    assert response.json()["total_count"] == 3
    page = client.post(f"{NS}/list", json={"limit": 1, "offset": 1}).json()
    assert [ns["namespace_name"] for ns in page["results"]] == ["team-a"]
    assert page["total_count"] == 3 and page["pagination"]["has_next"] is True


def test_collection_count_follows_the_namespace_collections(client: TestClient, team: dict[str, Any]) -> None:
    client.post("/v1/collections", json=TEXT_COLLECTION, headers={"X-Namespace": "team-a"})
    assert client.get(f"{NS}/team-a").json()["collection_count"] == 1
    assert client.get(f"{NS}/default").json()["collection_count"] == 0


def test_patch_renames_and_keeps_the_id_and_contents(client: TestClient, team: dict[str, Any]) -> None:
    client.post("/v1/collections", json=TEXT_COLLECTION, headers={"X-Namespace": "team-a"})
    response = client.patch(f"{NS}/team-a", json={"namespace_name": "team-z", "description": "Z"})
    assert response.status_code == 200, response.text
    assert (response.json()["namespace_id"], response.json()["namespace_name"]) == (
        team["namespace_id"],
        "team-z",
    )
    assert response.json()["description"] == "Z"
    assert response.json()["metadata"] == {"k": 1}
    assert client.get(f"{NS}/team-a").status_code == 404
    assert client.get(f"{NS}/team-z").json()["namespace_id"] == team["namespace_id"]
    assert client.get("/v1/collections/papers", headers={"X-Namespace": "team-z"}).status_code == 200
    assert client.get("/v1/collections/papers", headers={"X-Namespace": "team-a"}).status_code == 404


def test_patch_by_id(client: TestClient, team: dict[str, Any]) -> None:
    response = client.patch(f"{NS}/{team['namespace_id']}", json={"metadata": {"k": 2}})
    assert response.status_code == 200
    assert (response.json()["namespace_name"], response.json()["metadata"]) == ("team-a", {"k": 2})


def test_delete_cascades_to_collections_and_documents(client: TestClient, team: dict[str, Any]) -> None:
    h = {"X-Namespace": "team-a"}
    col = client.post("/v1/collections", json=TEXT_COLLECTION, headers=h).json()
    client.post(
        "/v1/collections/papers/documents", json={"document_id": "d1", "text": "gone soon"}, headers=h
    )
    response = client.delete(f"{NS}/team-a")
    assert response.status_code == 200
    assert response.json()["success"] is True
    assert_error(client.get(f"{NS}/team-a"), 404, "NotFoundError")
    assert_error(client.get(f"{NS}/{team['namespace_id']}"), 404, "NotFoundError")
    assert_error(client.get("/v1/collections/papers", headers=h), 404, "NotFoundError")

    again = client.post(NS, json={"namespace_name": "team-a"})
    assert again.status_code == 200
    assert again.json()["namespace_id"] != team["namespace_id"]
    assert again.json()["collection_count"] == 0
    assert client.post("/v1/collections/list", json={}, headers=h).json()["results"] == []
    assert_error(client.get("/v1/collections/papers", headers=h), 404, "NotFoundError")
    assert_error(client.get(f"/v1/collections/{col['collection_id']}", headers=h), 404, "NotFoundError")
    recreated = client.post("/v1/collections", json=TEXT_COLLECTION, headers=h)
    assert recreated.status_code == 200
    assert client.get("/v1/collections/papers/documents/count", headers=h).json()["count"] == 0


def test_deleting_one_namespace_leaves_the_others(client: TestClient, team: dict[str, Any]) -> None:
    client.post("/v1/collections", json=TEXT_COLLECTION)
    client.post("/v1/collections/papers/documents", json={"document_id": "d1", "text": "stays"})
    client.post("/v1/collections", json=TEXT_COLLECTION, headers={"X-Namespace": "team-a"})
    assert client.delete(f"{NS}/{team['namespace_id']}").status_code == 200
    assert client.get("/v1/collections/papers/documents/d1").json()["text"] == "stays"
    assert [ns["namespace_name"] for ns in client.post(f"{NS}/list", json={}).json()["results"]] == [
        "default"
    ]


@pytest.mark.parametrize(
    "name",
    ["ab", "x" * 65, "ns_team", "has space", "-leading-dash", "semi;colon", "", "tëam"],
    ids=["too-short", "too-long", "ns-prefix", "space", "leading-dash", "semicolon", "empty", "non-ascii"],
)
def test_bad_namespace_name_is_422(client: TestClient, name: str) -> None:
    error = assert_error(client.post(NS, json={"namespace_name": name}), 422, "ValidationError")
    assert ["body", "namespace_name"] in [e["loc"] for e in error["details"]["errors"]]
    assert "namespace_name" in error["message"]
    assert client.post(f"{NS}/list", json={}).json()["total_count"] == 1


@pytest.mark.parametrize(
    "body", [{}, {"namespace_name": 5}, {"namespace_name": None}], ids=["missing", "int", "null"]
)
def test_missing_or_non_string_namespace_name_is_422(client: TestClient, body: dict[str, Any]) -> None:
    error = assert_error(client.post(NS, json=body), 422, "ValidationError")
    assert ["body", "namespace_name"] in [e["loc"] for e in error["details"]["errors"]]


def test_bad_rename_is_422_and_changes_nothing(client: TestClient, team: dict[str, Any]) -> None:
    error = assert_error(client.patch(f"{NS}/team-a", json={"namespace_name": "x y"}), 422, "ValidationError")
    assert ["body", "namespace_name"] in [e["loc"] for e in error["details"]["errors"]]
    assert client.get(f"{NS}/team-a").json() == team


def test_unknown_patch_field_is_422(client: TestClient, team: dict[str, Any]) -> None:
    error = assert_error(client.patch(f"{NS}/team-a", json={"owner": "me"}), 422, "ValidationError")
    assert ["body", "owner"] in [e["loc"] for e in error["details"]["errors"]]


def test_duplicate_name_is_409(client: TestClient, team: dict[str, Any]) -> None:
    error = assert_error(client.post(NS, json={"namespace_name": "team-a"}), 409, "AlreadyExistsError")
    assert "team-a" in error["message"]
    assert client.get(f"{NS}/team-a").json() == team


def test_rename_onto_an_existing_name_is_409(client: TestClient, team: dict[str, Any]) -> None:
    client.post(NS, json={"namespace_name": "team-b"})
    assert_error(client.patch(f"{NS}/team-b", json={"namespace_name": "team-a"}), 409, "AlreadyExistsError")
    assert client.get(f"{NS}/team-a").json() == team


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_namespace_is_404_naming_it(client: TestClient, method: str) -> None:
    response = client.request(method, f"{NS}/nowhere", json={} if method == "PATCH" else None)
    error = assert_error(response, 404, "NotFoundError")
    assert "nowhere" in error["message"]


def test_the_default_namespace_cannot_be_renamed_and_null_metadata_clears(client: TestClient) -> None:
    """Found by the fuzz suite: a rename of 'default' sent every request without X-Namespace to a 404,
    and metadata: null was stored as null and made every later read of the namespace a 500."""
    renamed = client.patch("/v1/namespaces/default", json={"namespace_name": "elsewhere"})
    assert renamed.status_code == 400 and "cannot be renamed" in renamed.json()["error"]["message"]
    assert client.get("/v1/namespaces/default").status_code == 200
    assert client.patch("/v1/namespaces/default", json={"namespace_name": "default"}).status_code == 200
    cleared = client.patch("/v1/namespaces/default", json={"metadata": None})
    assert cleared.status_code == 200 and cleared.json()["metadata"] == {}
    assert client.get("/v1/namespaces/default").json()["metadata"] == {}
