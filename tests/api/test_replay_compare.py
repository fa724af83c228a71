"""Replay and compare: a replay on unchanged data returns the same documents; after writes, compare
reports exactly the documents that moved, appeared and disappeared; other namespaces see nothing."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from helpers import bearer
from siftline.service.compare import rbo

R = "/v1/retrievers"
C = "/v1/collections/c/documents"
URI = "mixpeek://vectors@v1/v"


def angle(theta: float) -> list[float]:
    return [math.cos(theta), math.sin(theta)]


def search_stage(**extra: Any) -> dict[str, Any]:
    params = {"searches": [{"feature_uri": URI, "query": {"input_mode": "vector", "value": [1, 0]}, "top_k": 50}],
              "final_top_k": 20, **extra}  # fmt: skip
    return {"stage_name": "search", "config": {"stage_id": "feature_search", "parameters": params}}


@pytest.fixture
def ten(client: TestClient) -> TestClient:
    """d0…d9 at angles 0, 0.1, …, 0.9 from the query [1, 0]: ranked d0 first, d9 last."""
    body = {"collection_name": "c", "vector_configs": [{"name": "v", "dimension": 2, "metric": "cosine"}]}
    assert client.post("/v1/collections", json=body).status_code == 200
    docs = [{"document_id": f"d{i}", "n": i, "vectors": {"v": angle(0.1 * i)}} for i in range(10)]
    assert client.post(f"{C}/batch", json={"documents": docs}).status_code == 200
    return client


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def saved(client: TestClient, stages: list[dict[str, Any]] | None = None) -> str:
    body = {"retriever_name": "r", "collection_identifiers": ["c"], "stages": stages or [search_stage()]}
    return str(ok(client.post(R, json=body))["retriever_id"])


def ids(result: dict[str, Any]) -> list[str]:
    return [d["document_id"] for d in result["documents"]]


def test_replaying_on_unchanged_data_gives_identical_documents(ten: TestClient) -> None:
    rid = saved(ten)
    first = ok(ten.post(f"{R}/{rid}/execute", json={"limit": 7}))
    again = ok(ten.post(f"{R}/executions/{first['execution_id']}/replay"))
    assert again["execution_id"] != first["execution_id"] and again["replay_of"] == first["execution_id"]
    assert again["documents"] == first["documents"] and len(ids(first)) == 7
    detail = ok(ten.get(f"{R}/{rid}/executions/{again['execution_id']}"))
    assert detail["replay_of"] == first["execution_id"] and detail["documents"] == first["documents"]
    diff = ok(
        ten.get(f"{R}/executions/compare", params={"a": first["execution_id"], "b": again["execution_id"]})
    )
    assert diff["identical"] and diff["moved"] == diff["new"] == diff["dropped"] == []
    assert diff["overlap_at_k"] == diff["jaccard"] == diff["rbo"] == 1.0
    assert [s["stage_name"] for s in diff["stages"]] == ["search"]
    assert diff["stages"][0]["output_delta"] == 0


def test_an_adhoc_execution_replays_as_adhoc(ten: TestClient) -> None:
    body = {"collection_identifiers": ["c"], "stages": [search_stage(final_top_k=5)]}
    first = ok(ten.post(f"{R}/execute", json=body))
    response = ten.post(f"{R}/executions/{first['execution_id']}/replay")
    again = ok(response)
    assert response.headers["X-Execution-Mode"] == "adhoc"
    assert ids(again) == ids(first) == ["d0", "d1", "d2", "d3", "d4"]
    assert ok(ten.get(f"{R}/executions/{again['execution_id']}"))["execution_mode"] == "adhoc"


def test_a_replay_runs_as_recorded_even_after_the_retriever_changed(ten: TestClient) -> None:
    rid = saved(ten)  # stages are fixed at creation; a PATCH may still change the budget
    first = ok(ten.post(f"{R}/{rid}/execute", json={}))
    changed = ten.patch(f"{R}/{rid}", json={"budget_limits": {"max_credits": 0.0001}})
    assert changed.status_code == 200, changed.text
    assert ok(ten.post(f"{R}/{rid}/execute", json={}))["status"] == "failed"  # the new budget stops it
    again = ok(ten.post(f"{R}/executions/{first['execution_id']}/replay"))
    assert again["status"] == "completed" and ids(again) == ids(first)


def test_after_writes_compare_reports_exactly_the_documents_that_moved(ten: TestClient) -> None:
    rid = saved(ten)
    before = ok(ten.post(f"{R}/{rid}/execute", json={}))
    assert ids(before) == [f"d{i}" for i in range(10)]
    ok(ten.patch(f"{C}/d7", json={"vectors": {"v": angle(0.05)}}))  # d7: 8th → 2nd
    assert ten.delete(f"{C}/d9").status_code == 200  # d9: dropped
    ok(ten.post(C, json={"document_id": "dx", "n": 99, "vectors": {"v": angle(0.15)}}))  # new, 4th
    after = ok(ten.post(f"{R}/executions/{before['execution_id']}/replay"))
    assert ids(after) == ["d0", "d7", "d1", "dx", "d2", "d3", "d4", "d5", "d6", "d8"]

    params = {"a": before["execution_id"], "b": after["execution_id"], "k": 5}
    diff = ok(ten.get(f"{R}/executions/compare", params=params))
    assert sorted(diff["moved"]) == ["d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8"]
    assert diff["new"] == ["dx"] and diff["dropped"] == ["d9"] and diff["unchanged"] == ["d0"]
    rows = {d["document_id"]: d for d in diff["documents"]}
    assert (rows["d7"]["rank_a"], rows["d7"]["rank_b"], rows["d7"]["move"]) == (8, 2, 6)
    assert (rows["d1"]["rank_a"], rows["d1"]["rank_b"], rows["d1"]["move"]) == (2, 3, -1)
    assert rows["d7"]["score_delta"] == pytest.approx(math.cos(0.05) - math.cos(0.7), abs=1e-6)
    assert rows["d0"]["score_delta"] == 0.0 and rows["dx"]["rank_a"] is None and rows["d9"]["rank_b"] is None
    assert diff["overlap_at_k"] == 3 / 5  # top 5: d0-d4 against d0, d7, d1, dx, d2
    assert diff["jaccard"] == 9 / 11
    assert 0 < diff["rbo"] < 1 and diff["identical"] is False
    assert (
        diff["a"]["execution_id"] == before["execution_id"]
        and diff["b"]["replay_of"] == before["execution_id"]
    )


def test_a_learned_fusion_replay_uses_the_recorded_draw(client: TestClient) -> None:
    vectors = [{"name": n, "dimension": 2, "metric": "cosine"} for n in ("a", "b")]
    assert (
        client.post("/v1/collections", json={"collection_name": "c", "vector_configs": vectors}).status_code
        == 200
    )
    docs = [{"document_id": f"d{i}", "vectors": {"a": [1, i], "b": [1, 9 - i]}} for i in range(10)]
    assert client.post(f"{C}/batch", json={"documents": docs}).status_code == 200
    searches = [{"feature_uri": f"mixpeek://vectors@v1/{n}", "query": {"input_mode": "vector", "value": [1, 0]}}
                for n in ("a", "b")]  # fmt: skip
    stage = search_stage(searches=searches, fusion="learned", final_top_k=6)
    rid = saved(client, [stage])
    first = ok(client.post(f"{R}/{rid}/execute", json={}))
    for _ in range(30):  # clicks move the posteriors: a fresh draw would differ
        run = ok(client.post(f"{R}/{rid}/execute", json={}))
        body = {"feature_id": run["documents"][-1]["document_id"], "interaction_type": ["click"],
                "position": len(run["documents"]) - 1, "execution_id": run["execution_id"]}  # fmt: skip
        assert client.post(f"{R}/interactions", json=body).status_code == 200
    again = ok(client.post(f"{R}/executions/{first['execution_id']}/replay"))
    drawn = first["learned_fusion_context"]["sampled_weights"]
    assert again["learned_fusion_context"]["sampled_weights"] == drawn
    assert again["learned_fusion_context"]["replayed_draw"] is True
    assert again["documents"] == first["documents"]


def test_rank_biased_overlap_on_known_cases() -> None:
    a, b, c = ("c", "1"), ("c", "2"), ("c", "3")
    assert rbo([a, b, c], [a, b, c]) == pytest.approx(1.0)
    assert rbo([a], [b]) == 0.0
    assert rbo([a, b], [b, a]) == pytest.approx(0.9)  # (1-p)/p·(0 + 2/2·p²) + (2/2)·p², p = 0.9
    assert rbo([a, b, c], [a]) == pytest.approx(1.0)  # a prefix agrees as far as it goes


def test_compare_and_replay_never_reach_another_namespace(
    ten: TestClient, make_key: Callable[..., str]
) -> None:
    rid = saved(ten)
    mine = ok(ten.post(f"{R}/{rid}/execute", json={}))["execution_id"]
    other = bearer(make_key("elsewhere"), "elsewhere")
    body = {"collection_name": "c", "vector_configs": [{"name": "v", "dimension": 2, "metric": "cosine"}]}
    assert ten.post("/v1/collections", json=body, headers=other).status_code == 200
    theirs = ok(ten.post(f"{R}/execute", json={"collection_identifiers": ["c"], "stages": [search_stage()]},
                         headers=other))["execution_id"]  # fmt: skip
    for response in (
        ten.post(f"{R}/executions/{mine}/replay", headers=other),
        ten.get(f"{R}/executions/compare", params={"a": theirs, "b": mine}, headers=other),
        ten.get(f"{R}/executions/compare", params={"a": mine, "b": theirs}),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["type"] == "NotFoundError"


def test_bad_compare_requests_are_clear_4xx(ten: TestClient) -> None:
    rid = saved(ten)
    one = ok(ten.post(f"{R}/{rid}/execute", json={}))["execution_id"]
    assert ten.get(f"{R}/executions/compare", params={"a": one}).status_code == 422
    assert ten.get(f"{R}/executions/compare", params={"a": one, "b": one, "k": 0}).status_code == 422
    missing = ten.get(f"{R}/executions/compare", params={"a": one, "b": "exec_nope"})
    assert missing.status_code == 404 and "exec_nope" in missing.json()["error"]["message"]
    assert ten.post(f"{R}/executions/exec_nope/replay").status_code == 404
