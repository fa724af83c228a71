"""Every number a request carries is bounded: values beyond 64 bits, NaN, ±Infinity, negative and huge
numbers in every numeric field of every request — the fields the OpenAPI document declares, and those
inside bodies it describes loosely (pagination, budgets, cache ttl, stage parameters, interaction
positions, vector components) — get a 422 naming the field, never a 500."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

R = "/v1/retrievers"
URI = "mixpeek://vectors@v1/v"
BAD: list[Any] = [2**64, 2**70, -(2**70), -1, 1e30, -1e30, math.nan, math.inf, -math.inf]
SEARCH = {"stage_name": "s", "config": {"stage_id": "feature_search", "parameters": {
    "searches": [{"feature_uri": URI, "query": {"input_mode": "vector", "value": [1, 0]}, "top_k": 5}],
    "final_top_k": 5}}}  # fmt: skip


def stage_with(**params: Any) -> list[dict[str, Any]]:
    search = {**SEARCH["config"]["parameters"]["searches"][0], **params.pop("search", {})}  # type: ignore[index]
    parameters = {**SEARCH["config"]["parameters"], "searches": [search], **params}  # type: ignore[index]
    return [{"stage_name": "s", "config": {"stage_id": "feature_search", "parameters": parameters}}]


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, embedder: Any
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    from helpers import served, settings_for

    settings = settings_for(tmp_path_factory.mktemp("bounded") / "data")
    with served(settings, embedder) as (client, _):
        body = {"collection_name": "c", "vector_configs": [{"name": "v", "dimension": 2, "metric": "cosine"}]}
        assert client.post("/v1/collections", json=body).status_code == 200
        docs = [{"document_id": f"d{i}", "vectors": {"v": [1, i]}} for i in range(3)]
        assert client.post("/v1/collections/c/documents/batch", json={"documents": docs}).status_code == 200
        rid = client.post(
            R, json={"retriever_name": "r", "collection_identifiers": ["c"], "stages": SEARCH_LIST}
        ).json()["retriever_id"]
        run = client.post(f"{R}/{rid}/execute", json={}).json()
        ids = {"collection_identifier": "c", "retriever_id": rid, "execution_id": run["execution_id"],
               "document_id": "d0", "namespace_identifier": "default", "first": run["documents"][0]["document_id"]}  # fmt: skip
        yield client, ids


SEARCH_LIST = [SEARCH]


def openapi_sites(client: TestClient) -> list[tuple[str, str, str, list[str], dict[str, Any]]]:
    """(method, path, where, field path, schema) of every integer and number the OpenAPI document declares."""
    spec = client.get("/openapi.json").json()
    comps = spec["components"]["schemas"]

    def resolve(s: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in s:
            s = comps[s["$ref"].split("/")[-1]]
        return s

    def walk(s: dict[str, Any], path: list[str], out: list[tuple[list[str], dict[str, Any]]]) -> None:
        s = resolve(s)
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in s.get(key, []):
                walk(sub, path, out)
        if s.get("type") in ("integer", "number") and path not in [p for p, _ in out]:
            out.append((path, s))
        for name, sub in s.get("properties", {}).items():
            walk(sub, [*path, name], out)
        if s.get("type") == "array" and "items" in s:
            walk(s["items"], [*path, "0"], out)

    sites = []
    for route, ops in spec["paths"].items():
        for method, op in ops.items():
            found: list[tuple[list[str], dict[str, Any]]] = []
            for param in op.get("parameters", []):
                if param["in"] == "query":
                    walk(param.get("schema", {}), [param["name"]], found)
                    sites += [(method, route, "query", p, sch) for p, sch in found]
                    found = []
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body:
                walk(body, [], found)
                sites += [(method, route, "body", p, sch) for p, sch in found]
    return sites


def _inside(value: Any, lo: float, hi: float, integer: bool) -> bool:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return False
    if integer and isinstance(value, float) and not value.is_integer():
        return False
    return lo <= value <= hi


# Numbers inside bodies the OpenAPI document leaves open (stage parameters, whose schemas are at
# GET /v1/retrievers/stages; list bodies; interactions; vectors), with a body that is otherwise valid.
# Pagination, budgets and cache_config are declared with their ranges: the first test covers them.
LOOSE: list[tuple[str, str, dict[str, Any], list[str]]] = [
    ("post", f"{R}/execute", {"collection_identifiers": ["c"], "stages": stage_with(final_top_k=5)}, ["stages", "0", "config", "parameters", "final_top_k"]),
    ("post", f"{R}/execute", {"collection_identifiers": ["c"], "stages": stage_with(rrf_k=60)}, ["stages", "0", "config", "parameters", "rrf_k"]),
    ("post", f"{R}/execute", {"collection_identifiers": ["c"], "stages": stage_with(search={"top_k": 5})}, ["stages", "0", "config", "parameters", "searches", "0", "top_k"]),
    ("post", f"{R}/execute", {"collection_identifiers": ["c"], "stages": stage_with(search={"weight": 1})}, ["stages", "0", "config", "parameters", "searches", "0", "weight"]),
    ("post", f"{R}/execute", {"collection_identifiers": ["c"], "stages": stage_with(search={"min_score": 0})}, ["stages", "0", "config", "parameters", "searches", "0", "min_score"]),
    ("post", f"{R}/execute", {"collection_identifiers": ["c"], "stages": stage_with(search={"query": {"input_mode": "vector", "value": [1, 0]}})}, ["stages", "0", "config", "parameters", "searches", "0", "query", "value", "0"]),
    ("post", f"{R}/executions/list", {"limit": 5}, ["limit"]),
    ("post", f"{R}/executions/list", {"offset": 0}, ["offset"]),
    ("post", f"{R}/{{retriever_id}}/executions/list", {"offset": 0}, ["offset"]),
    ("post", f"{R}/interactions/list", {"offset": 0}, ["offset"]),
    ("post", f"{R}/interactions/list", {"limit": 5}, ["limit"]),
    ("post", "/v1/collections/c/documents", {"document_id": "z", "vectors": {"v": [1, 0]}}, ["vectors", "v", "0"]),
    ("post", "/v1/collections/c/documents/batch", {"documents": [{"document_id": "z", "vectors": {"v": [1, 0]}}]}, ["documents", "0", "vectors", "v", "0"]),
]  # fmt: skip


# The documented range of each loose site (inclusive), and whether it is an integer.
RANGES: dict[str, tuple[float, float, bool]] = {
    "page_size": (1, 500, True), "page_number": (1, 1_000_000, True), "limit": (1, 1000, True),
    "max_credits": (0, 1e12, False), "max_time_ms": (0, 86_400_000, True), "final_top_k": (1, 1_000_000, True),
    "rrf_k": (1, 1_000_000, True), "top_k": (1, 1_000_000, True), "weight": (0, 1_000_000, False),
    "min_score": (-1e30, 1e30, False), "value": (-1e15, 1e15, False), "ttl_seconds": (0, 31_536_000, True),
    "offset": (0, 1_000_000_000, True), "position": (0, 1_000_000, True), "v": (-1e15, 1e15, False),
}  # fmt: skip


def _set(body: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(body, list):
        body = list(body)
        body[int(head)] = _set(body[int(head)], rest, value)
        return body
    body = dict(body or {})
    body[head] = _set(body.get(head, [] if rest and rest[0] == "0" else {}), rest, value)
    if isinstance(body[head], list) and not body[head]:
        body[head] = [value]
    return body


def _fill(text: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        text = text.replace("{" + name + "}", value)
    return text


def _template(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _fill(value, ids)
    if isinstance(value, dict):
        return {k: _template(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_template(v, ids) for v in value]
    return value


def _named(response: Any, field: str) -> bool:
    error = response.json()["error"]
    errors = (error.get("details") or {}).get("errors") or []
    return (
        any(field in [str(p) for p in e.get("loc", [])] for e in errors)
        or f"'{field}'" in error["message"]
        or field in error["message"]
    )


def _send(
    client: TestClient, method: str, route: str, where: str, path: list[str], value: Any, base: Any = None
) -> Any:
    if where == "query":
        return client.request(method, route, params={path[0]: str(value)}, json=base)
    body = _set(base if base is not None else {}, path, value)
    return client.request(
        method, route, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )


BASES: dict[tuple[str, str], Any] = {  # an otherwise valid body for declared fields that need one
    ("post", "/v1/collections"): {"collection_name": "y", "vector_configs": [{"name": "v", "dimension": 2}]},
    ("post", f"{R}/execute"): {"collection_identifiers": ["c"], "stages": SEARCH_LIST},
    ("post", R): {"retriever_name": "b", "collection_identifiers": ["c"], "stages": SEARCH_LIST},
    ("post", f"{R}/interactions"): {
        "feature_id": "{first}",
        "interaction_type": ["click"],
        "position": 0,
        "execution_id": "{execution_id}",
    },
}


def _check(response: Any, field: str, outside: bool) -> str | None:
    """What is wrong with the answer to a value outside (422 naming the field) or inside its range (no 5xx)."""
    if outside and (response.status_code != 422 or not _named(response, field)):
        return f"{response.status_code} {response.text[:240]}"
    if not outside and response.status_code >= 500:
        return f"{response.status_code} {response.text[:240]}"
    return None


def test_every_declared_number_is_bounded(seeded: tuple[TestClient, dict[str, str]]) -> None:
    client, ids = seeded
    failures = []
    sites = openapi_sites(client)
    assert len(sites) >= 39
    for method, route, where, path, schema in sites:
        name = f"{method.upper()} {route} {where}.{'.'.join(path)}"
        if "minimum" not in schema or "maximum" not in schema:
            failures.append(f"{name}: no documented range in the OpenAPI schema")
            continue
        field = [p for p in path if not p.isdigit()][-1]
        for value in BAD:
            outside = not _inside(
                value, schema["minimum"], schema["maximum"], schema.get("type") == "integer"
            )
            response = _send(
                client,
                method,
                _fill(route, ids),
                where,
                path,
                value,
                _template(BASES.get((method, route)), ids),
            )
            problem = _check(response, field, outside)
            if problem:
                failures.append(f"{name}={value!r}: {problem}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "method,route,base,path", LOOSE, ids=[f"{m} {r} {'.'.join(p)}" for m, r, _, p in LOOSE]
)
def test_every_number_inside_loose_bodies_is_bounded(
    seeded: tuple[TestClient, dict[str, str]], method: str, route: str, base: dict[str, Any], path: list[str]
) -> None:
    client, ids = seeded
    failures: list[str] = []
    field = [p for p in path if not p.isdigit()][-1]
    lo, hi, integer = RANGES[field]
    for value in BAD:
        body = _template(base, ids)
        if "document_id" in body:  # a new document each time
            body["document_id"] = f"z{len(failures)}{abs(hash(repr(value)))}"
        if "documents" in body:
            body["documents"][0]["document_id"] = f"z{abs(hash(repr(value)))}"
        if "retriever_name" in body:
            body["retriever_name"] = f"x{abs(hash(repr(value)))}"
        response = _send(client, method, _fill(route, ids), "body", path, value, body)
        problem = _check(response, field, not _inside(value, lo, hi, integer))
        if problem:
            failures.append(f"{value!r}: {problem}")
    assert not failures, "\n".join(failures)
