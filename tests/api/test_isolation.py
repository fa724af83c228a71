"""Namespaces isolate their data; keys are limited to their namespaces; bad or revoked keys get 401.

Acceptance: a collection or document of namespace A is never listed, read, changed or deleted through
namespace B (404); a key limited to A gets 403 on B; a revoked key gets 401; every route is tried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import TEXT_COLLECTION, bearer

from siftline.service.container import Services

NS_A, NS_B = "ns-a", "ns-b"
COLLECTION = TEXT_COLLECTION["collection_name"]
DOC_IDS = ("doc-a1", "doc-a2")
A_DOCS = [
    {"document_id": "doc-a1", "title": "Vitamin D", "text": "bone density", "category": "nutrition",
     "vectors": {"emb": [1.0, 0.0, 0.0, 0.0]}},
    {"document_id": "doc-a2", "title": "Sleep", "text": "memory", "category": "neuro", "metadata": {"year": 2020}},
]  # fmt: skip


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # placeholders: {ns}, {c} (collection id or name), {d} (document id)
    body: dict[str, Any] | None = None
    ok: int = 200

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    def call(self, client: TestClient, headers: dict[str, str], **ids: str) -> Any:
        kwargs: dict[str, Any] = {"headers": headers}
        if self.body is not None:
            kwargs["json"] = self.body
        return client.request(self.method, self.path.format(**ids), **kwargs)


COLLECTION_ROUTES = [
    Route("GET", "/v1/collections/{c}"),
    Route("PATCH", "/v1/collections/{c}", {"description": "changed through another namespace"}),
    Route("DELETE", "/v1/collections/{c}"),
    Route("GET", "/v1/collections/{c}/features"),
    Route("POST", "/v1/collections/{c}/documents", {"document_id": "doc-new", "text": "intruder"}, 201),
    Route("POST", "/v1/collections/{c}/documents/batch", {"documents": [{"text": "intruder"}]}, 201),
    Route("POST", "/v1/collections/{c}/documents/list", {}),
    Route("GET", "/v1/collections/{c}/documents/count"),
]
DOCUMENT_ROUTES = [
    Route("GET", "/v1/collections/{c}/documents/{d}"),
    Route("PUT", "/v1/collections/{c}/documents/{d}", {"text": "replaced through another namespace"}),
    Route("PATCH", "/v1/collections/{c}/documents/{d}", {"category": "patched"}),
    Route("DELETE", "/v1/collections/{c}/documents/{d}"),
]
SCOPED_ROUTES = COLLECTION_ROUTES + DOCUMENT_ROUTES
NAMESPACED_ROUTES = [
    Route("POST", "/v1/collections", {**TEXT_COLLECTION, "collection_name": "fresh"}, 201),
    Route("POST", "/v1/collections/list", {}),
    *SCOPED_ROUTES,
]
NAMESPACE_ROUTES = [
    Route("POST", "/v1/namespaces", {"namespace_name": "brand-new"}, 201),
    Route("POST", "/v1/namespaces/list", {}),
    Route("GET", "/v1/namespaces/{ns}"),
    Route("PATCH", "/v1/namespaces/{ns}", {"description": "changed"}),
    Route("DELETE", "/v1/namespaces/{ns}"),
]
ALL_ROUTES = NAMESPACE_ROUTES + NAMESPACED_ROUTES


def assert_error(response: Any, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["status"] == status
    assert body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def ns_headers(namespace: str) -> dict[str, str]:
    return {"X-Namespace": namespace}


@dataclass
class World:
    client: TestClient
    ns_a: dict[str, Any]
    ns_b: dict[str, Any]
    collection: dict[str, Any]

    def snapshot(self) -> dict[str, Any]:
        """Everything namespace A holds, read through A."""
        h = ns_headers(NS_A)
        cols = self.client.post("/v1/collections/list", headers=h, json={})
        assert cols.status_code == 200, cols.text
        docs = self.client.post(
            f"/v1/collections/{COLLECTION}/documents/list", headers=h, json={"return_vectors": True, "limit": 100}
        )
        assert docs.status_code == 200, docs.text
        return {"collections": cols.json()["results"], "documents": docs.json()["results"]}


@pytest.fixture
def world(client: TestClient) -> World:
    """Namespaces A and B; in A, the collection `papers` with two documents; B is empty."""
    ns_a = client.post("/v1/namespaces", json={"namespace_name": NS_A})
    ns_b = client.post("/v1/namespaces", json={"namespace_name": NS_B})
    assert ns_a.status_code == ns_b.status_code == 201
    col = client.post("/v1/collections", json=TEXT_COLLECTION, headers=ns_headers(NS_A))
    assert col.status_code == 201, col.text
    docs = client.post(f"/v1/collections/{COLLECTION}/documents/batch", json={"documents": A_DOCS},
                       headers=ns_headers(NS_A))  # fmt: skip
    assert docs.status_code == 201, docs.text
    return World(client, ns_a.json(), ns_b.json(), col.json())


def a_ids(world: World, by: str) -> dict[str, str]:
    c = world.collection["collection_id"] if by == "id" else COLLECTION
    return {"c": c, "d": DOC_IDS[0], "ns": NS_A}


# -- namespace B never sees A's data --------------------------------------------------------------------


@pytest.mark.parametrize("by", ["id", "name"])
@pytest.mark.parametrize("route", SCOPED_ROUTES, ids=str)
def test_collection_and_document_routes_of_namespace_a_are_not_found_through_namespace_b(
    world: World, route: Route, by: str
) -> None:
    before = world.snapshot()
    response = route.call(world.client, ns_headers(NS_B), **a_ids(world, by))
    error = assert_error(response, 404, "NotFoundError")
    assert COLLECTION in error["message"] or world.collection["collection_id"] in error["message"]
    assert world.snapshot() == before


def test_collection_list_through_namespace_b_omits_namespace_a_collections(world: World) -> None:
    response = world.client.post("/v1/collections/list", headers=ns_headers(NS_B), json={})
    assert response.status_code == 200
    body = response.json()
    assert body["results"] == []
    assert body["total_count"] == 0
    assert world.collection["collection_id"] not in response.text


@pytest.mark.parametrize("route", DOCUMENT_ROUTES, ids=str)
def test_same_collection_name_in_b_does_not_reach_a_documents(world: World, route: Route) -> None:
    h_b = ns_headers(NS_B)
    assert world.client.post("/v1/collections", json=TEXT_COLLECTION, headers=h_b).status_code == 201
    before = world.snapshot()
    response = route.call(world.client, h_b, c=COLLECTION, d=DOC_IDS[0])
    assert_error(response, 404, "NotFoundError")
    assert world.snapshot() == before


def test_same_collection_name_in_a_and_b_holds_different_documents(world: World) -> None:
    h_b = ns_headers(NS_B)
    col_b = world.client.post("/v1/collections", json=TEXT_COLLECTION, headers=h_b).json()
    assert col_b["collection_id"] != world.collection["collection_id"]
    created = world.client.post(f"/v1/collections/{COLLECTION}/documents", headers=h_b,
                                json={"document_id": "doc-a1", "text": "B's own doc-a1"})  # fmt: skip
    assert created.status_code == 201, created.text  # the id is free in B even though A uses it

    listed_b = world.client.post(f"/v1/collections/{COLLECTION}/documents/list", headers=h_b, json={}).json()
    assert [(d["document_id"], d["text"]) for d in listed_b["results"]] == [("doc-a1", "B's own doc-a1")]
    count_b = world.client.get(f"/v1/collections/{COLLECTION}/documents/count", headers=h_b).json()
    assert count_b["count"] == 1

    doc_a = world.client.get(f"/v1/collections/{COLLECTION}/documents/doc-a1", headers=ns_headers(NS_A)).json()
    assert doc_a["text"] == "bone density"
    assert doc_a["collection_id"] == world.collection["collection_id"]
    count_a = world.client.get(f"/v1/collections/{COLLECTION}/documents/count", headers=ns_headers(NS_A)).json()
    assert count_a["count"] == 2


def test_deleting_same_named_collection_in_b_leaves_a_intact(world: World) -> None:
    h_b = ns_headers(NS_B)
    world.client.post("/v1/collections", json=TEXT_COLLECTION, headers=h_b)
    before = world.snapshot()
    assert world.client.delete(f"/v1/collections/{COLLECTION}", headers=h_b).status_code == 200
    assert world.snapshot() == before


# -- keys limited to namespaces -------------------------------------------------------------------------


@pytest.mark.parametrize("route", NAMESPACED_ROUTES, ids=str)
def test_key_limited_to_a_gets_403_on_other_namespaces(
    world: World, make_key: Callable[..., str], route: Route
) -> None:
    secret = make_key(NS_A)
    before = world.snapshot()
    for target in (NS_B, world.ns_b["namespace_id"], "no-such-namespace"):
        response = route.call(world.client, bearer(secret, target), **a_ids(world, "name"))
        error = assert_error(response, 403, "ForbiddenError")
        assert target in error["message"]
    assert world.snapshot() == before
    assert world.client.post("/v1/collections/list", json={}, headers=ns_headers(NS_B)).json()["results"] == []


@pytest.mark.parametrize("route", NAMESPACED_ROUTES, ids=str)
def test_key_limited_to_a_works_on_a(world: World, make_key: Callable[..., str], route: Route) -> None:
    secret = make_key(NS_A)
    response = route.call(world.client, bearer(secret, NS_A), **a_ids(world, "name"))
    assert response.status_code == route.ok, response.text


@pytest.mark.parametrize("route", [r for r in NAMESPACE_ROUTES if "{ns}" in r.path], ids=str)
@pytest.mark.parametrize("target", [NS_B, "no-such-namespace"])
def test_key_limited_to_a_gets_403_on_namespace_routes_of_others(
    world: World, make_key: Callable[..., str], route: Route, target: str
) -> None:
    secret = make_key(NS_A)
    before = world.client.get(f"/v1/namespaces/{NS_B}").json()
    response = route.call(world.client, bearer(secret), ns=target)
    assert_error(response, 403, "ForbiddenError")
    assert world.client.get(f"/v1/namespaces/{NS_B}").json() == before


def test_key_limited_to_a_may_read_namespace_a(world: World, make_key: Callable[..., str]) -> None:
    response = world.client.get(f"/v1/namespaces/{NS_A}", headers=bearer(make_key(NS_A)))
    assert response.status_code == 200
    assert response.json()["namespace_id"] == world.ns_a["namespace_id"]


def test_key_limited_to_a_cannot_create_namespaces(world: World, make_key: Callable[..., str]) -> None:
    response = world.client.post("/v1/namespaces", json={"namespace_name": "ns-c"}, headers=bearer(make_key(NS_A)))
    assert_error(response, 403, "ForbiddenError")
    assert world.client.get("/v1/namespaces/ns-c").status_code == 404


def test_namespace_list_of_a_limited_key_shows_only_a(world: World, make_key: Callable[..., str]) -> None:
    response = world.client.post("/v1/namespaces/list", json={}, headers=bearer(make_key(NS_A)))
    assert response.status_code == 200
    body = response.json()
    assert [ns["namespace_name"] for ns in body["results"]] == [NS_A]
    assert body["total_count"] == 1


def test_namespace_list_of_an_unlimited_key_shows_every_namespace(world: World) -> None:
    names = {ns["namespace_name"] for ns in world.client.post("/v1/namespaces/list", json={}).json()["results"]}
    assert {"default", NS_A, NS_B} <= names


# -- revoked, missing and malformed keys ---------------------------------------------------------------


def _revoke(services: Services, secret: str) -> None:
    matches = [k for k in services.storage.list_keys() if secret.startswith(k.prefix) and k.name == "test"]
    assert len(matches) == 1
    assert services.storage.revoke_key(matches[0].key_id) is not None


@pytest.mark.parametrize("route", ALL_ROUTES, ids=str)
def test_revoked_key_gets_401_on_every_route(
    world: World, make_key: Callable[..., str], services: Services, route: Route
) -> None:
    secret = make_key()
    assert world.client.post("/v1/namespaces/list", json={}, headers=bearer(secret)).status_code == 200
    _revoke(services, secret)
    before = world.snapshot()
    response = route.call(world.client, bearer(secret, NS_A), **a_ids(world, "name"))
    error = assert_error(response, 401, "UnauthorizedError")
    assert "revoked" in error["message"]
    assert world.snapshot() == before


BAD_AUTH = {
    "missing": None,
    "empty": "",
    "no token": "Bearer",
    "blank token": "Bearer   ",
    "basic scheme": "Basic dXNlcjpwYXNz",
    "unknown key": "Bearer sk_test_not_a_real_key_000000000000",
    "key without scheme": "sk_test_admin_0123456789abcdefghijklmnop",
}


@pytest.mark.parametrize("auth", list(BAD_AUTH), ids=str)
def test_missing_or_malformed_authorization_gets_401_on_every_route(world: World, auth: str) -> None:
    before = world.snapshot()
    headers = ns_headers(NS_A)
    if BAD_AUTH[auth] is not None:
        headers["Authorization"] = BAD_AUTH[auth]
    saved = world.client.headers.pop("Authorization")
    try:
        responses = {str(route): route.call(world.client, headers, **a_ids(world, "name")) for route in ALL_ROUTES}
    finally:
        world.client.headers["Authorization"] = saved
    assert {r: resp.status_code for r, resp in responses.items()} == {r: 401 for r in responses}
    for response in responses.values():
        error = assert_error(response, 401, "UnauthorizedError")
        assert "key" in error["message"].lower() or "authorization" in error["message"].lower()
    assert world.snapshot() == before


def test_health_needs_no_key(client: TestClient) -> None:
    saved = client.headers.pop("Authorization")
    try:
        response = client.get("/v1/health")
    finally:
        client.headers["Authorization"] = saved
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


# -- addressing a namespace ------------------------------------------------------------------------------


def _collection_names(client: TestClient, **kwargs: Any) -> list[str]:
    response = client.post("/v1/collections/list", json={}, **kwargs)
    assert response.status_code == 200, response.text
    return [c["collection_name"] for c in response.json()["results"]]


def test_namespace_by_header_name_and_by_header_id_are_the_same(world: World) -> None:
    by_name = world.client.get(f"/v1/collections/{COLLECTION}", headers=ns_headers(NS_A))
    by_id = world.client.get(f"/v1/collections/{COLLECTION}", headers=ns_headers(world.ns_a["namespace_id"]))
    assert by_name.status_code == by_id.status_code == 200
    assert by_name.json()["collection_id"] == by_id.json()["collection_id"] == world.collection["collection_id"]


@pytest.mark.parametrize("key", ["namespace_name", "namespace_id"])
def test_namespace_by_query_parameter(world: World, key: str) -> None:
    response = world.client.get(f"/v1/collections/{COLLECTION}", params={"namespace": world.ns_a[key]})
    assert response.status_code == 200
    assert response.json()["namespace_id"] == world.ns_a["namespace_id"]


def test_namespace_header_wins_over_query(world: World) -> None:
    assert _collection_names(world.client, headers=ns_headers(NS_A), params={"namespace": NS_B}) == [COLLECTION]
    assert _collection_names(world.client, headers=ns_headers(NS_B), params={"namespace": NS_A}) == []


def test_without_header_or_query_the_default_namespace_is_used(world: World) -> None:
    assert _collection_names(world.client) == []
    world.client.post("/v1/collections", json={**TEXT_COLLECTION, "collection_name": "in-default"})
    assert _collection_names(world.client) == ["in-default"]
    assert _collection_names(world.client, params={"namespace": "default"}) == ["in-default"]
    assert _collection_names(world.client, headers=ns_headers(NS_A)) == [COLLECTION]


def test_unknown_namespace_is_404_for_an_unlimited_key(world: World) -> None:
    response = world.client.post("/v1/collections/list", json={}, headers=ns_headers("no-such-namespace"))
    error = assert_error(response, 404, "NotFoundError")
    assert "no-such-namespace" in error["message"]
