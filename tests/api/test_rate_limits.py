"""Per-key limits over HTTP: a key over its rate limit gets 429 (the envelope, Retry-After) on every /v1 route,
the two execute routes of the fast path included, while another key keeps its pace; an expired key gets
401 saying so, on the API and at the inspector's sign-in, and its sessions end.

Runs on SQLite, and on PostgreSQL with ``SIFTLINE_TEST_STORAGE=postgres``.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from helpers import bearer
from siftline.ids import new_id
from siftline.models import UNLIMITED, ApiKey, Rate, utcnow
from siftline.service import keys
from siftline.service.container import Services

EMB = "mixpeek://vectors@v1/emb"
COLLECTION = {"collection_name": "things", "vector_configs": [{"name": "emb", "dimension": 4}]}
STAGES = [{"stage_name": "search", "config": {"stage_id": "feature_search", "parameters": {
    "searches": [{"feature_uri": EMB, "query": {"input_mode": "vector", "value": "{{INPUT.v}}"}}],
    "final_top_k": 5}}}]  # fmt: skip
INPUTS = {"v": [1.0, 0.5, 0.0, 0.0]}


@pytest.fixture
def routes(client: TestClient) -> list[tuple[str, str, dict[str, Any] | None]]:
    """A collection of 50 documents and a saved retriever; the requests both keys make, in turn: plain
    routes and both execute routes (answered by ``api/hot.py``)."""
    assert client.post("/v1/collections", json=COLLECTION).status_code == 200
    docs = [
        {"document_id": f"d{i}", "n": i, "vectors": {"emb": [1.0, i / 50, (i % 7) / 7, 0.0]}}
        for i in range(50)
    ]
    assert client.post("/v1/collections/things/documents/batch", json={"documents": docs}).status_code == 200
    body = {"retriever_name": "ret", "collection_identifiers": ["things"], "stages": STAGES,
            "input_schema": {"v": {"type": "array"}}}  # fmt: skip
    rid = client.post("/v1/retrievers", json=body).json()["retriever_id"]
    adhoc = {"collection_identifiers": ["things"], "stages": STAGES, "inputs": INPUTS,
             "input_schema": body["input_schema"]}  # fmt: skip
    return [
        ("POST", "/v1/retrievers/execute", adhoc),
        ("POST", f"/v1/retrievers/{rid}/execute", {"inputs": INPUTS}),
        ("POST", "/v1/collections/things/documents/list", {"limit": 10}),
        ("GET", "/v1/collections/things", None),
        ("POST", "/v1/collections/list", None),
    ]


def make_key(services: Services, rate: Rate | None = None, **fields: Any) -> str:
    return keys.create_key(services.storage, "test", None, rate=rate, **fields)[1]


def call(client: TestClient, route: tuple[str, str, dict[str, Any] | None], secret: str) -> httpx.Response:
    method, path, body = route
    return client.request(method, path, json=body, headers=bearer(secret, "default"))


def assert_refused(response: httpx.Response) -> int:
    """A 429 in the error envelope with an integer Retry-After ≥ 1 that the message repeats; returns it."""
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    body = response.json()
    assert body["success"] is False and body["status"] == 429
    assert body["error"]["type"] == "TooManyRequestsError"
    assert f"Retry after {retry_after} s" in body["error"]["message"]
    assert "limit of" in body["error"]["message"]
    assert body["error"]["details"]["retry_after_seconds"] == retry_after
    return retry_after


def test_a_key_over_its_limit_gets_429_while_another_key_keeps_its_pace(
    client: TestClient, services: Services, routes: list[tuple[str, str, dict[str, Any] | None]]
) -> None:
    limited = make_key(services, Rate(2.0, 4))
    other = make_key(services)
    for route in routes * 2:  # warm: plans, caches, connections
        assert call(client, route, other).status_code == 200

    def timed(n: int) -> list[float]:
        took = []
        for i in range(n):
            started = time.perf_counter()
            response = call(client, routes[i % len(routes)], other)
            took.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text  # never a 429 for the other key
        return took

    hammered: list[tuple[str, httpx.Response]] = []
    loud, stop = threading.Event(), threading.Event()

    def hammer() -> None:  # the limited key, as fast as it is answered, while ``loud`` is set
        i = 0
        while not stop.is_set():
            if not loud.wait(0.01):
                continue
            route = routes[i % len(routes)]
            hammered.append((route[1], call(client, route, limited)))
            time.sleep(0.001)
            i += 1

    thread = threading.Thread(target=hammer)
    thread.start()
    before: list[float] = []
    during: list[float] = []
    try:  # quiet and hammered rounds in turn: the machine's own noise falls on both alike
        for _ in range(4):
            before += timed(15)
            loud.set()
            during += timed(15)
            loud.clear()
    finally:
        stop.set()
        thread.join()
    quiet_median, loud_median = statistics.median(before), statistics.median(during)

    refused = [(path, r) for path, r in hammered if r.status_code != 200]
    assert len(hammered) > 10 and len(refused) > len(hammered) // 2, [r.status_code for _, r in hammered]
    for _, response in refused:
        assert_refused(response)
    refused_paths = {path for path, _ in refused}
    assert {path for _, path, _ in routes} <= refused_paths  # every route, both execute routes included
    assert loud_median <= 3 * quiet_median, (
        f"the other key's median went from {quiet_median * 1e3:.2f} to {loud_median * 1e3:.2f} ms"
    )

    retry_after = assert_refused(call(client, routes[0], limited))
    time.sleep(retry_after)
    assert call(client, routes[0], limited).status_code == 200


@pytest.mark.parametrize("route_index", [0, 1, 3])  # ad hoc, saved (both by the fast path), a plain route
def test_each_request_counts_once_whichever_path_answers_it(
    client: TestClient,
    services: Services,
    routes: list[tuple[str, str, dict[str, Any] | None]],
    route_index: int,
) -> None:
    limited = make_key(services, Rate(1 / 3600, 3))  # three requests, then none for an hour
    method, path, body = routes[route_index]
    invalid = {"stages": "not a list"} if body is not None else None
    # the fast path hands a body it cannot validate to FastAPI, which answers 422: still one request
    first = client.request(method, path, json=invalid, headers=bearer(limited, "default"))
    assert first.status_code in (200, 422)
    assert call(client, routes[route_index], limited).status_code == 200
    assert call(client, routes[route_index], limited).status_code == 200
    refused = call(client, routes[route_index], limited)
    assert assert_refused(refused) > 3000  # about an hour
    assert "this API key's limit of 1/h (burst 3)" in refused.json()["error"]["message"]


def test_the_server_default_applies_to_keys_without_their_own_and_unlimited_keys_are_exempt(
    client: TestClient, services: Services, routes: list[tuple[str, str, dict[str, Any] | None]]
) -> None:
    plain, exempt, own = (
        make_key(services),
        make_key(services, UNLIMITED),
        make_key(services, Rate(100.0, 100)),
    )
    services.limiter.default = Rate(1 / 3600, 2)  # as SIFTLINE_RATE_LIMIT=1/h with SIFTLINE_RATE_BURST=2
    try:
        assert [call(client, routes[i], plain).status_code for i in range(2)] == [200, 200]
        refused = call(client, routes[2], plain)
        assert_refused(refused)
        assert "SIFTLINE_RATE_LIMIT" in refused.json()["error"]["message"]
        for i in range(10):
            assert call(client, routes[i % len(routes)], exempt).status_code == 200
            assert call(client, routes[i % len(routes)], own).status_code == 200
    finally:
        services.limiter.default = None


def test_health_needs_no_key_and_is_never_limited(client: TestClient, services: Services) -> None:
    services.limiter.default = Rate(1 / 3600, 1)
    try:
        for _ in range(5):
            assert client.get("/v1/health").status_code == 200
    finally:
        services.limiter.default = None


# -- expiry ---------------------------------------------------------------------------------------


def expired_key(services: Services, seconds_ago: float = 60) -> tuple[str, str]:
    """A key that expired ``seconds_ago`` (stored directly: ``create_key`` takes only future expiries)."""
    secret = keys.generate_secret()
    key_id = new_id("key")
    record = ApiKey(key_id, "old", secret[:12], None, utcnow() - timedelta(days=1))
    services.storage.create_key(
        replace(record, expires_at=utcnow() - timedelta(seconds=seconds_ago)), keys.hash_key(secret)
    )
    return secret, key_id


def test_an_expired_key_gets_401_saying_it_expired_and_when(
    client: TestClient, services: Services, routes: list[tuple[str, str, dict[str, Any] | None]]
) -> None:
    secret, _ = expired_key(services)
    (found,) = [k for k in services.storage.list_keys() if k.name == "old"]
    assert found.expires_at is not None
    for route in routes:  # the execute routes too
        response = call(client, route, secret)
        assert response.status_code == 401, response.text
        error = response.json()["error"]
        assert error["type"] == "UnauthorizedError"
        assert error["message"].startswith(f"This API key expired at {keys.when(found.expires_at)}")


def test_a_key_expiring_in_the_future_works(
    client: TestClient, services: Services, routes: list[tuple[str, str, dict[str, Any] | None]]
) -> None:
    secret = make_key(services, expires_at=utcnow() + timedelta(hours=1))
    for route in routes:
        assert call(client, route, secret).status_code == 200


def test_a_key_stops_working_when_it_expires(
    client: TestClient, services: Services, routes: list[tuple[str, str, dict[str, Any] | None]]
) -> None:
    secret = make_key(services, expires_at=utcnow() + timedelta(seconds=1.5))
    assert call(client, routes[0], secret).status_code == 200
    time.sleep(1.6)
    response = call(client, routes[0], secret)
    assert response.status_code == 401 and "expired" in response.json()["error"]["message"]


# -- the inspector's sign-in ----------------------------------------------------------------------


@pytest.fixture
def browser(client: TestClient) -> Callable[[], TestClient]:
    return lambda: TestClient(client.app, follow_redirects=False)


def sign_in(ui: TestClient, key: str) -> httpx.Response:
    token = re.search(r'name="login_token" value="([^"]+)"', ui.get("/ui/login").text)
    assert token is not None
    return ui.post("/ui/login", data={"login_token": token.group(1), "api_key": key, "namespace": "default"})


def test_the_inspector_refuses_an_expired_key_saying_so(
    client: TestClient, services: Services, browser: Callable[[], TestClient]
) -> None:
    secret, _ = expired_key(services)
    refused = sign_in(browser(), secret)
    assert refused.status_code == 401 and "This API key expired at" in refused.text


def test_a_session_ends_when_its_key_expires(
    client: TestClient, services: Services, browser: Callable[[], TestClient]
) -> None:
    ui = browser()
    secret = make_key(services, expires_at=utcnow() + timedelta(seconds=1.5))
    assert sign_in(ui, secret).status_code == 303
    assert ui.get("/ui/").status_code == 200
    time.sleep(1.6)
    page = ui.get("/ui/")
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")
    assert ui.get("/ui/api/executions").status_code == 401


def test_sign_in_attempts_count_against_the_key_s_rate_limit(
    client: TestClient, services: Services, browser: Callable[[], TestClient]
) -> None:
    secret = make_key(services, Rate(1 / 3600, 2))
    assert [sign_in(browser(), secret).status_code for _ in range(2)] == [303, 303]
    refused = sign_in(browser(), secret)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 3000
    assert "Too many requests with API key" in refused.text
