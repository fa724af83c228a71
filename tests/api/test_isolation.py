"""Namespaces isolate their data; keys are limited to their namespaces; bad or revoked keys get 401.

Acceptance: a collection or document of namespace A is never listed, read, changed or deleted through
namespace B (404); a key limited to A gets 403 on B; a revoked key gets 401; every route is tried.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from helpers import ADMIN_KEY, TEXT_COLLECTION, bearer, served, settings_for
from siftline.features.embedder import TextEmbedder
from siftline.service import keys, namespaces
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
    Route("POST", "/v1/collections/{c}/documents", {"document_id": "doc-new", "text": "intruder"}, 200),
    Route("POST", "/v1/collections/{c}/documents/batch", {"documents": [{"text": "intruder"}]}, 200),
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
    Route("POST", "/v1/collections", {**TEXT_COLLECTION, "collection_name": "fresh"}, 200),
    Route("POST", "/v1/collections/list", {}),
    *SCOPED_ROUTES,
]
NAMESPACE_ROUTES = [
    Route("POST", "/v1/namespaces", {"namespace_name": "brand-new"}, 200),
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
    services: Services
    ns_a: dict[str, Any]
    ns_b: dict[str, Any]
    collection: dict[str, Any]

    def snapshot(self) -> dict[str, Any]:
        """Everything namespace A holds, read through A."""
        h = ns_headers(NS_A)
        cols = self.client.post("/v1/collections/list", headers=h, json={})
        assert cols.status_code == 200, cols.text
        docs = self.client.post(
            f"/v1/collections/{COLLECTION}/documents/list",
            headers=h,
            json={"return_vectors": True, "limit": 100},
        )
        assert docs.status_code == 200, docs.text
        return {"collections": cols.json()["results"], "documents": docs.json()["results"]}

    def make_key(self, *namespace_names: str) -> str:
        """A key limited to these namespaces (unlimited without names), like conftest's ``make_key``."""
        storage = self.services.storage
        ids = [namespaces.ensure_namespace(storage, n).namespace_id for n in namespace_names] or None
        return keys.create_key(storage, "test", ids)[1]

    def revoke(self, secret: str) -> None:
        matches = [
            k for k in self.services.storage.list_keys() if secret.startswith(k.prefix) and k.name == "test"
        ]
        assert len(matches) == 1
        assert self.services.storage.revoke_key(matches[0].key_id) is not None


def build_world(client: TestClient, services: Services) -> World:
    """Namespaces A and B; in A, the collection `papers` with two documents; B is empty."""
    ns_a = client.post("/v1/namespaces", json={"namespace_name": NS_A})
    ns_b = client.post("/v1/namespaces", json={"namespace_name": NS_B})
    assert ns_a.status_code == ns_b.status_code == 200
    col = client.post("/v1/collections", json=TEXT_COLLECTION, headers=ns_headers(NS_A))
    assert col.status_code == 200, col.text
    docs = client.post(
        f"/v1/collections/{COLLECTION}/documents/batch", json={"documents": A_DOCS}, headers=ns_headers(NS_A)
    )
    assert docs.status_code == 200, docs.text
    return World(client, services, ns_a.json(), ns_b.json(), col.json())


@pytest.fixture
def world(client: TestClient, services: Services) -> World:
    """A fresh world, for tests whose requests succeed and change data."""
    return build_world(client, services)


@pytest.fixture(scope="module")
def shared_world(tmp_path_factory: pytest.TempPathFactory, embedder: TextEmbedder) -> Iterator[World]:
    """One world for the tests whose requests must all be refused (each checks A is unchanged).

    Built like conftest's ``client`` (real SQLite, real model, admin key), once per module: building a
    world per test would dominate the run time.
    """
    with served(settings_for(tmp_path_factory.mktemp("isolation") / "data"), embedder) as (client, services):
        yield build_world(client, services)


def a_ids(world: World, by: str = "name") -> dict[str, str]:
    c = world.collection["collection_id"] if by == "id" else COLLECTION
    return {"c": c, "d": DOC_IDS[0], "ns": NS_A}


# -- namespace B never sees A's data --------------------------------------------------------------------


@pytest.mark.parametrize("by", ["id", "name"])
@pytest.mark.parametrize("route", SCOPED_ROUTES, ids=str)
def test_collection_and_document_routes_of_namespace_a_are_not_found_through_namespace_b(
    shared_world: World, route: Route, by: str
) -> None:
    before = shared_world.snapshot()
    response = route.call(shared_world.client, ns_headers(NS_B), **a_ids(shared_world, by))
    error = assert_error(response, 404, "NotFoundError")
    assert a_ids(shared_world, by)["c"] in error["message"]
    assert shared_world.snapshot() == before


def test_collection_list_through_namespace_b_omits_namespace_a_collections(shared_world: World) -> None:
    response = shared_world.client.post("/v1/collections/list", headers=ns_headers(NS_B), json={})
    assert response.status_code == 200
    assert response.json()["results"] == []
    assert response.json()["total_count"] == 0
    assert shared_world.collection["collection_id"] not in response.text


@pytest.mark.parametrize("route", DOCUMENT_ROUTES, ids=str)
def test_same_collection_name_in_b_does_not_reach_a_documents(world: World, route: Route) -> None:
    h_b = ns_headers(NS_B)
    assert world.client.post("/v1/collections", json=TEXT_COLLECTION, headers=h_b).status_code == 200
    before = world.snapshot()
    response = route.call(world.client, h_b, c=COLLECTION, d=DOC_IDS[0])
    error = assert_error(response, 404, "NotFoundError")
    assert DOC_IDS[0] in error["message"]
    assert world.snapshot() == before


def test_same_collection_name_in_a_and_b_holds_different_documents(world: World) -> None:
    h_a, h_b = ns_headers(NS_A), ns_headers(NS_B)
    col_b = world.client.post("/v1/collections", json=TEXT_COLLECTION, headers=h_b).json()
    assert col_b["collection_id"] != world.collection["collection_id"]
    created = world.client.post(
        f"/v1/collections/{COLLECTION}/documents",
        headers=h_b,
        json={"document_id": "doc-a1", "text": "B's own"},
    )
    assert created.status_code == 200, created.text  # the id is free in B even though A uses it

    listed_b = world.client.post(f"/v1/collections/{COLLECTION}/documents/list", headers=h_b, json={}).json()
    assert [(d["document_id"], d["text"]) for d in listed_b["results"]] == [("doc-a1", "B's own")]
    assert world.client.get(f"/v1/collections/{COLLECTION}/documents/count", headers=h_b).json()["count"] == 1

    doc_a = world.client.get(f"/v1/collections/{COLLECTION}/documents/doc-a1", headers=h_a).json()
    assert (doc_a["text"], doc_a["collection_id"]) == ("bone density", world.collection["collection_id"])
    assert world.client.get(f"/v1/collections/{COLLECTION}/documents/count", headers=h_a).json()["count"] == 2


def test_changing_the_same_named_collection_in_b_leaves_a_intact(world: World) -> None:
    h_b = ns_headers(NS_B)
    world.client.post("/v1/collections", json=TEXT_COLLECTION, headers=h_b)
    before = world.snapshot()
    path = f"/v1/collections/{COLLECTION}"
    assert world.client.post(
        f"{path}/documents", json={"document_id": "b1", "text": "b"}, headers=h_b
    ).is_success
    assert world.client.patch(path, json={"description": "B's"}, headers=h_b).status_code == 200
    assert world.client.delete(f"{path}/documents/b1", headers=h_b).status_code == 200
    assert world.client.delete(path, headers=h_b).status_code == 200
    assert world.snapshot() == before


# -- keys limited to namespaces -------------------------------------------------------------------------


@pytest.mark.parametrize("route", NAMESPACED_ROUTES, ids=str)
def test_key_limited_to_a_gets_403_on_other_namespaces(shared_world: World, route: Route) -> None:
    secret = shared_world.make_key(NS_A)
    before = shared_world.snapshot()
    for target in (NS_B, shared_world.ns_b["namespace_id"], "no-such-namespace"):
        response = route.call(shared_world.client, bearer(secret, target), **a_ids(shared_world))
        error = assert_error(response, 403, "ForbiddenError")
        assert target in error["message"]
    assert shared_world.snapshot() == before
    listed_b = shared_world.client.post("/v1/collections/list", json={}, headers=ns_headers(NS_B))
    assert listed_b.json()["results"] == []


@pytest.mark.parametrize("route", NAMESPACED_ROUTES, ids=str)
def test_key_limited_to_a_works_on_a(world: World, route: Route) -> None:
    response = route.call(world.client, bearer(world.make_key(NS_A), NS_A), **a_ids(world))
    assert response.status_code == route.ok, response.text


@pytest.mark.parametrize("route", [r for r in NAMESPACE_ROUTES if "{ns}" in r.path], ids=str)
def test_key_limited_to_a_gets_403_on_namespace_routes_of_others(shared_world: World, route: Route) -> None:
    secret = shared_world.make_key(NS_A)
    before = shared_world.client.get(f"/v1/namespaces/{NS_B}").json()
    for target in (NS_B, shared_world.ns_b["namespace_id"], "no-such-namespace"):
        assert_error(route.call(shared_world.client, bearer(secret), ns=target), 403, "ForbiddenError")
    assert shared_world.client.get(f"/v1/namespaces/{NS_B}").json() == before


def test_key_limited_to_a_without_a_namespace_gets_403_on_default(shared_world: World) -> None:
    response = shared_world.client.post(
        "/v1/collections/list", json={}, headers=bearer(shared_world.make_key(NS_A))
    )
    error = assert_error(response, 403, "ForbiddenError")
    assert "default" in error["message"]


def test_key_limited_to_a_may_read_namespace_a(shared_world: World) -> None:
    response = shared_world.client.get(f"/v1/namespaces/{NS_A}", headers=bearer(shared_world.make_key(NS_A)))
    assert response.status_code == 200
    assert response.json()["namespace_id"] == shared_world.ns_a["namespace_id"]


def test_key_limited_to_a_cannot_create_namespaces(shared_world: World) -> None:
    headers = bearer(shared_world.make_key(NS_A))
    response = shared_world.client.post("/v1/namespaces", json={"namespace_name": "ns-c"}, headers=headers)
    assert_error(response, 403, "ForbiddenError")
    assert shared_world.client.get("/v1/namespaces/ns-c").status_code == 404


def test_namespace_list_of_a_limited_key_shows_only_a(shared_world: World) -> None:
    headers = bearer(shared_world.make_key(NS_A))
    response = shared_world.client.post("/v1/namespaces/list", json={}, headers=headers)
    assert response.status_code == 200
    assert [ns["namespace_name"] for ns in response.json()["results"]] == [NS_A]
    assert response.json()["total_count"] == 1


def test_namespace_list_of_an_unlimited_key_shows_every_namespace(shared_world: World) -> None:
    listed = shared_world.client.post("/v1/namespaces/list", json={}).json()["results"]
    assert {"default", NS_A, NS_B} <= {ns["namespace_name"] for ns in listed}


# -- revoked, missing and malformed keys ---------------------------------------------------------------


@pytest.mark.parametrize("route", ALL_ROUTES, ids=str)
def test_revoked_key_gets_401_on_every_route(shared_world: World, route: Route) -> None:
    secret = shared_world.make_key()
    assert shared_world.client.post("/v1/namespaces/list", json={}, headers=bearer(secret)).status_code == 200
    shared_world.revoke(secret)
    before = shared_world.snapshot()
    response = route.call(shared_world.client, bearer(secret, NS_A), **a_ids(shared_world))
    error = assert_error(response, 401, "UnauthorizedError")
    assert "revoked" in error["message"]
    assert shared_world.snapshot() == before


BAD_AUTH = {
    "missing": None,
    "empty": "",
    "no-token": "Bearer",
    "blank-token": "Bearer   ",
    "basic-scheme": "Basic dXNlcjpwYXNz",
    "unknown-key": "Bearer sk_test_not_a_real_key_000000000000",
    "key-without-scheme": ADMIN_KEY,
}


@pytest.mark.parametrize("auth", list(BAD_AUTH))
def test_missing_or_malformed_authorization_gets_401_on_every_route(shared_world: World, auth: str) -> None:
    before = shared_world.snapshot()
    headers = ns_headers(NS_A)
    if BAD_AUTH[auth] is not None:
        headers["Authorization"] = BAD_AUTH[auth]
    client = shared_world.client
    saved = client.headers.pop("Authorization")
    try:
        responses = {str(route): route.call(client, headers, **a_ids(shared_world)) for route in ALL_ROUTES}
    finally:
        client.headers["Authorization"] = saved
    assert {r: resp.status_code for r, resp in responses.items()} == dict.fromkeys(responses, 401)
    for response in responses.values():
        error = assert_error(response, 401, "UnauthorizedError")
        assert "key" in error["message"].lower() or "authorization" in error["message"].lower()
    assert shared_world.snapshot() == before


def test_health_needs_no_key(shared_world: World) -> None:
    client = shared_world.client
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


def test_namespace_by_header_name_and_by_header_id_are_the_same(shared_world: World) -> None:
    client, path = shared_world.client, f"/v1/collections/{COLLECTION}"
    by_name = client.get(path, headers=ns_headers(NS_A))
    by_id = client.get(path, headers=ns_headers(shared_world.ns_a["namespace_id"]))
    assert by_name.status_code == by_id.status_code == 200
    assert (
        by_name.json()["collection_id"]
        == by_id.json()["collection_id"]
        == shared_world.collection["collection_id"]
    )


@pytest.mark.parametrize("key", ["namespace_name", "namespace_id"])
def test_namespace_by_query_parameter(shared_world: World, key: str) -> None:
    response = shared_world.client.get(
        f"/v1/collections/{COLLECTION}", params={"namespace": shared_world.ns_a[key]}
    )
    assert response.status_code == 200
    assert response.json()["namespace_id"] == shared_world.ns_a["namespace_id"]


def test_namespace_header_wins_over_query(shared_world: World) -> None:
    client = shared_world.client
    assert _collection_names(client, headers=ns_headers(NS_A), params={"namespace": NS_B}) == [COLLECTION]
    assert _collection_names(client, headers=ns_headers(NS_B), params={"namespace": NS_A}) == []


def test_without_header_or_query_the_default_namespace_is_used(world: World) -> None:
    assert _collection_names(world.client) == []
    world.client.post("/v1/collections", json={**TEXT_COLLECTION, "collection_name": "in-default"})
    assert _collection_names(world.client) == ["in-default"]
    assert _collection_names(world.client, params={"namespace": "default"}) == ["in-default"]
    assert _collection_names(world.client, headers=ns_headers(NS_A)) == [COLLECTION]


def test_unknown_namespace_is_404_for_an_unlimited_key(shared_world: World) -> None:
    response = shared_world.client.post(
        "/v1/collections/list", json={}, headers=ns_headers("no-such-namespace")
    )
    error = assert_error(response, 404, "NotFoundError")
    assert "no-such-namespace" in error["message"]
