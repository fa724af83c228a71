"""The execute routes' fast path (``siftline/api/hot.py``) answers exactly as FastAPI's routing does.

Two applications over one data directory: the normal one, and one built without ``HotPaths`` (every
request through FastAPI's routing and dependencies). Each request below goes to both; status, body
(minus what differs between any two runs: ids and times) and the headers a client reads must agree. The
fast path must also have answered every valid execution itself, and left the rest to FastAPI.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from helpers import ADMIN_KEY, TEXT_COLLECTION
from siftline.api import hot
from siftline.api.app import create_app
from siftline.api.hot import HotPaths
from siftline.config import Settings
from siftline.service.container import Services

EMB = "mixpeek://vectors@v1/emb"
VOLATILE = {
    "execution_id",
    "created_at",
    "completed_at",
    "updated_at",
    "cached_at",
    "cached_from_execution_id",
}


def stages(vector: Any = "{{ INPUT.v }}", **params: Any) -> list[dict[str, Any]]:
    search = {"feature_uri": EMB, "query": {"input_mode": "vector", "value": vector}, "top_k": 5}
    return [
        {
            "stage_name": "search",
            "stage_type": "filter",
            "config": {"stage_id": "feature_search", "parameters": {"searches": [search], **params}},
        }
    ]


def adhoc(**extra: Any) -> dict[str, Any]:
    return {"collection_identifiers": ["papers"], "stages": stages([1, 0, 0, 0]), **extra}


def stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: stable(v)
            for k, v in value.items()
            if k not in VOLATILE and not (k.endswith("_ms") and not k.startswith("max_"))  # timings
        }
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


@pytest.fixture
def pair(settings: Settings, services: Services) -> Iterator[tuple[TestClient, TestClient]]:
    fast_app = create_app(settings, services)
    plain_app = create_app(settings, services)
    plain_app.user_middleware = [m for m in plain_app.user_middleware if m.cls is not HotPaths]
    with (
        TestClient(fast_app, raise_server_exceptions=False) as fast,
        TestClient(plain_app, raise_server_exceptions=False) as plain,
    ):
        for c in (fast, plain):
            c.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        assert fast.post("/v1/collections", json=TEXT_COLLECTION).status_code == 200
        docs = [
            {"document_id": f"d{i}", "text": f"note {i}", "category": "odd" if i % 2 else "even", "year": 2000 + i,
             "vectors": {"emb": [math.cos(0.1 * i), math.sin(0.1 * i), 0.0, 0.0]}}
            for i in range(8)
        ]  # fmt: skip
        assert (
            fast.post("/v1/collections/papers/documents/batch", json={"documents": docs}).status_code == 200
        )
        saved = {
            "retriever_name": "near",
            "collection_identifiers": ["papers"],
            "stages": stages(),
            "input_schema": {"v": {"type": "array", "default": [1, 0, 0, 0]}},
        }
        assert fast.post("/v1/retrievers", json=saved).status_code == 200
        yield fast, plain


def both(
    pair: tuple[TestClient, TestClient], path: str, body: Any = None, *, raw: bytes | None = None,
    headers: dict[str, str] | None = None, answered: bool,
) -> tuple[Any, Any]:  # fmt: skip
    """The same request to both applications; returns the (stable) responses after checking they agree
    and that the fast path answered it (or not) as expected."""
    fast, plain = pair
    content = raw if raw is not None else orjson.dumps(body)
    sent = {"Content-Type": "application/json", **(headers or {})}
    before = HotPaths.answered
    got = fast.post(path, content=content, headers=sent)
    assert HotPaths.answered - before == (1 if answered else 0), (path, got.status_code, got.text[:300])
    want = plain.post(path, content=content, headers=sent)
    assert HotPaths.answered - before == (1 if answered else 0)
    assert got.status_code == want.status_code, (got.text[:500], want.text[:500])
    for header in ("content-type", "x-cache", "x-execution-mode"):
        assert got.headers.get(header) == want.headers.get(header), header
    if got.status_code == 304:
        assert got.content == want.content == b""
        return None, None
    a, b = stable(got.json()), stable(want.json())
    assert a == b
    return got, a


def test_valid_executions_are_answered_by_the_fast_path_as_fastapi_answers_them(pair: Any) -> None:
    got, body = both(pair, "/v1/retrievers/execute", adhoc(), answered=True)
    assert body["status"] == "completed" and [d["document_id"] for d in body["documents"]][:3] == [
        "d0",
        "d1",
        "d2",
    ]
    assert got.headers["etag"] == pair[1].post("/v1/retrievers/execute", json=adhoc()).headers["etag"]
    both(pair, "/v1/retrievers/near/execute", {"inputs": {"v": [0, 1, 0, 0]}}, answered=True)
    both(pair, "/v1/retrievers/near/execute", {}, answered=True)
    both(pair, "/v1/retrievers/execute?skip_cache=true&return_vectors=1", adhoc(), answered=True)
    both(pair, "/v1/retrievers/execute?namespace=default", adhoc(), answered=True)
    both(pair, "/v1/retrievers/execute", adhoc(), headers={"X-Namespace": "default"}, answered=True)
    both(pair, "/v1/retrievers/execute", adhoc(filters={"AND": [{"field": "category", "operator": "eq",
                                                                 "value": "odd"}]}), answered=True)  # fmt: skip
    _, paged = both(pair, "/v1/retrievers/execute", adhoc(pagination={"method": "offset", "page_size": 2,
                                                                      "page_number": 2}), answered=True)  # fmt: skip
    assert paged["pagination"]["returned"] == 2
    # the result cache is shared by the two applications: a miss here, then a hit from each
    cached = orjson.dumps(adhoc(cache_config={"enabled": True}))
    fast, plain = pair
    json_type = {"Content-Type": "application/json"}
    assert fast.post("/v1/retrievers/execute", content=cached, headers=json_type).headers["x-cache"] == "MISS"
    before = HotPaths.answered
    got = fast.post("/v1/retrievers/execute", content=cached, headers=json_type)
    want = plain.post("/v1/retrievers/execute", content=cached, headers=json_type)
    assert HotPaths.answered == before + 1
    assert got.headers["x-cache"] == want.headers["x-cache"] == "HIT"
    assert stable(got.json()) == stable(want.json()) and got.headers["etag"] == want.headers["etag"]
    # a client holding the result's ETag gets 304 from both
    both(
        pair, "/v1/retrievers/execute", adhoc(), headers={"If-None-Match": got.headers["etag"]}, answered=True
    )
    # an integer past 64 bits reaches the filter as the integer it is (orjson would make it a float,
    # which the filter would take) and is refused by both, answered here
    huge = {"AND": [{"field": "year", "operator": "lt", "value": 2**70}]}
    got, body = both(
        pair, "/v1/retrievers/execute", raw=json.dumps(adhoc(filters=huge)).encode(), answered=True
    )
    assert got.status_code == 422 and "64 bits" in body["error"]["message"]


def test_the_body_is_read_as_the_standard_library_reads_it() -> None:
    """orjson reads an integer past 64 bits as a float; FastAPI's json.loads keeps it exact."""
    for text in (
        b'{"n": 1180591620717411303424}',
        b'{"n": [-12345678901234567890123]}',
        b"[1e400]",
        b"[NaN]",
    ):
        assert repr(hot._parse(text)) == repr(json.loads(text))
    assert hot._parse(b"[0.000123456789012345678901, 2.5]") == [0.000123456789012345678901, 2.5]
    with pytest.raises(hot._Declined):
        hot._parse(b"{")


def test_errors_raised_by_the_execution_keep_the_applications_envelope(pair: Any) -> None:
    _, body = both(
        pair, "/v1/retrievers/execute", {**adhoc(), "collection_identifiers": ["nope"]}, answered=True
    )
    assert body["success"] is False and "nope" in body["error"]["message"]
    _, body = both(pair, "/v1/retrievers/missing/execute", {}, answered=True)
    assert body["error"]["type"] == "NotFoundError"
    _, body = both(pair, "/v1/retrievers/execute", adhoc(stages=[{"stage_name": "x", "stage_type": "filter",
                                                                   "config": {"stage_id": "no_such_stage"}}]),
                   answered=True)  # fmt: skip
    assert body["error"]["type"] == "ValidationError"


@pytest.mark.parametrize(
    ("path", "raw", "headers", "status"),
    [
        ("/v1/retrievers/execute", orjson.dumps(adhoc()), {"Authorization": ""}, 401),
        (
            "/v1/retrievers/execute",
            orjson.dumps(adhoc()),
            {"Authorization": "Bearer sk_test_wrong_key_0123456789"},
            401,
        ),
        ("/v1/retrievers/execute", orjson.dumps(adhoc()), {"X-Namespace": "nowhere"}, 404),
        ("/v1/retrievers/execute", b'{"stages": [', {}, 422),
        ("/v1/retrievers/execute", b"", {}, 422),
        ("/v1/retrievers/execute", orjson.dumps({"collection_identifiers": ["papers"]}), {}, 422),
        ("/v1/retrievers/execute", orjson.dumps({**adhoc(), "limit": "many"}), {}, 422),
        ("/v1/retrievers/execute?skip_cache=maybe", orjson.dumps(adhoc()), {}, 422),
        ("/v1/retrievers/execute", orjson.dumps(adhoc()), {"Content-Type": "text/plain"}, 422),
        ("/v1/retrievers/near/execute", b'{"inputs": {"v": [NaN, 0, 0, 0]}}', {}, None),
        ("/v1/retrievers/near/execute", b'{"inputs": "not an object"}', {}, 422),
    ],
)
def test_anything_else_is_left_to_fastapi(
    pair: Any, path: str, raw: bytes, headers: dict[str, str], status: int | None
) -> None:
    nan = b"NaN" in raw  # the standard library reads NaN: answered here, and equal to FastAPI's verdict
    got, body = both(pair, path, raw=raw, headers=headers, answered=nan)
    if status is not None:
        assert got.status_code == status and body["success"] is False


def test_streaming_is_left_to_fastapi(pair: Any) -> None:
    fast, plain = pair
    before = HotPaths.answered
    for client in (fast, plain):
        with client.stream("POST", "/v1/retrievers/execute", json=adhoc(stream=True)) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert b"completed" in b"".join(response.iter_bytes())
    assert HotPaths.answered == before


def test_a_body_over_the_limit_is_refused_with_the_400_envelope(
    settings: Settings, services: Services
) -> None:
    small = settings.model_copy(update={"max_request_bytes": 2_000})
    with TestClient(create_app(small, services), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        big = adhoc(inputs={"pad": "x" * 5_000})
        got = client.post("/v1/retrievers/execute", json=big)
        assert got.status_code == 400 and got.json()["error"]["type"] == "BadRequestError"
        chunks = iter([orjson.dumps(big)[:1500], orjson.dumps(big)[1500:]])
        got = client.post(
            "/v1/retrievers/execute", content=chunks, headers={"Content-Type": "application/json"}
        )
        assert got.status_code == 400 and "limit" in got.json()["error"]["message"]
