"""Learned fusion through the API: context levels, reproducible draws, concurrent learning, validation."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from siftline.pipeline.learned import LearningConfig, credits, draw_weights

A, B = "mixpeek://vectors@v1/a", "mixpeek://vectors@v1/b"


def learned_stage(**config: Any) -> dict[str, Any]:
    searches = [
        {"feature_uri": A, "query": {"input_mode": "vector", "value": [1, 0]}},
        {"feature_uri": B, "query": {"input_mode": "vector", "value": [1, 0]}},
    ]
    params = {"searches": searches, "fusion": "learned", "final_top_k": 6, "learning_config": config}
    return {"stage_name": "search", "config": {"stage_id": "feature_search", "parameters": params}}


@pytest.fixture
def corpus(client: TestClient) -> TestClient:
    vectors = [{"name": n, "dimension": 2, "metric": "cosine"} for n in ("a", "b")]
    assert (
        client.post("/v1/collections", json={"collection_name": "c", "vector_configs": vectors}).status_code
        == 200
    )
    docs = [{"document_id": f"d{i}", "vectors": {"a": [1, i], "b": [1, 9 - i]}} for i in range(10)]
    assert client.post("/v1/collections/c/documents/batch", json={"documents": docs}).status_code == 200
    return client


def make(client: TestClient, **config: Any) -> str:
    body = {
        "retriever_name": "learned",
        "collection_identifiers": ["c"],
        "stages": [learned_stage(**config)],
        "input_schema": {"user_id": {"type": "string"}, "segment": {"type": "string"}},
    }
    created = client.post("/v1/retrievers", json=body)
    assert created.status_code == 200, created.text
    rid: str = created.json()["retriever_id"]
    return rid


def execute(client: TestClient, rid: str, **inputs: Any) -> dict[str, Any]:
    response = client.post(f"/v1/retrievers/{rid}/execute", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def click(client: TestClient, execution: dict[str, Any], position: int = 0, **extra: Any) -> dict[str, Any]:
    doc = execution["documents"][position]["document_id"]
    body = {"feature_id": doc, "interaction_type": ["click"], "position": position,
            "execution_id": execution["execution_id"], **extra}  # fmt: skip
    response = client.post("/v1/retrievers/interactions", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_the_context_level_moves_from_prior_to_global_to_segment_to_personal(corpus: TestClient) -> None:
    rid = make(
        corpus, min_interactions=2, context_features=["INPUT.user_id"], demographic_features=["INPUT.segment"]
    )
    me = {"user_id": "u1", "segment": "s"}

    def level() -> str:
        context = execute(corpus, rid, **me)["learned_fusion_context"]
        return str(context["context_level"])

    assert level() == "prior"
    for user in ("x1", "x2"):  # other users in another segment: only the global context learns enough
        click(corpus, execute(corpus, rid, user_id=user, segment="t"), user_id=user)
    assert level() == "global"
    for user in ("y1", "y2"):  # users of my segment
        click(corpus, execute(corpus, rid, user_id=user, segment="s"), user_id=user)
    assert level() == "segment"
    click(corpus, execute(corpus, rid, **me))
    assert level() == "segment"  # one personal interaction is not min_interactions
    click(corpus, execute(corpus, rid, **me), position=1)
    context = execute(corpus, rid, **me)["learned_fusion_context"]
    assert context["context_level"] == "personal"
    assert context["context_key"] == "INPUT.user_id=u1"


def test_the_recorded_seed_redraws_the_same_weights(corpus: TestClient) -> None:
    rid = make(corpus, min_interactions=1)
    click(corpus, execute(corpus, rid, user_id="u"))
    execution = execute(corpus, rid, user_id="u")
    record = corpus.get(f"/v1/retrievers/{rid}/executions/{execution['execution_id']}").json()
    context = record["learned_fusion_context"]
    assert context == execution["learned_fusion_context"]
    posteriors = [(context["posteriors"][u]["alpha"], context["posteriors"][u]["beta"]) for u in (A, B)]
    config = LearningConfig(min_interactions=1)
    again = draw_weights(posteriors, context["effective_exploration"], config, context["seed"])
    assert again == pytest.approx([context["sampled_weights"][A], context["sampled_weights"][B]], abs=1e-5)
    other = draw_weights(posteriors, context["effective_exploration"], config, context["seed"] + 1)
    assert other != again


def test_concurrent_interactions_are_all_counted(corpus: TestClient) -> None:
    rid = make(corpus)
    execution = execute(corpus, rid, user_id="u")
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(25):
                click(corpus, execution, position=i % 3, user_id=f"t{t}-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    state = corpus.get(f"/v1/retrievers/{rid}/learned-fusion").json()
    legs = state["stages"]["search"]["global"]["global"]["legs"]
    assert {uri: leg["interactions"] for uri, leg in legs.items()} == {A: 200.0, B: 200.0}


def test_clicks_on_one_legs_results_raise_that_legs_posterior(corpus: TestClient) -> None:
    rid = make(corpus, min_interactions=1)
    for _ in range(6):
        execution = execute(corpus, rid, user_id="u")
        ids = [d["document_id"] for d in execution["documents"]]
        if "d0" in ids:  # leg a ranks d0 first, leg b last
            position = ids.index("d0")
            body = {"feature_id": "d0", "interaction_type": ["click"], "position": position,
                    "execution_id": execution["execution_id"]}  # fmt: skip
            assert corpus.post("/v1/retrievers/interactions", json=body).status_code == 200
    legs = corpus.get(f"/v1/retrievers/{rid}/learned-fusion").json()["stages"]["search"]["global"]["global"][
        "legs"
    ]
    assert legs[A]["mean"] > 0.8 > legs[B]["mean"]


def test_learned_fusion_is_never_served_from_the_result_cache(corpus: TestClient) -> None:
    body = {"collection_identifiers": ["c"], "stages": [learned_stage()], "cache_config": {"enabled": True}}
    for _ in range(2):
        response = corpus.post("/v1/retrievers/execute", json=body)
        assert response.headers["X-Cache"] == "BYPASS"
        assert "learned fusion" in response.json()["cache_bypass_reason"]


@pytest.mark.parametrize(
    "config, field",
    [
        ({"min_interactions": 0}, "min_interactions"),
        ({"decay_factor": 0.5}, "decay_factor"),
        ({"max_weight": 0.2}, "max_weight"),
        ({"reward_map": {"teleport": 1}}, "reward_map"),
        ({"context_features": ["user_id"]}, "context_features"),
        ({"algorithm": "epsilon_greedy"}, "algorithm"),
        ({"evaluation_dataset_id": "ds_1"}, "evaluation_dataset_id"),
    ],
)
def test_a_learning_config_out_of_range_is_a_422_at_creation(
    corpus: TestClient, config: dict[str, Any], field: str
) -> None:
    body = {"retriever_name": "bad", "collection_identifiers": ["c"], "stages": [learned_stage(**config)]}
    response = corpus.post("/v1/retrievers", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["details"]["errors"][0]["loc"]
    assert corpus.post("/v1/retrievers/list", json={}).json()["total"] == 0


def test_learning_config_belongs_to_learned_fusion_only(corpus: TestClient) -> None:
    stage = learned_stage()
    stage["config"]["parameters"]["fusion"] = "rrf"
    response = corpus.post(
        "/v1/retrievers", json={"retriever_name": "r", "collection_identifiers": ["c"], "stages": [stage]}
    )
    assert response.status_code == 422


def test_credit_follows_each_legs_own_rank() -> None:
    ranks = {"x": [0, 7], "y": [5, 0]}
    (a_success, a_failure), (b_success, b_failure) = credits(ranks, ["x", "y"], "x", 0, set(), 1.0, 2)
    assert a_success > b_success and a_failure < b_failure
    # a click lower down weighs more (inverse propensity) and blames the skipped document's legs
    (_, a_fail), (_, b_fail) = credits(ranks, ["x", "y"], "y", 1, set(), 1.0, 2)
    assert a_fail > b_fail
    # negative feedback is failure for the legs that ranked the document high
    (s, f), _ = credits(ranks, ["x", "y"], "x", 0, set(), -1.0, 2)
    assert s == 0 and f > 0
