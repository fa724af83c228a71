"""Execution records over HTTP: the stored ExecutionDetail / AdhocExecutionDetail of every run (saved or ad
hoc, completed or failed), lists, status and profile, warnings and interpretation, retention, recovery.

Corpus: 8 documents p01…p08 with a category, a year and a 4-d vector ``emb`` at angle 0.1·i from
[1, 0, 0, 0], so a vector search for [1, 0, 0, 0] ranks them p01, p02, … p08.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mixpeek.models.adhoc_execution_detail import AdhocExecutionDetail
from mixpeek.models.execution_detail import ExecutionDetail
from mixpeek.models.list_adhoc_executions_response import ListAdhocExecutionsResponse
from mixpeek.models.list_executions_response import ListExecutionsResponse

from helpers import TEXT_COLLECTION, served, settings_for
from siftline.credits import stage_credits
from siftline.features.embedder import TextEmbedder
from siftline.models import ExecutionRecord, utcnow
from siftline.service import namespaces, records
from siftline.service.container import Services

R = "/v1/retrievers"
COLLECTION = TEXT_COLLECTION["collection_name"]
EMB_URI = "mixpeek://vectors@v1/emb"
CREDITS_EXCEEDED = "Budget exceeded: Maximum credits limit reached"
ROWS = [
    ("Cats purr", "a cat purrs when content", "pets", 2015),
    ("Dog walks", "walking a dog every day", "pets", 2018),
    ("Stock picks", "markets and stocks for beginners", "finance", 2020),
    ("Pasta night", "a quick pasta dinner", "food", 2012),
    ("Kitten care", "how to feed a kitten and a cat", "pets", 2021),
    ("Bond basics", "bonds and interest rates explained", "finance", 2016),
    ("Soup season", "warm soup recipes", "food", 2019),
    ("Cat toys", "toys a cat will love", "pets", 2014),
]
DOCS = [
    {"document_id": f"p{i + 1:02d}", "title": title, "text": text, "category": category, "year": year,
     "vectors": {"emb": [math.cos(0.1 * i), math.sin(0.1 * i), 0.0, 0.0]}}
    for i, (title, text, category, year) in enumerate(ROWS)
]  # fmt: skip
SCHEMA = {
    "v": {"type": "array", "default": [1, 0, 0, 0]},
    "q": {"type": "text", "default": "cat"},
    "cat": {"type": "string"},
}


def search(name: str = "search", vector: Any = "{{ INPUT.v }}") -> dict[str, Any]:
    return {
        "stage_name": name,
        "stage_type": "filter",
        "config": {
            "stage_id": "feature_search",
            "parameters": {
                "searches": [{"feature_uri": EMB_URI, "query": {"input_mode": "vector", "value": vector}}],
                "final_top_k": 50,
            },
        },
    }


BY_YEAR = {
    "stage_name": "by_year",
    "stage_type": "sort",
    "config": {"stage_id": "sort_attribute", "parameters": {"field": "year", "direction": "desc"}},
}
CAP = {
    "stage_name": "cap",
    "stage_type": "reduce",
    "config": {"stage_id": "limit", "parameters": {"limit": 3}},
}
STAGES = [search(), BY_YEAR, CAP]
STAGE_NAMES = ["search", "by_year", "cap"]
SAVED = {
    "retriever_name": "vec",
    "collection_identifiers": [COLLECTION],
    "input_schema": SCHEMA,
    "stages": STAGES,
}
FIRST_STAGE = stage_credits("feature_search", 1, len(DOCS))
TIGHT_BUDGET = {"max_credits": FIRST_STAGE + 0.005}  # the sort after the search costs at least 0.05
NO_MATCH = {"AND": [{"field": "category", "operator": "eq", "value": "no-such-category"}]}

# The ExecutionDetail contract of the seed pages: every field and the JSON types it may take.
DETAIL_TYPES: dict[str, tuple[type, ...]] = {
    "retriever_id": (str,),
    "execution_id": (str,),
    "status": (str,),
    "documents": (list,),
    "pagination": (dict,),
    "stage_statistics": (dict,),
    "budget": (dict,),
    "cached_at": (float, int, type(None)),
    "warnings": (list,),
    "optimization_applied": (bool,),
    "optimization_summary": (dict, type(None)),
    "learned_fusion_context": (dict, type(None)),
    "created_at": (str,),
    "completed_at": (str,),
    "current_stage": (str, type(None)),
    "stages_completed": (int,),
    "total_stages": (int,),
    "interpretation": (dict,),
    "limits": (list,),
    "degraded": (list,),
    "documents_retained": (bool,),
    "total_returned": (int,),
}
ADHOC_TYPES: dict[str, tuple[type, ...]] = {
    "execution_id": (str,),
    "execution_mode": (str,),
    "status": (str,),
    "timestamp": (str, float, int),
    "duration_ms": (float, int),
    "credits_used": (float, int),
    "total_processed": (int,),
    "total_returned": (int,),
    "stages_completed": (int,),
    "total_stages": (int,),
    "cache_hit_rate": (float, int),
    "query_summary": (str, type(None)),
    "collection_ids": (list,),
    "inputs": (str,),
    "inputs_hash": (str,),
}
STAGE_STAT_KEYS = {
    "input_count", "output_count", "duration_ms", "efficiency", "stage_cache_hit", "cached_at", "error", "metadata",
}  # fmt: skip


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def not_found(response: Any) -> None:
    assert response.status_code == 404, response.text
    payload = response.json()
    assert payload["success"] is False and payload["error"]["type"] == "NotFoundError"


def execute(client: TestClient, retriever: str = "vec", **body: Any) -> dict[str, Any]:
    return ok(client.post(f"{R}/{retriever}/execute", json=body))


def adhoc(client: TestClient, stages: list[dict[str, Any]] | None = None, **body: Any) -> dict[str, Any]:
    request = {
        "collection_identifiers": [COLLECTION],
        "input_schema": SCHEMA,
        "stages": stages or STAGES,
        **body,
    }
    response = client.post(f"{R}/execute", json=request)
    assert response.headers.get("X-Execution-Mode") == "adhoc"
    return ok(response)


def detail(client: TestClient, execution_id: str, retriever: str = "vec", **params: Any) -> dict[str, Any]:
    return ok(client.get(f"{R}/{retriever}/executions/{execution_id}", params=params))


def adhoc_detail(client: TestClient, execution_id: str) -> dict[str, Any]:
    return ok(client.get(f"{R}/executions/{execution_id}"))


def listed(client: TestClient, retriever: str | None = None, **body: Any) -> dict[str, Any]:
    path = f"{R}/executions/list" if retriever is None else f"{R}/{retriever}/executions/list"
    return ok(client.post(path, json=body))


def ids(payload: dict[str, Any]) -> list[str]:
    return [r["execution_id"] for r in payload["results"]]


def load(client: TestClient) -> TestClient:
    ok(client.post("/v1/collections", json=TEXT_COLLECTION))
    ok(client.post(f"/v1/collections/{COLLECTION}/documents/batch", json={"documents": DOCS}))
    ok(client.post(R, json=SAVED))
    return client


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, embedder: TextEmbedder) -> Iterator[TestClient]:
    """The corpus and the saved retriever `vec`, one server for the module: tests that only execute/read."""
    with served(settings_for(tmp_path_factory.mktemp("records") / "data"), embedder) as (client, _):
        yield load(client)


@pytest.fixture
def fresh(client: TestClient) -> TestClient:
    """The corpus on a server of its own: tests that count every record or change the collection."""
    return load(client)


def new_retriever(client: TestClient, name: str, **fields: Any) -> str:
    return str(ok(client.post(R, json={**SAVED, "retriever_name": name, **fields}))["retriever_id"])


# -- the detail of a completed execution ----------------------------------------------------------------


def test_the_detail_has_every_field_of_the_seed_contract_with_its_type(corpus: TestClient) -> None:
    result = execute(corpus, inputs={"v": [1, 0, 0, 0]})
    found = detail(corpus, result["execution_id"])

    for name, types in DETAIL_TYPES.items():
        assert name in found, f"missing {name}"
        assert isinstance(found[name], types), f"{name} is {found[name]!r}"
    assert "error" not in found and "results" not in found
    assert found["status"] == "completed" and found["execution_id"] == result["execution_id"]
    assert found["retriever_id"] == ok(corpus.get(f"{R}/vec"))["retriever_id"]
    assert found["cached_at"] is None and found["optimization_applied"] is False
    assert found["current_stage"] is None
    assert found["stages_completed"] == found["total_stages"] == 3
    assert found["documents_retained"] is True and found["total_returned"] == 3
    assert datetime.fromisoformat(found["completed_at"]) >= datetime.fromisoformat(found["created_at"])
    stats = found["stage_statistics"]
    assert list(stats["stages"]) == STAGE_NAMES
    assert all(set(s) >= STAGE_STAT_KEYS for s in stats["stages"].values())
    assert stats["total_time_ms"] > 0 and stats["credits_used"] > 0
    assert {"total", "returned"} <= set(found["pagination"])
    assert {"credits_used", "credits_remaining", "time_used_ms", "max_credits", "max_time_ms"} <= set(
        found["budget"]
    )
    parsed = ExecutionDetail.from_dict(found)
    assert parsed is not None and parsed.status == "completed" and parsed.results is None


def test_the_stored_detail_repeats_what_execute_returned(corpus: TestClient) -> None:
    result = execute(corpus, inputs={"v": [0, 1, 0, 0]}, limit=2)
    found = detail(corpus, result["execution_id"])

    assert [d["document_id"] for d in found["documents"]] == [d["document_id"] for d in result["documents"]]
    for key in ("documents", "pagination", "stage_statistics", "budget", "warnings", "interpretation",
                "created_at", "completed_at", "total_stages", "stages_completed", "total_returned"):  # fmt: skip
        assert found[key] == result[key], key
    assert found["pagination"]["returned"] == 2 and found["total_returned"] == 2


def test_a_retriever_named_in_the_path_finds_its_executions_like_its_id(corpus: TestClient) -> None:
    result = execute(corpus)
    retriever_id = result["retriever_id"]

    assert detail(corpus, result["execution_id"], retriever_id) == detail(
        corpus, result["execution_id"], "vec"
    )


def test_legacy_results_are_absent_unless_asked_for_and_then_equal_the_documents(corpus: TestClient) -> None:
    execution_id = execute(corpus)["execution_id"]

    assert "results" not in detail(corpus, execution_id)
    assert "results" not in detail(corpus, execution_id, include_legacy_results="false")
    with_results = detail(corpus, execution_id, include_legacy_results="true")
    assert with_results["results"] == with_results["documents"] and len(with_results["documents"]) == 3
    assert ExecutionDetail.from_dict(with_results).results == with_results["documents"]  # type: ignore[union-attr]


def test_legacy_results_are_an_empty_array_when_nothing_matched(corpus: TestClient) -> None:
    result = execute(corpus, filters=NO_MATCH)
    assert result["status"] == "completed" and result["documents"] == []

    found = detail(corpus, result["execution_id"], include_legacy_results="true")
    assert found["documents"] == [] and found["results"] == []
    assert found["documents_retained"] is True and found["total_returned"] == 0


def test_an_adhoc_execution_is_recorded_as_an_adhoc_detail(corpus: TestClient) -> None:
    inputs = {"v": [1, 0, 0, 0], "q": "cat purrs"}
    result = adhoc(corpus, inputs=inputs)
    found = adhoc_detail(corpus, result["execution_id"])

    for name, types in ADHOC_TYPES.items():
        assert name in found, f"missing {name}"
        assert isinstance(found[name], types), f"{name} is {found[name]!r}"
    assert found["execution_mode"] == "adhoc" and found["status"] == "completed"
    assert found["stages_completed"] == found["total_stages"] == 3
    assert found["total_returned"] == 3 and found["total_processed"] == len(DOCS) + len(DOCS)
    assert found["credits_used"] == pytest.approx(result["stage_statistics"]["credits_used"])
    assert found["duration_ms"] == pytest.approx(result["stage_statistics"]["total_time_ms"])
    assert 0 <= found["cache_hit_rate"] <= 1
    assert found["collection_ids"] == [ok(corpus.get(f"/v1/collections/{COLLECTION}"))["collection_id"]]
    assert found["query_summary"] == "cat purrs"
    assert "error" not in found
    assert AdhocExecutionDetail.from_dict(found) is not None


def test_an_adhoc_executions_timestamp_is_its_iso_8601_utc_start_time(corpus: TestClient) -> None:
    found = adhoc_detail(corpus, adhoc(corpus)["execution_id"])
    summary = next(
        r for r in listed(corpus, limit=1000)["results"] if r["execution_id"] == found["execution_id"]
    )

    assert isinstance(found["timestamp"], str) and found["timestamp"].endswith("Z")
    assert found["timestamp"] == summary["created_at"]
    assert summary["timestamp"] == found["timestamp"]


# -- failed executions ----------------------------------------------------------------------------------


def test_a_run_whose_collection_was_deleted_is_recorded_as_failed(fresh: TestClient) -> None:
    ok(fresh.delete(f"/v1/collections/{COLLECTION}"))
    result = execute(fresh)
    assert result["status"] == "failed"

    found = detail(fresh, result["execution_id"])
    assert found["status"] == "failed"
    assert found["error"].startswith("Retriever execution failed: Collection not found")
    assert found["documents"] == [] and found["total_returned"] == 0
    assert found["stage_statistics"]["stages"] == {}
    assert found["stages_completed"] == 0 and found["total_stages"] == 3
    assert found["completed_at"] is not None and found["current_stage"] is None
    assert ExecutionDetail.from_dict(found) is not None
    status = ok(fresh.get(f"{R}/vec/executions/{result['execution_id']}/status"))
    assert status["status"] == "failed" and status["error"] == found["error"]


def test_a_run_stopped_by_its_budget_is_recorded_with_the_stages_that_ran(corpus: TestClient) -> None:
    result = execute(corpus, budget_limits=TIGHT_BUDGET)
    assert result["status"] == "failed"

    found = detail(corpus, result["execution_id"])
    assert found["status"] == "failed" and found["error"] == CREDITS_EXCEEDED
    assert list(found["stage_statistics"]["stages"]) == ["search"]
    assert found["stage_statistics"]["stages"]["search"]["output_count"] == len(DOCS)
    assert found["stage_statistics"]["stages"]["search"]["error"] is None
    assert found["stages_completed"] == 1 and found["total_stages"] == 3
    assert found["budget"]["credits_used"] == pytest.approx(FIRST_STAGE)
    assert found["budget"]["max_credits"] == pytest.approx(TIGHT_BUDGET["max_credits"])
    assert found["documents"] == []

    hurried = detail(corpus, execute(corpus, budget_limits={"max_time_ms": 0})["execution_id"])
    assert hurried["status"] == "failed" and hurried["error"] == "Budget exceeded: Maximum time limit reached"
    assert hurried["stage_statistics"]["stages"] == {} and hurried["stages_completed"] == 0


def test_a_run_failing_before_any_stage_still_reports_its_budget_limits(fresh: TestClient) -> None:
    new_retriever(fresh, "limited", budget_limits={"max_credits": 5, "max_time_ms": 60_000})
    ok(fresh.delete(f"/v1/collections/{COLLECTION}"))
    result = execute(fresh, "limited")
    assert result["status"] == "failed"

    budget = detail(fresh, result["execution_id"], "limited")["budget"]
    assert budget["credits_used"] == 0
    assert budget["max_credits"] == 5 and budget["credits_remaining"] == 5
    assert budget["max_time_ms"] == 60_000


def test_a_stage_failing_at_run_time_is_recorded_naming_the_stage(corpus: TestClient) -> None:
    schema = {**SCHEMA, "w": {"type": "array", "required": True}}
    stages = [search("first"), search("bad", vector="{{ INPUT.w }}"), CAP]
    new_retriever(corpus, "dims", input_schema=schema, stages=stages)
    result = execute(corpus, "dims", inputs={"w": [1, 0, 0]})  # emb has 4 dimensions

    found = detail(corpus, result["execution_id"], "dims")
    assert found["status"] == "failed"
    assert found["error"].startswith("Stage 'bad' (feature_search, index 1) failed:")
    assert "3 dimensions" in found["error"]
    stages_run = found["stage_statistics"]["stages"]
    assert list(stages_run) == ["first", "bad"]
    assert stages_run["first"]["error"] is None and stages_run["first"]["output_count"] == len(DOCS)
    assert stages_run["bad"]["error"]
    assert found["stages_completed"] == 1 and found["total_stages"] == 3 and found["documents"] == []

    failed_adhoc = adhoc(corpus, stages, input_schema=schema, inputs={"w": [1, 0, 0]})
    found_adhoc = adhoc_detail(corpus, failed_adhoc["execution_id"])
    assert found_adhoc["status"] == "failed" and found_adhoc["error"] == failed_adhoc["error"]
    assert found_adhoc["stages_completed"] == 1 and found_adhoc["total_stages"] == 3


def test_a_clamped_top_k_is_recorded_in_limits(corpus: TestClient) -> None:
    big = search()
    big["config"]["parameters"]["searches"][0]["top_k"] = 6000
    result = adhoc(corpus, [big, CAP])
    assert result["status"] == "completed"

    new_retriever(corpus, "clamped", stages=[big, CAP])
    found = detail(corpus, execute(corpus, "clamped")["execution_id"], "clamped")
    expected = [
        {"name": "searches[0].top_k", "requested": 6000, "applied": 5000, "ceiling": 5000, "stage": "search"}
    ]
    assert found["limits"] == expected
    assert ExecutionDetail.from_dict(found).limits[0].applied == 5000  # type: ignore[union-attr,index]


def test_a_skipped_failing_stage_is_recorded_in_degraded_and_the_run_completes(corpus: TestClient) -> None:
    schema = {**SCHEMA, "w": {"type": "array", "required": True}}
    skipped = {**search("optional", vector="{{ INPUT.w }}"), "on_error": "skip"}
    new_retriever(corpus, "lenient", input_schema=schema, stages=[search(), skipped, CAP])
    result = execute(corpus, "lenient", inputs={"w": [1, 0, 0]})

    found = detail(corpus, result["execution_id"], "lenient")
    assert found["status"] == "completed" and "error" not in found and len(found["documents"]) == 3
    assert len(found["degraded"]) == 1
    entry = found["degraded"][0]
    assert (entry["resource"], entry["stage"]) == ("stage", "optional") and "3 dimensions" in entry["reason"]
    assert entry["next_step"]
    assert found["stage_statistics"]["stages"]["optional"]["error"]
    assert any("optional" in w for w in found["warnings"])
    assert ExecutionDetail.from_dict(found).degraded[0].stage == "optional"  # type: ignore[union-attr,index]


# -- lists ----------------------------------------------------------------------------------------------


def test_a_retrievers_executions_are_listed_newest_first_and_filtered_by_status(corpus: TestClient) -> None:
    new_retriever(corpus, "listed")
    first = execute(corpus, "listed")["execution_id"]
    failed = execute(corpus, "listed", budget_limits=TIGHT_BUDGET)["execution_id"]
    last = execute(corpus, "listed")["execution_id"]
    execute(corpus)  # another retriever's execution is not listed

    everything = listed(corpus, "listed")
    assert ids(everything) == [last, failed, first]
    assert everything["pagination"]["total"] == 3 and everything["pagination"]["has_next"] is False
    assert [r["status"] for r in everything["results"]] == ["completed", "failed", "completed"]
    assert ListExecutionsResponse.from_dict(everything) is not None

    assert ids(listed(corpus, "listed", status="failed")) == [failed]
    assert ids(listed(corpus, "listed", status="completed")) == [last, first]
    assert listed(corpus, "listed", status="failed")["pagination"]["total"] == 1
    assert ids(listed(corpus, "listed", status="processing")) == []
    assert ids(listed(corpus, "listed", status=["failed", "completed"])) == [last, failed, first]
    assert corpus.post(f"{R}/listed/executions/list", json={"status": 5}).status_code == 422


def test_a_retrievers_executions_are_filtered_by_a_time_range(corpus: TestClient) -> None:
    new_retriever(corpus, "timed")
    runs = [execute(corpus, "timed")["execution_id"] for _ in range(3)]
    created = [detail(corpus, e, "timed")["created_at"] for e in runs]

    assert ids(listed(corpus, "timed", start_time=created[1])) == [runs[2], runs[1]]
    assert ids(listed(corpus, "timed", end_time=created[1])) == [runs[1], runs[0]]
    assert ids(listed(corpus, "timed", start_time=created[1], end_time=created[1])) == [runs[1]]
    assert ids(listed(corpus, "timed", start_time=0)) == runs[::-1]  # Unix seconds
    assert ids(listed(corpus, "timed", end_time="2000-01-01T00:00:00Z")) == []
    bad = corpus.post(f"{R}/timed/executions/list", json={"start_time": "yesterday"})
    assert bad.status_code == 422, bad.text


@pytest.fixture
def new_york_time() -> Iterator[None]:
    """The server process runs in a time zone other than UTC."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


def test_a_time_range_without_an_offset_is_read_as_utc(corpus: TestClient, new_york_time: None) -> None:
    new_retriever(corpus, "naive")
    run = execute(corpus, "naive")["execution_id"]
    created = detail(corpus, run, "naive")["created_at"]
    assert created.endswith("Z")

    assert ids(listed(corpus, "naive", start_time=created[:-1], end_time=created[:-1])) == [run]


def test_a_deleted_retrievers_executions_stay_readable_by_its_id(fresh: TestClient) -> None:
    retriever_id = new_retriever(fresh, "short-lived")
    result = execute(fresh, "short-lived")
    ok(fresh.delete(f"{R}/short-lived"))

    found = detail(fresh, result["execution_id"], retriever_id)
    assert found["status"] == "completed" and found["documents"] == result["documents"]
    assert (
        ok(fresh.get(f"{R}/{retriever_id}/executions/{result['execution_id']}/status"))["status"]
        == "completed"
    )


def test_a_retrievers_executions_are_paged_with_limit_and_offset(corpus: TestClient) -> None:
    new_retriever(corpus, "paged")
    runs = [execute(corpus, "paged")["execution_id"] for _ in range(5)][::-1]

    first_page = listed(corpus, "paged", limit=2, offset=0)
    assert ids(first_page) == runs[:2]
    assert first_page["pagination"] == {"total": 5, "limit": 2, "offset": 0, "has_next": True}
    assert ids(listed(corpus, "paged", limit=2, offset=2)) == runs[2:4]
    last_page = listed(corpus, "paged", limit=2, offset=4)
    assert ids(last_page) == runs[4:] and last_page["pagination"]["has_next"] is False
    by_query = ok(corpus.post(f"{R}/paged/executions/list", params={"limit": 3, "offset": 1}))
    assert ids(by_query) == runs[1:4] and by_query["pagination"]["total"] == 5
    assert ids(listed(corpus, "paged", limit=2, offset=10)) == []


@pytest.mark.parametrize("limit", [0, True])
def test_a_list_body_with_a_limit_that_is_not_1_to_1000_is_a_422(corpus: TestClient, limit: Any) -> None:
    assert corpus.post(f"{R}/vec/executions/list", params={"limit": 0}).status_code == 422
    response = corpus.post(f"{R}/vec/executions/list", json={"limit": limit})
    assert response.status_code == 422, response.text


def test_adhoc_executions_are_listed_newest_first_filtered_and_paged(fresh: TestClient) -> None:
    first = adhoc(fresh, inputs={"q": "first"})["execution_id"]
    failed = adhoc(fresh, budget_limits=TIGHT_BUDGET)["execution_id"]
    last = adhoc(fresh, inputs={"q": "last"})["execution_id"]
    execute(fresh)  # a saved execution is not an ad-hoc one

    everything = listed(fresh)
    assert ids(everything) == [last, failed, first] and everything["total"] == 3
    assert all(r["execution_mode"] == "adhoc" for r in everything["results"])
    assert everything["results"][0]["query_summary"] == "last"
    assert ListAdhocExecutionsResponse.from_dict(everything) is not None

    assert ids(listed(fresh, status="failed")) == [failed] and listed(fresh, status="failed")["total"] == 1
    created = everything["results"][1]["created_at"]
    assert ids(listed(fresh, start_time=created)) == [last, failed]
    assert ids(listed(fresh, start_time=adhoc_detail(fresh, failed)["timestamp"])) == [last, failed]
    counted = listed(fresh, count_only=True)
    assert counted["results"] == [] and counted["total"] == 3
    page = listed(fresh, limit=1, offset=1)
    assert ids(page) == [failed] and page["total"] == 3 and page["pagination"]["has_next"] is True


# -- what is found where --------------------------------------------------------------------------------


def test_an_adhoc_execution_is_not_found_on_a_retrievers_routes(corpus: TestClient) -> None:
    adhoc_id = adhoc(corpus)["execution_id"]

    for suffix in ("", "/status", "/profile"):
        not_found(corpus.get(f"{R}/vec/executions/{adhoc_id}{suffix}"))
    assert adhoc_id not in ids(listed(corpus, "vec", limit=1000))


def test_a_saved_execution_is_not_found_on_the_adhoc_routes_or_another_retrievers(corpus: TestClient) -> None:
    saved_id = execute(corpus)["execution_id"]
    new_retriever(corpus, "sibling")

    not_found(corpus.get(f"{R}/executions/{saved_id}"))
    not_found(corpus.get(f"{R}/executions/{saved_id}/status"))
    not_found(corpus.get(f"{R}/sibling/executions/{saved_id}"))
    not_found(corpus.get(f"{R}/vec/executions/exec_doesnotexist"))
    not_found(corpus.get(f"{R}/executions/exec_doesnotexist"))
    assert saved_id not in ids(listed(corpus, limit=1000))


def test_another_namespaces_executions_are_not_found(corpus: TestClient) -> None:
    saved = execute(corpus)
    adhoc_id = adhoc(corpus)["execution_id"]
    name = f"other-{time.monotonic_ns()}"
    ok(corpus.post("/v1/namespaces", json={"namespace_name": name}))
    other = {"X-Namespace": name}

    for retriever in ("vec", saved["retriever_id"]):
        for suffix in ("", "/status", "/profile"):
            not_found(
                corpus.get(f"{R}/{retriever}/executions/{saved['execution_id']}{suffix}", headers=other)
            )
    not_found(corpus.get(f"{R}/executions/{adhoc_id}", headers=other))
    not_found(corpus.get(f"{R}/executions/{adhoc_id}/status", headers=other))
    assert ok(corpus.post(f"{R}/executions/list", json={}, headers=other))["total"] == 0
    not_found(corpus.post(f"{R}/vec/executions/list", json={}, headers=other))


# -- warnings and interpretation ------------------------------------------------------------------------


def test_a_filter_on_an_unindexed_field_warns_how_to_index_it_until_it_is_indexed(fresh: TestClient) -> None:
    year_filter = {"AND": [{"field": "year", "operator": "gte", "value": 2015}]}
    result = execute(fresh, filters=year_filter)
    assert result["status"] == "completed"

    warnings = detail(fresh, result["execution_id"])["warnings"]
    assert warnings == result["warnings"] and len(warnings) == 1
    assert "'year'" in warnings[0] and COLLECTION in warnings[0]
    assert f"PATCH /v1/collections/{COLLECTION}" in warnings[0] and "payload_indexes" in warnings[0]
    indexed = execute(fresh, filters={"AND": [{"field": "category", "operator": "eq", "value": "pets"}]})
    assert detail(fresh, indexed["execution_id"])["warnings"] == []

    indexes = [{"field_name": "category", "type": "keyword"}, {"field_name": "year", "type": "integer"}]
    ok(fresh.patch(f"/v1/collections/{COLLECTION}", json={"payload_indexes": indexes}))
    after = execute(fresh, filters=year_filter)
    assert after["warnings"] == [] and detail(fresh, after["execution_id"])["warnings"] == []
    assert after["documents"] == result["documents"]


def test_the_interpretation_lists_provided_inferred_and_ignored_inputs_and_relaxed_filters(
    corpus: TestClient,
) -> None:
    dynamic = {
        "AND": [{"field": "category", "operator": "eq", "value": {"type": "dynamic", "field": "inputs.cat"}}]
    }
    result = execute(corpus, inputs={"v": [1, 0, 0, 0], "colour": "red"}, filters=dynamic)

    interpretation = detail(corpus, result["execution_id"])["interpretation"]
    assert interpretation == result["interpretation"]
    assert interpretation["provided_input_keys"] == ["colour", "v"]
    assert interpretation["inferred_input_keys"] == ["q"]
    assert interpretation["ignored_input_keys"] == ["colour"]
    relaxed = interpretation["relaxed_filters"]
    assert len(relaxed) == 1 and relaxed[0]["field"] == "category" and "cat" in relaxed[0]["input"]
    assert any("category" in w and "relaxed" in w for w in result["warnings"])
    assert len(result["documents"]) == 3  # the relaxed filter kept every category

    bound = execute(corpus, inputs={"cat": "finance"}, filters=dynamic)
    bound_interpretation = detail(corpus, bound["execution_id"])["interpretation"]
    assert bound_interpretation["relaxed_filters"] == [] and bound_interpretation["ignored_input_keys"] == []
    assert bound_interpretation["provided_input_keys"] == ["cat"]
    assert bound_interpretation["inferred_input_keys"] == ["q", "v"]
    assert {d["category"] for d in bound["documents"]} == {"finance"}


# -- status and profile ---------------------------------------------------------------------------------


def test_the_status_of_a_finished_execution_says_every_stage_completed(corpus: TestClient) -> None:
    saved = execute(corpus)
    status = ok(corpus.get(f"{R}/vec/executions/{saved['execution_id']}/status"))
    assert status["execution_id"] == saved["execution_id"] and status["status"] == "completed"
    assert status["current_stage"] is None and status["stages_completed"] == status["total_stages"] == 3
    assert status["completed_at"] is not None and "error" not in status

    adhoc_id = adhoc(corpus)["execution_id"]
    adhoc_status = ok(corpus.get(f"{R}/executions/{adhoc_id}/status"))
    assert adhoc_status["status"] == "completed" and adhoc_status["stages_completed"] == 3


def test_the_profile_gives_each_stages_timing_and_counts_and_the_slowest(corpus: TestClient) -> None:
    result = execute(corpus)
    stats = result["stage_statistics"]["stages"]
    profile = ok(corpus.get(f"{R}/vec/executions/{result['execution_id']}/profile"))

    assert profile["execution_id"] == result["execution_id"] and profile["status"] == "completed"
    assert [s["stage_name"] for s in profile["stages"]] == STAGE_NAMES
    for stage in profile["stages"]:
        source = stats[stage["stage_name"]]
        assert (stage["input_count"], stage["output_count"]) == (
            source["input_count"],
            source["output_count"],
        )
        assert stage["duration_ms"] == source["duration_ms"]
        assert stage["credits"] == pytest.approx(source["metadata"]["credits"])
    assert [(s["input_count"], s["output_count"]) for s in profile["stages"]] == [(0, 8), (8, 8), (8, 3)]
    slowest = max(profile["stages"], key=lambda s: s["duration_ms"])
    assert profile["bottleneck_stage"] == slowest["stage_name"]
    assert sum(s["share_of_time"] for s in profile["stages"]) == pytest.approx(1, abs=1e-3)
    assert profile["total_time_ms"] == result["stage_statistics"]["total_time_ms"]


def test_a_running_execution_reports_its_current_stage_and_progress(
    client: TestClient, services: Services
) -> None:
    load(client)
    ns = namespaces.ensure_namespace(services.storage, "default")
    retriever = services.storage.get_retriever(ns.namespace_id, "vec")
    assert retriever is not None
    seen: dict[str, dict[str, Any]] = {}

    def in_flight() -> tuple[str, dict[str, Any]]:
        running = listed(client, "vec", status="running")
        assert len(running["results"]) == 1 and running["results"][0]["status"] == "processing"
        execution_id = running["results"][0]["execution_id"]
        return execution_id, ok(client.get(f"{R}/vec/executions/{execution_id}/status"))

    def on_event(kind: str, data: dict[str, Any]) -> None:
        if kind == "stage_start" and data["stage_name"] == "search":
            time.sleep(0.08)  # a slow stage: from here on the run saves its progress at every event
        elif kind == "stage_complete" and data["stage_name"] == "search":
            execution_id, seen["after_search"] = in_flight()
            seen["detail"] = detail(client, execution_id)
        elif kind == "stage_start" and data["stage_name"] == "cap":
            seen["at_cap"] = in_flight()[1]

    result = services.executor.execute_saved(ns, retriever, {}, on_event)

    after_search, at_cap, running = seen["after_search"], seen["at_cap"], seen["detail"]
    assert after_search["status"] == "processing" and after_search["completed_at"] is None
    assert (
        after_search["current_stage"],
        after_search["stages_completed"],
        after_search["total_stages"],
    ) == (
        "search",
        1,
        3,
    )
    assert (at_cap["current_stage"], at_cap["stages_completed"]) == ("cap", 2)
    assert running["status"] == "processing" and running["documents"] == []
    assert list(running["stage_statistics"]["stages"]) == ["search"]
    assert ExecutionDetail.from_dict(running) is not None
    final = ok(client.get(f"{R}/vec/executions/{result['execution_id']}/status"))
    assert (
        final["status"] == "completed" and final["current_stage"] is None and final["stages_completed"] == 3
    )


# -- recording settings, retention and recovery ---------------------------------------------------------


def test_only_the_newest_records_keep_their_documents_when_retention_keeps_one(
    tmp_path: Path, embedder: TextEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records, "RETENTION_EVERY_S", 0.0)  # retention runs at most once a minute: due now
    with served(settings_for(tmp_path / "data", retain_documents_last=1), embedder) as (client, _):
        load(client)
        older = execute(client)
        newer = execute(client)

        old = detail(client, older["execution_id"], include_legacy_results="true")
        assert old["documents_retained"] is False and old["documents"] == [] and old["results"] == []
        assert old["total_returned"] == 3 and old["status"] == "completed"
        assert old["stage_statistics"] == older["stage_statistics"] and old["budget"] == older["budget"]
        new = detail(client, newer["execution_id"])
        assert new["documents_retained"] is True and new["documents"] == newer["documents"]


def test_retention_applies_to_records_kept_from_before_a_restart(
    tmp_path: Path, embedder: TextEmbedder
) -> None:
    data_dir = tmp_path / "data"
    with served(settings_for(data_dir), embedder) as (client, _):
        load(client)
        older, newer = execute(client), execute(client)
    with served(settings_for(data_dir, retain_documents_last=1), embedder) as (client, _):
        old = detail(client, older["execution_id"])
        assert old["documents_retained"] is False and old["documents"] == [] and old["total_returned"] == 3
        assert old["stage_statistics"] == older["stage_statistics"]
        assert detail(client, newer["execution_id"])["documents"] == newer["documents"]


def test_with_no_documents_retained_a_record_keeps_its_count_and_statistics(
    tmp_path: Path, embedder: TextEmbedder
) -> None:
    with served(settings_for(tmp_path / "data", retain_documents_days=0), embedder) as (client, _):
        load(client)
        result = execute(client)
        assert len(result["documents"]) == 3

        found = detail(client, result["execution_id"])
        assert found["documents_retained"] is False and found["documents"] == []
        assert found["total_returned"] == 3 and found["stage_statistics"] == result["stage_statistics"]


def test_with_recording_off_executions_work_and_leave_no_record(
    tmp_path: Path, embedder: TextEmbedder
) -> None:
    with served(settings_for(tmp_path / "data", record_executions=False), embedder) as (client, _):
        load(client)
        saved = execute(client)
        adhoc_run = adhoc(client)
        assert saved["status"] == adhoc_run["status"] == "completed" and len(saved["documents"]) == 3
        assert saved["execution_id"].startswith("exec_")

        not_found(client.get(f"{R}/vec/executions/{saved['execution_id']}"))
        not_found(client.get(f"{R}/executions/{adhoc_run['execution_id']}"))
        assert listed(client, "vec")["pagination"]["total"] == 0 and listed(client)["total"] == 0


def test_recovery_fails_records_left_processing_saying_the_server_stopped(
    client: TestClient, services: Services
) -> None:
    load(client)
    ns = namespaces.ensure_namespace(services.storage, "default")
    retriever_id = ok(client.get(f"{R}/vec"))["retriever_id"]
    search_stats = {"input_count": 0, "output_count": 8, "duration_ms": 2.5, "efficiency": 0.0, "error": None}
    started = utcnow()
    for execution_id, rid in (("exec_leftsaved", retriever_id), ("exec_leftadhoc", None)):
        record = ExecutionRecord(
            execution_id, ns.namespace_id, rid, "saved" if rid else "adhoc", "processing", started
        )
        record.detail = {
            "execution_id": execution_id,
            "retriever_id": rid or "",
            "status": "processing",
            "current_stage": "by_year",
            "stages_completed": 1,
            "total_stages": 3,
            "stage_statistics": {
                "stages": {"search": search_stats},
                "total_time_ms": 2.5,
                "credits_used": 1.0,
            },
            "timestamp": started.timestamp(),
            "inputs": "{}",
            "inputs_hash": "bf21a9e8fbc5a3846fb05b4fa0859e0917b2202f",
        }
        services.storage.save_execution(record)
    assert detail(client, "exec_leftsaved")["status"] == "processing"

    assert services.executor.recorder.recover() == 2

    found = detail(client, "exec_leftsaved")
    assert found["status"] == "failed" and "server stopped" in found["error"]
    assert found["stage_statistics"]["stages"] == {"search": search_stats}
    assert found["completed_at"] is not None and found["documents"] == []
    assert ExecutionDetail.from_dict(found) is not None
    adhoc_found = adhoc_detail(client, "exec_leftadhoc")
    assert adhoc_found["status"] == "failed" and "server stopped" in adhoc_found["error"]
    assert ids(listed(client, "vec", status="processing")) == []
    assert services.executor.recorder.recover() == 0
