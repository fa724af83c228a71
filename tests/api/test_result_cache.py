"""The retriever result cache over HTTP (issue 10): a repeated execution is served from cache (``X-Cache``,
``cache_hit``, ``cached_at``, ``cached_from_execution_id``, credits 0, stage statistics marked as cache
hits, a new recorded execution), ETag and ``If-None-Match``, ``skip_cache``, what makes a request a
different one, invalidation by every kind of write, expiry, failed runs, namespaces, and bad
``cache_config`` / ``cache_behavior`` values refused with a 422 that changes nothing.

Corpus: 12 documents p01…p12 with a title, a category, a year and a 4-d vector ``emb`` at angle 0.1·i
from [1, 0, 0, 0], so a vector search for [1, 0, 0, 0] ranks them p01, p02, … p12 with distinct scores.
The collection has no text extractor: nothing here needs the embedding model.
"""

from __future__ import annotations

import copy
import math
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mixpeek.models.adhoc_execution_detail import AdhocExecutionDetail
from mixpeek.models.execution_detail import ExecutionDetail

from helpers import served, settings_for
from siftline.config import Settings
from siftline.features.embedder import TextEmbedder

R = "/v1/retrievers"
COLLECTION = "papers"
DOCS_PATH = f"/v1/collections/{COLLECTION}/documents"
EMB_URI = "mixpeek://vectors@v1/emb"
CATEGORIES = ["pets", "finance", "food"]
COLLECTION_BODY = {
    "collection_name": COLLECTION,
    "vector_configs": [{"name": "emb", "dimension": 4, "metric": "cosine"}],
    "payload_indexes": [{"field_name": "category", "type": "keyword"}],
}


def emb(angle: float) -> list[float]:
    return [math.cos(0.1 * angle), math.sin(0.1 * angle), 0.0, 0.0]


DOCS = [
    {"document_id": f"p{i + 1:02d}", "title": f"Paper {i + 1}", "category": CATEGORIES[i % 3], "year": 2010 + i,
     "vectors": {"emb": emb(i)}}
    for i in range(12)
]  # fmt: skip
ALL = [d["document_id"] for d in DOCS]  # the ranking for [1, 0, 0, 0]
PETS = [d["document_id"] for d in DOCS if d["category"] == "pets"]
SCHEMA = {"v": {"type": "array", "default": [1, 0, 0, 0]}}
CACHE = {"enabled": True, "ttl_seconds": 3600}
BASE = {"inputs": {"v": [1, 0, 0, 0]}, "limit": 5}
PETS_FILTER = {"AND": [{"field": "category", "operator": "eq", "value": "pets"}]}


def search(name: str = "search", vector: Any = "{{ INPUT.v }}", **params: Any) -> dict[str, Any]:
    return {
        "stage_name": name,
        "stage_type": "filter",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [{"feature_uri": EMB_URI, "query": {"input_mode": "vector", "value": vector}}],
                "final_top_k": 50,
                **params,
            },
        },
    }


def cap(limit: int = 50, **params: Any) -> dict[str, Any]:
    return {
        "stage_name": "cap",
        "stage_type": "reduce",
        "config": {"stage_id": "limit", "parameters": {"limit": limit, **params}},
    }


STAGES = [search(), cap()]
STAGE_NAMES = ["search", "cap"]


def retriever(name: str = "vec", **fields: Any) -> dict[str, Any]:
    body = {
        "retriever_name": name,
        "collection_identifiers": [COLLECTION],
        "input_schema": SCHEMA,
        "stages": copy.deepcopy(STAGES),
        "cache_config": dict(CACHE),
    }
    body.update(fields)
    return body


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()


def error(response: Any, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["success"] is False and payload["status"] == status
    assert payload["error"]["type"] == error_type
    return payload["error"]


def ids(payload: dict[str, Any]) -> list[str]:
    return [d["document_id"] for d in payload["documents"]]


def cache_of(response: Any) -> str | None:
    return response.headers.get("X-Cache")


def run_saved(
    client: TestClient, body: dict[str, Any] | None = None, name: str = "vec", **headers: str
) -> Any:
    return client.post(f"{R}/{name}/execute", json=BASE if body is None else body, headers=headers)


def run_adhoc(
    client: TestClient,
    body: dict[str, Any] | None = None,
    stages: list[dict[str, Any]] | None = None,
    cache_config: dict[str, Any] | None = CACHE,
    **headers: str,
) -> Any:
    request: dict[str, Any] = {
        "collection_identifiers": [COLLECTION],
        "input_schema": SCHEMA,
        "stages": STAGES if stages is None else stages,
        **(BASE if body is None else body),
    }
    if cache_config is not None:
        request["cache_config"] = cache_config
    response = client.post(f"{R}/execute", json=request, headers=headers)
    if response.status_code == 200:
        assert response.headers.get("X-Execution-Mode") == "adhoc"
    return response


Runner = Callable[..., Any]
MODES: dict[str, Runner] = {"saved": run_saved, "adhoc": run_adhoc}


def expect(response: Any, x_cache: str) -> dict[str, Any]:
    """The body of a 200 whose ``X-Cache`` is ``x_cache``, its ``cache_hit`` agreeing."""
    payload = ok(response)
    assert cache_of(response) == x_cache, (cache_of(response), payload.get("cache_hit"))
    assert payload["cache_hit"] is (x_cache == "HIT")
    if x_cache != "HIT":
        assert payload.get("cached_at") is None, "cached_at is only set on a hit"
    return payload


def same_result(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["documents"] == b["documents"]
    assert a["pagination"] == b["pagination"]


@pytest.fixture
def fresh(client: TestClient) -> TestClient:
    """A server of its own: the corpus and the cached retriever `vec` (search → limit 50)."""
    ok(client.post("/v1/collections", json=COLLECTION_BODY))
    ok(client.post(f"{DOCS_PATH}/batch", json={"documents": DOCS}))
    ok(client.post(R, json=retriever()))
    return client


def retriever_count(client: TestClient) -> int:
    return int(ok(client.post(f"{R}/list", json={"limit": 1000}))["total"])


def adhoc_record_count(client: TestClient) -> int:
    return int(ok(client.post(f"{R}/executions/list", json={"limit": 1000}))["pagination"]["total"])


# -- hits -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_repeated_execution_is_a_miss_then_a_hit_with_the_same_result(fresh: TestClient, mode: str) -> None:
    run = MODES[mode]
    first = expect(run(fresh), "MISS")
    assert first["status"] == "completed" and ids(first) == ALL[:5]

    second = expect(run(fresh), "HIT")
    assert second["status"] == "completed"
    same_result(second, first)
    third = expect(run(fresh), "HIT")
    same_result(third, first)


def test_a_saved_hit_says_where_it_came_from_costs_nothing_and_is_recorded(fresh: TestClient) -> None:
    before = time.time()
    first = expect(run_saved(fresh), "MISS")
    after_first = time.time()
    hit = expect(run_saved(fresh), "HIT")

    assert isinstance(hit["cached_at"], float)
    assert before - 1 <= hit["cached_at"] <= after_first + 1, (before, hit["cached_at"], after_first)
    assert hit["cached_from_execution_id"] == first["execution_id"]
    assert hit["execution_id"].startswith("exec_") and hit["execution_id"] != first["execution_id"]
    assert hit["retriever_id"] == first["retriever_id"] == ok(fresh.get(f"{R}/vec"))["retriever_id"]
    assert first["budget"]["credits_used"] > 0 and first["stage_statistics"]["credits_used"] > 0
    assert hit["stage_statistics"]["credits_used"] == 0
    assert hit["budget"]["credits_used"] == 0

    stages = hit["stage_statistics"]["stages"]
    assert list(stages) == list(first["stage_statistics"]["stages"]) == STAGE_NAMES
    for name, stage in stages.items():
        original = first["stage_statistics"]["stages"][name]
        assert stage["stage_cache_hit"] is True, name
        assert isinstance(stage["cached_at"], int | float), name
        assert abs(stage["cached_at"] - hit["cached_at"]) < 5, name
        assert (stage["input_count"], stage["output_count"]) == (
            original["input_count"],
            original["output_count"],
        ), name
    for name, stage in first["stage_statistics"]["stages"].items():
        assert stage["cached_at"] is None, name

    record = ok(fresh.get(f"{R}/vec/executions/{hit['execution_id']}"))
    assert record["status"] == "completed" and record["execution_id"] == hit["execution_id"]
    assert record["cached_at"] == hit["cached_at"]
    assert record["documents"] == hit["documents"] and record["pagination"] == hit["pagination"]
    assert record["stage_statistics"] == hit["stage_statistics"]
    assert record["budget"]["credits_used"] == 0
    assert ExecutionDetail.from_dict(record) is not None
    assert ok(fresh.get(f"{R}/vec/executions/{first['execution_id']}"))["cached_at"] is None

    listed = {r["execution_id"]: r for r in ok(fresh.post(f"{R}/vec/executions/list", json={}))["results"]}
    assert {first["execution_id"], hit["execution_id"]} <= set(listed), "a hit is recorded like any run"
    assert listed[hit["execution_id"]]["cache_hit_rate"] == 1.0
    assert listed[hit["execution_id"]]["credits_used"] == 0


def test_a_hits_record_names_the_execution_that_produced_it(fresh: TestClient) -> None:
    """Issue 10: the recorded hit carries "the id of the execution that produced the result"."""
    first = expect(run_saved(fresh), "MISS")
    hit = expect(run_saved(fresh), "HIT")

    record = ok(fresh.get(f"{R}/vec/executions/{hit['execution_id']}"))
    assert record.get("cached_from_execution_id") == first["execution_id"], sorted(record)


def test_an_adhoc_hit_is_recorded_with_a_cache_hit_rate_of_one(fresh: TestClient) -> None:
    first = expect(run_adhoc(fresh), "MISS")
    hit = expect(run_adhoc(fresh), "HIT")

    assert hit["cached_from_execution_id"] == first["execution_id"]
    assert hit["execution_id"] != first["execution_id"]
    assert isinstance(hit["cached_at"], float) and abs(time.time() - hit["cached_at"]) < 60
    assert hit["stage_statistics"]["credits_used"] == 0 and hit["budget"]["credits_used"] == 0
    assert all(s["stage_cache_hit"] is True for s in hit["stage_statistics"]["stages"].values())

    record = ok(fresh.get(f"{R}/executions/{hit['execution_id']}"))
    assert record["status"] == "completed" and record["execution_mode"] == "adhoc"
    assert record["cache_hit_rate"] == 1.0
    assert record["credits_used"] == 0
    assert record["total_returned"] == 5
    assert AdhocExecutionDetail.from_dict(record) is not None
    assert ok(fresh.get(f"{R}/executions/{first['execution_id']}"))["cache_hit_rate"] < 1.0


# -- ETag -----------------------------------------------------------------------------------------------


def test_the_etag_is_the_results_and_if_none_match_answers_304_with_no_body(fresh: TestClient) -> None:
    miss = run_saved(fresh)
    etag = miss.headers.get("ETag")
    assert etag is not None and re.fullmatch(r'"[0-9a-f]+"', etag), etag
    hit = run_saved(fresh)
    assert cache_of(hit) == "HIT" and hit.headers.get("ETag") == etag

    not_modified = run_saved(fresh, **{"If-None-Match": etag})
    assert not_modified.status_code == 304, not_modified.text
    assert not_modified.content == b""
    assert not_modified.headers.get("ETag") == etag

    other = run_saved(fresh, **{"If-None-Match": '"0123456789abcdef"'})
    assert other.status_code == 200 and ids(other.json()) == ALL[:5]
    assert other.headers.get("ETag") == etag
    smaller = run_saved(fresh, {**BASE, "limit": 3})
    assert smaller.status_code == 200 and smaller.headers.get("ETag") not in (None, etag)


def test_after_a_write_that_changes_the_result_if_none_match_gets_the_new_result(fresh: TestClient) -> None:
    etag = run_saved(fresh).headers["ETag"]
    assert run_saved(fresh, **{"If-None-Match": etag}).status_code == 304

    ok(fresh.delete(f"{DOCS_PATH}/p01"))
    changed = run_saved(fresh, **{"If-None-Match": etag})
    payload = expect(changed, "MISS")
    assert ids(payload) == ALL[1:6]
    assert changed.headers.get("ETag") not in (None, etag)


def test_the_etag_hashes_documents_and_pagination_not_the_run(fresh: TestClient) -> None:
    """A collection PATCH invalidates the cache, but the fresh result is the same: so is its ETag."""
    etag = run_saved(fresh).headers["ETag"]
    ok(fresh.patch(f"/v1/collections/{COLLECTION}", json={"description": "renamed nothing"}))

    assert run_saved(fresh, **{"If-None-Match": etag}).status_code == 304
    plain = ok(fresh.post(R, json=retriever("plain", cache_config=None)))
    first = run_saved(fresh, name=plain["retriever_name"])
    second = run_saved(fresh, name=plain["retriever_name"])
    assert cache_of(first) == cache_of(second) == "BYPASS"
    assert first.headers.get("ETag") == second.headers.get("ETag") == etag


# -- bypass and skip_cache ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", sorted(MODES))
def test_skip_cache_bypasses_runs_fresh_and_stores_the_fresh_result(fresh: TestClient, mode: str) -> None:
    run = MODES[mode]
    first = expect(run(fresh), "MISS")
    expect(run(fresh), "HIT")

    skipped = expect(run(fresh, {**BASE, "skip_cache": True}), "BYPASS")
    assert skipped["execution_id"] != first["execution_id"]
    assert skipped["budget"]["credits_used"] > 0
    assert all(s["stage_cache_hit"] is False for s in skipped["stage_statistics"]["stages"].values())
    same_result(skipped, first)

    refreshed = expect(run(fresh), "HIT")
    assert refreshed["cached_from_execution_id"] == skipped["execution_id"]
    same_result(refreshed, first)


def test_skip_cache_after_a_write_refreshes_the_entry_with_the_write(fresh: TestClient) -> None:
    expect(run_saved(fresh), "MISS")
    ok(fresh.patch(f"{DOCS_PATH}/p02", json={"title": "Patched"}))
    skipped = expect(run_saved(fresh, {**BASE, "skip_cache": True}), "BYPASS")
    assert skipped["documents"][1]["title"] == "Patched"

    hit = expect(run_saved(fresh), "HIT")
    assert hit["cached_from_execution_id"] == skipped["execution_id"]
    same_result(hit, skipped)


@pytest.mark.parametrize(
    "cache_config", [None, {"enabled": False}, {"enabled": False, "ttl_seconds": 3600}], ids=str
)
def test_without_caching_every_run_bypasses_and_costs_credits(
    fresh: TestClient, cache_config: dict[str, Any] | None
) -> None:
    ok(fresh.post(R, json=retriever("uncached", cache_config=cache_config)))
    for _ in range(2):
        saved = expect(run_saved(fresh, name="uncached"), "BYPASS")
        assert saved["budget"]["credits_used"] > 0 and ids(saved) == ALL[:5]
        adhoc = expect(run_adhoc(fresh, cache_config=cache_config), "BYPASS")
        assert adhoc["budget"]["credits_used"] > 0 and ids(adhoc) == ALL[:5]


def test_an_empty_cache_config_turns_caching_on(fresh: TestClient) -> None:
    ok(fresh.post(R, json=retriever("defaults", cache_config={})))
    expect(run_saved(fresh, name="defaults"), "MISS")
    expect(run_saved(fresh, name="defaults"), "HIT")
    expect(run_adhoc(fresh, cache_config={}), "MISS")
    expect(run_adhoc(fresh, cache_config={}), "HIT")


def test_caching_is_turned_on_and_off_by_patching_the_retriever(fresh: TestClient) -> None:
    ok(fresh.post(R, json=retriever("toggled", cache_config=None)))
    expect(run_saved(fresh, name="toggled"), "BYPASS")
    expect(run_saved(fresh, name="toggled"), "BYPASS")

    patched = ok(fresh.patch(f"{R}/toggled", json={"cache_config": {"ttl_seconds": 600}}))["retriever"]
    assert patched["cache_config"]["ttl_seconds"] == 600
    expect(run_saved(fresh, name="toggled"), "MISS")
    expect(run_saved(fresh, name="toggled"), "HIT")

    ok(fresh.patch(f"{R}/toggled", json={"cache_config": {"enabled": False}}))
    expect(run_saved(fresh, name="toggled"), "BYPASS")


# -- what makes a request a different one ---------------------------------------------------------------

Check = Callable[[dict[str, Any]], None]


def _first_ids(expected: list[str]) -> Check:
    def check(payload: dict[str, Any]) -> None:
        assert ids(payload) == expected

    return check


def _with_vectors(payload: dict[str, Any]) -> None:
    assert ids(payload) == ALL[:5]
    assert all(d["vectors"]["emb"] == pytest.approx(emb(i)) for i, d in enumerate(payload["documents"]))


def _method(method: str, expected: list[str]) -> Check:
    def check(payload: dict[str, Any]) -> None:
        assert ids(payload) == expected and payload["pagination"]["method"] == method

    return check


VARIANTS = [
    pytest.param({"inputs": {"v": emb(11)}, "limit": 5}, _first_ids(ALL[::-1][:5]), id="other-inputs"),
    pytest.param({**BASE, "filters": PETS_FILTER}, _first_ids(PETS), id="filters"),
    pytest.param({**BASE, "limit": 6}, _first_ids(ALL[:6]), id="limit"),
    pytest.param({"inputs": BASE["inputs"], "pagination": {"method": "offset", "page_size": 5, "page_number": 2}},
                 _first_ids(ALL[5:10]), id="offset-page-2"),
    pytest.param({"inputs": BASE["inputs"], "pagination": {"method": "cursor", "limit": 5}},
                 _method("cursor", ALL[:5]), id="cursor"),
    pytest.param({"inputs": BASE["inputs"], "pagination": {"method": "keyset", "limit": 5}},
                 _method("keyset", ALL[:5]), id="keyset"),
    pytest.param({**BASE, "return_vectors": True}, _with_vectors, id="return-vectors"),
]  # fmt: skip


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("variant, check", VARIANTS)
def test_a_request_differing_in_inputs_filters_pagination_or_vectors_is_a_miss(
    fresh: TestClient, mode: str, variant: dict[str, Any], check: Check
) -> None:
    run = MODES[mode]
    base = expect(run(fresh), "MISS")
    expect(run(fresh), "HIT")

    missed = expect(run(fresh, variant), "MISS")
    check(missed)
    hit = expect(run(fresh, variant), "HIT")
    check(hit)
    same_result(hit, missed)
    same_result(expect(run(fresh), "HIT"), base)  # the first entry is still there
    assert all("vectors" not in d for d in base["documents"])


@pytest.mark.parametrize("method", ["cursor", "keyset"])
def test_the_next_page_of_a_cursor_walk_is_its_own_entry(fresh: TestClient, method: str) -> None:
    first_page = {"inputs": BASE["inputs"], "pagination": {"method": method, "limit": 5}}
    page1 = expect(run_saved(fresh, first_page), "MISS")
    assert expect(run_saved(fresh, first_page), "HIT")["pagination"] == page1["pagination"]
    following = {**first_page["pagination"]}
    following["cursor" if method == "cursor" else "after"] = page1["pagination"]["next_cursor"]
    second_page = {"inputs": BASE["inputs"], "pagination": following}

    page2 = expect(run_saved(fresh, second_page), "MISS")
    assert ids(page2) == ALL[5:10]
    hit = expect(run_saved(fresh, second_page), "HIT")
    same_result(hit, page2)


def test_an_adhoc_request_with_other_stages_is_a_miss(fresh: TestClient) -> None:
    expect(run_adhoc(fresh), "MISS")
    expect(run_adhoc(fresh), "HIT")

    two = expect(run_adhoc(fresh, stages=[search(), cap(2)]), "MISS")
    assert ids(two) == ALL[:2]
    skipping = expect(run_adhoc(fresh, stages=[search(), cap(50, offset=1)]), "MISS")
    assert ids(skipping) == ALL[1:6]
    expect(run_adhoc(fresh, stages=[search(), cap(2)]), "HIT")


def test_another_namespace_is_never_served_this_namespaces_entry(fresh: TestClient) -> None:
    expect(run_adhoc(fresh), "MISS")
    expect(run_adhoc(fresh), "HIT")

    other = {"X-Namespace": "other"}
    ok(fresh.post("/v1/namespaces", json={"namespace_name": "other"}))
    ok(fresh.post("/v1/collections", json=COLLECTION_BODY, headers=other))
    mine = [{**DOCS[3], "title": "Theirs"}, DOCS[7]]
    ok(fresh.post(f"{DOCS_PATH}/batch", json={"documents": mine}, headers=other))

    theirs = expect(run_adhoc(fresh, **other), "MISS")
    assert ids(theirs) == ["p04", "p08"] and theirs["documents"][0]["title"] == "Theirs"
    expect(run_adhoc(fresh, **other), "HIT")
    assert ids(expect(run_adhoc(fresh), "HIT")) == ALL[:5]


# -- writes invalidate ----------------------------------------------------------------------------------

Write = Callable[[TestClient], None]


def _insert(client: TestClient) -> None:
    body = {
        "document_id": "new",
        "title": "New",
        "category": "pets",
        "year": 2030,
        "vectors": {"emb": emb(0.5)},
    }
    ok(client.post(DOCS_PATH, json=body))


def _batch(client: TestClient) -> None:
    docs = [{"document_id": "b0", "title": "B", "category": "food", "vectors": {"emb": emb(0.7)}},
            {"document_id": "b1", "title": "B", "category": "food", "vectors": {"emb": emb(2.5)}}]  # fmt: skip
    ok(client.post(f"{DOCS_PATH}/batch", json={"documents": docs}))


def _put(client: TestClient) -> None:
    replacement = {"title": "Replaced", "category": "food", "vectors": {"emb": emb(1.5)}}
    ok(client.put(f"{DOCS_PATH}/p12", json=replacement))


def _patch_field(client: TestClient) -> None:
    ok(client.patch(f"{DOCS_PATH}/p02", json={"title": "Patched", "year": None}))


def _patch_vector(client: TestClient) -> None:
    ok(client.patch(f"{DOCS_PATH}/p02", json={"vectors": {"emb": emb(30)}}))


def _delete(client: TestClient) -> None:
    ok(client.delete(f"{DOCS_PATH}/p01"))


def _describe(client: TestClient) -> None:
    ok(client.patch(f"/v1/collections/{COLLECTION}", json={"description": "new words"}))


def _collection_metadata(client: TestClient) -> None:
    ok(client.patch(f"/v1/collections/{COLLECTION}", json={"metadata": {"owner": "someone else"}}))


def _check_put(payload: dict[str, Any]) -> None:
    assert ids(payload) == ["p01", "p02", "p12", "p03", "p04"]
    replaced = payload["documents"][2]
    assert replaced["title"] == "Replaced" and replaced["category"] == "food" and "year" not in replaced


def _check_patched(payload: dict[str, Any]) -> None:
    assert ids(payload) == ALL[:5]
    patched = payload["documents"][1]
    assert patched["title"] == "Patched" and "year" not in patched


WRITES = [
    pytest.param(_insert, _first_ids(["p01", "new", "p02", "p03", "p04"]), id="insert"),
    pytest.param(_batch, _first_ids(["p01", "b0", "p02", "p03", "b1"]), id="batch-insert"),
    pytest.param(_put, _check_put, id="put"),
    pytest.param(_patch_field, _check_patched, id="patch-fields"),
    pytest.param(_patch_vector, _first_ids(["p01", "p03", "p04", "p05", "p06"]), id="patch-vector"),
    pytest.param(_delete, _first_ids(ALL[1:6]), id="delete"),
    pytest.param(_describe, _first_ids(ALL[:5]), id="collection-description"),
    pytest.param(_collection_metadata, _first_ids(ALL[:5]), id="collection-metadata"),
]  # fmt: skip


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("write, check", WRITES)
def test_a_write_to_the_collection_makes_the_next_run_a_miss_that_shows_it(
    fresh: TestClient, mode: str, write: Write, check: Check
) -> None:
    run = MODES[mode]
    before = expect(run(fresh), "MISS")
    expect(run(fresh), "HIT")

    write(fresh)
    after = expect(run(fresh), "MISS")
    check(after)
    fresh_run = expect(run(fresh, {**BASE, "skip_cache": True}), "BYPASS")
    same_result(after, fresh_run)
    hit = expect(run(fresh), "HIT")
    same_result(hit, after)
    assert hit["cached_from_execution_id"] in (after["execution_id"], fresh_run["execution_id"])
    assert hit["cached_from_execution_id"] != before["execution_id"]


def test_a_write_to_any_target_collection_invalidates(fresh: TestClient) -> None:
    notes = {**COLLECTION_BODY, "collection_name": "notes"}
    ok(fresh.post("/v1/collections", json=notes))
    ok(fresh.post("/v1/collections/notes/documents", json={"document_id": "n1", "vectors": {"emb": emb(20)}}))
    ok(fresh.post(R, json=retriever("both", collection_identifiers=[COLLECTION, "notes"])))
    body = {"inputs": BASE["inputs"], "limit": 50}

    first = expect(run_saved(fresh, body, name="both"), "MISS")
    assert ids(first) == [*ALL, "n1"]
    expect(run_saved(fresh, body, name="both"), "HIT")

    ok(
        fresh.post(
            "/v1/collections/notes/documents", json={"document_id": "n0", "vectors": {"emb": emb(0.5)}}
        )
    )
    after = expect(run_saved(fresh, body, name="both"), "MISS")
    assert ids(after) == ["p01", "n0", *ALL[1:], "n1"]
    expect(run_saved(fresh, body, name="both"), "HIT")
    ok(fresh.patch("/v1/collections/notes", json={"description": "x"}))
    expect(run_saved(fresh, body, name="both"), "MISS")


def test_a_write_to_a_joined_collection_invalidates(fresh: TestClient) -> None:
    """document_enrich reads another collection: a write there changes the result, so it is a MISS."""
    ok(fresh.post("/v1/collections", json={**COLLECTION_BODY, "collection_name": "owners"}))
    owners = [{"document_id": c, "owner": f"{c} desk"} for c in CATEGORIES]
    ok(fresh.post("/v1/collections/owners/documents/batch", json={"documents": owners}))
    enrich = {
        "stage_name": "owner",
        "stage_type": "enrich",
        "config": {
            "stage_id": "document_enrich",
            "parameters": {
                "target_collection_id": "owners",
                "source_field": "category",
                "fields_to_merge": ["owner"],
            },
        },
    }
    ok(fresh.post(R, json=retriever("joined", stages=[search(), enrich])))

    first = expect(run_saved(fresh, name="joined"), "MISS")
    assert [d["owner"] for d in first["documents"]] == [f"{CATEGORIES[i % 3]} desk" for i in range(5)]
    expect(run_saved(fresh, name="joined"), "HIT")

    ok(fresh.patch("/v1/collections/owners/documents/pets", json={"owner": "new pets desk"}))
    after = expect(run_saved(fresh, name="joined"), "MISS")
    assert after["documents"][0]["owner"] == "new pets desk"
    same_result(after, expect(run_saved(fresh, {**BASE, "skip_cache": True}, name="joined"), "BYPASS"))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_deleted_collection_is_never_answered_from_cache(fresh: TestClient, mode: str) -> None:
    run = MODES[mode]
    expect(run(fresh), "MISS")
    expect(run(fresh), "HIT")

    ok(fresh.delete(f"/v1/collections/{COLLECTION}"))
    response = run(fresh)
    assert cache_of(response) != "HIT"
    if mode == "saved":  # a failed run
        failed = ok(response)
        assert failed["status"] == "failed" and failed["documents"] == [] and not failed.get("cache_hit")
        assert "Collection not found" in failed["error"]
    else:  # the name no longer resolves
        error(response, 422, "ValidationError")

    ok(fresh.post("/v1/collections", json=COLLECTION_BODY))  # the same name again, empty
    if mode == "adhoc":
        empty = expect(run(fresh), "MISS")
        assert empty["documents"] == [] and empty["pagination"]["total"] == 0


def test_a_retriever_deleted_and_created_again_starts_with_an_empty_cache(fresh: TestClient) -> None:
    expect(run_saved(fresh), "MISS")
    expect(run_saved(fresh), "HIT")
    ok(fresh.delete(f"{R}/vec"))
    ok(fresh.post(R, json=retriever(stages=[search(), cap(2)])))
    again = expect(run_saved(fresh), "MISS")
    assert ids(again) == ALL[:2]


# -- expiry and failures --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_ttl_of_zero_never_hits(fresh: TestClient, mode: str) -> None:
    config = {"enabled": True, "ttl_seconds": 0}
    if mode == "saved":
        ok(fresh.post(R, json=retriever("zero", cache_config=config)))
        runs = [run_saved(fresh, name="zero") for _ in range(3)]
    else:
        runs = [run_adhoc(fresh, cache_config=config) for _ in range(3)]
    for response in runs:
        assert ids(expect(response, "MISS")) == ALL[:5]


@pytest.mark.parametrize("mode", sorted(MODES))
def test_an_expired_entry_is_a_miss(fresh: TestClient, mode: str) -> None:
    config = {"enabled": True, "ttl_seconds": 1}
    if mode == "saved":
        ok(fresh.post(R, json=retriever("short", cache_config=config)))

        def run() -> Any:
            return run_saved(fresh, name="short")
    else:

        def run() -> Any:
            return run_adhoc(fresh, cache_config=config)

    first = expect(run(), "MISS")
    expect(run(), "HIT")
    time.sleep(1.6)
    expired = expect(run(), "MISS")
    same_result(expired, first)
    expect(run(), "HIT")


@pytest.mark.parametrize(
    "body, message",
    [
        ({**BASE, "budget_limits": {"max_credits": 0.5}}, "Budget exceeded"),
        ({"inputs": {"v": [1, 0, 0]}, "limit": 5}, "3 dimensions"),
    ],
    ids=["over-budget", "stage-fails"],
)
@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_failed_run_is_never_served_from_cache(
    fresh: TestClient, mode: str, body: dict[str, Any], message: str
) -> None:
    run = MODES[mode]
    for _ in range(3):
        response = run(fresh, body)
        failed = ok(response)
        assert failed["status"] == "failed" and message in failed["error"], failed.get("error")
        assert cache_of(response) != "HIT" and failed["cache_hit"] is False
        assert failed.get("cached_at") is None
    expect(run(fresh), "MISS")  # the failures left nothing behind for the valid request either


# -- bad input: a 422 naming the field, nothing stored changes -------------------------------------------

BAD_CACHE_CONFIGS = [
    pytest.param({"enabled": True, "ttl_seconds": -1}, ["body", "cache_config", "ttl_seconds"], id="negative-ttl"),
    pytest.param({"ttl_seconds": "soon"}, ["body", "cache_config", "ttl_seconds"], id="ttl-not-an-integer"),
    pytest.param({"cache_stage_names": ["search", "nope"]}, ["body", "cache_config", "cache_stage_names"],
                 id="unknown-stage-name"),
]  # fmt: skip


def assert_names(err: dict[str, Any], loc: list[Any]) -> None:
    """The first error's loc is ``loc`` (or ``loc`` and then list indexes only, for a bad list item)."""
    found = err["details"]["errors"][0]["loc"]
    assert found[: len(loc)] == loc, found
    assert all(isinstance(part, int) for part in found[len(loc) :]), found


@pytest.mark.parametrize("cache_config, loc", BAD_CACHE_CONFIGS)
def test_a_bad_cache_config_on_create_is_a_422_and_creates_nothing(
    fresh: TestClient, cache_config: dict[str, Any], loc: list[Any]
) -> None:
    count = retriever_count(fresh)
    err = error(fresh.post(R, json=retriever("bad", cache_config=cache_config)), 422, "ValidationError")
    assert_names(err, loc)
    if "cache_stage_names" in cache_config:
        assert "nope" in str(err)
    assert retriever_count(fresh) == count
    error(fresh.get(f"{R}/bad"), 404, "NotFoundError")


@pytest.mark.parametrize("cache_config, loc", BAD_CACHE_CONFIGS)
def test_a_bad_cache_config_on_clone_is_a_422_and_creates_nothing(
    fresh: TestClient, cache_config: dict[str, Any], loc: list[Any]
) -> None:
    count = retriever_count(fresh)
    response = fresh.post(f"{R}/vec/clone", json={"retriever_name": "bad", "cache_config": cache_config})
    assert_names(error(response, 422, "ValidationError"), loc)
    assert retriever_count(fresh) == count
    error(fresh.get(f"{R}/bad"), 404, "NotFoundError")


@pytest.mark.parametrize("cache_config, loc", BAD_CACHE_CONFIGS)
def test_a_bad_cache_config_on_patch_is_a_422_and_changes_nothing(
    fresh: TestClient, cache_config: dict[str, Any], loc: list[Any]
) -> None:
    before = ok(fresh.get(f"{R}/vec"))
    response = fresh.patch(f"{R}/vec", json={"cache_config": cache_config, "description": "changed"})
    assert_names(error(response, 422, "ValidationError"), loc)
    assert ok(fresh.get(f"{R}/vec")) == before


@pytest.mark.parametrize("cache_config, loc", BAD_CACHE_CONFIGS)
def test_a_bad_cache_config_on_an_adhoc_execution_is_a_422_and_records_nothing(
    fresh: TestClient, cache_config: dict[str, Any], loc: list[Any]
) -> None:
    count = adhoc_record_count(fresh)
    assert_names(error(run_adhoc(fresh, cache_config=cache_config), 422, "ValidationError"), loc)
    assert adhoc_record_count(fresh) == count


def test_cache_stage_names_naming_real_stages_is_accepted(fresh: TestClient) -> None:
    config = {"enabled": True, "ttl_seconds": 60, "cache_stage_names": ["search", "cap"]}
    created = ok(fresh.post(R, json=retriever("named", cache_config=config)))
    assert created["cache_config"]["cache_stage_names"] == ["search", "cap"]
    assert ok(fresh.get(f"{R}/named"))["cache_config"]["cache_stage_names"] == ["search", "cap"]
    clone = ok(fresh.post(f"{R}/named/clone", json={"retriever_name": "named-2"}), 201)["retriever"]
    assert clone["cache_config"]["cache_stage_names"] == ["search", "cap"]
    patched = ok(fresh.patch(f"{R}/vec", json={"cache_config": {"cache_stage_names": ["cap"]}}))
    assert patched["retriever"]["cache_config"]["cache_stage_names"] == ["cap"]


BAD_STAGE_PARAMETERS = [
    pytest.param({"cache_behavior": "sometimes"}, "cache_behavior", id="unknown-cache-behavior"),
    pytest.param({"cache_behavior": 3}, "cache_behavior", id="cache-behavior-not-a-string"),
    pytest.param({"cache_ttl_seconds": -5}, "cache_ttl_seconds", id="negative-stage-ttl"),
]


def stages_with(index: int, params: dict[str, Any]) -> list[dict[str, Any]]:
    stages = copy.deepcopy(STAGES)
    stages[index]["config"]["parameters"].update(params)
    return stages


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("params, key", BAD_STAGE_PARAMETERS)
def test_a_bad_stage_cache_parameter_is_a_422_naming_it_and_stores_nothing(
    fresh: TestClient, params: dict[str, Any], key: str, index: int
) -> None:
    loc = ["body", "stages", index, "config", "parameters", key]
    stages = stages_with(index, params)
    count = retriever_count(fresh)
    records = adhoc_record_count(fresh)

    assert_names(error(fresh.post(R, json=retriever("bad", stages=stages)), 422, "ValidationError"), loc)
    cloned = fresh.post(f"{R}/vec/clone", json={"retriever_name": "bad", "stages": stages})
    assert_names(error(cloned, 422, "ValidationError"), loc)
    assert_names(error(run_adhoc(fresh, stages=stages), 422, "ValidationError"), loc)

    assert retriever_count(fresh) == count and adhoc_record_count(fresh) == records
    error(fresh.get(f"{R}/bad"), 404, "NotFoundError")


@pytest.mark.parametrize(
    "params",
    [
        {"cache_behavior": "auto"},
        {"cache_behavior": "disabled", "cache_ttl_seconds": None},
        {"cache_behavior": "aggressive", "cache_ttl_seconds": 0},
        {"cache_ttl_seconds": 60},
    ],
    ids=str,
)
def test_valid_stage_cache_parameters_are_accepted(fresh: TestClient, params: dict[str, Any]) -> None:
    stages = [search(**params), cap(50, **params)]
    ok(fresh.post(R, json=retriever("valid", stages=stages)))
    result = expect(run_saved(fresh, name="valid"), "MISS")
    assert ids(result) == ALL[:5]


def test_an_aggressive_stage_cache_never_serves_a_stale_stage_output(fresh: TestClient) -> None:
    """No retriever-level cache: the search stage caches its own output, and a write still shows at once."""
    stages = [search(cache_behavior="aggressive", cache_ttl_seconds=600), cap(50)]
    ok(fresh.post(R, json=retriever("eager", stages=stages, cache_config=None)))

    first = expect(run_saved(fresh, name="eager"), "BYPASS")
    second = expect(run_saved(fresh, name="eager"), "BYPASS")
    same_result(second, first)
    assert first["stage_statistics"]["stages"]["search"]["stage_cache_hit"] is False
    assert second["stage_statistics"]["stages"]["search"]["stage_cache_hit"] is True

    ok(fresh.patch(f"{DOCS_PATH}/p03", json={"title": "Changed", "vectors": {"emb": emb(40)}}))
    third = expect(run_saved(fresh, name="eager"), "BYPASS")
    assert third["stage_statistics"]["stages"]["search"]["stage_cache_hit"] is False
    assert ids(third) == ["p01", "p02", "p04", "p05", "p06"]
    other = expect(run_saved(fresh, {"inputs": {"v": emb(40)}, "limit": 1}, name="eager"), "BYPASS")
    assert other["documents"][0]["document_id"] == "p03" and other["documents"][0]["title"] == "Changed"


# -- what is stored --------------------------------------------------------------------------------------


def stored_cache_values(settings: Settings) -> list[bytes]:
    with sqlite3.connect(settings.data_dir / "siftline.db") as db:
        return [bytes(row[0]) for row in db.execute("SELECT value FROM cache_entries")]


@pytest.mark.sqlite_only  # reads cache_entries in siftline.db
def test_excluded_fields_are_not_stored_yet_a_hit_returns_them(fresh: TestClient, settings: Settings) -> None:
    ok(fresh.patch(f"{DOCS_PATH}/p01", json={"email": "alice@example.com", "title": "Title Marker"}))
    config = {"enabled": True, "ttl_seconds": 600, "exclude_fields": ["email"]}
    ok(fresh.post(R, json=retriever("private", cache_config=config)))

    first = expect(run_saved(fresh, name="private"), "MISS")
    assert first["documents"][0]["email"] == "alice@example.com"
    values = stored_cache_values(settings)
    assert any(b"Title Marker" in v for v in values), "the entry is stored in cache_entries"
    assert not any(b"alice@example.com" in v for v in values), "an excluded field was written to the cache"

    hit = expect(run_saved(fresh, name="private"), "HIT")
    same_result(hit, first)


@pytest.mark.sqlite_only  # reads cache_entries in siftline.db
def test_the_cache_is_bounded_and_evicts_the_least_recently_used_entry(
    tmp_path: Path, embedder: TextEmbedder
) -> None:
    with served(settings_for(tmp_path / "data", cache_max_entries=2), embedder) as (client, _):
        ok(client.post("/v1/collections", json=COLLECTION_BODY))
        ok(client.post(f"{DOCS_PATH}/batch", json={"documents": DOCS}))
        ok(client.post(R, json=retriever()))
        requests = [{**BASE, "limit": n} for n in (3, 4, 5)]
        for request in requests:
            expect(run_saved(client, request), "MISS")
        expect(run_saved(client, requests[2]), "HIT")
        expect(run_saved(client, requests[0]), "MISS")  # the oldest went when the third was stored
        assert len(stored_cache_values(settings_for(tmp_path / "data"))) <= 2
