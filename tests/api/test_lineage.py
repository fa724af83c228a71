"""Score lineage (``explain: true``): every returned document says where its score came from, and the
parts add up to the score, for each fusion method and with stages that change scores after fusion."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from helpers import BM25, DENSE, TEXT_COLLECTION, tiny_cross_encoder

R = "/v1/retrievers"
EMB = "mixpeek://vectors@v1/emb"
ROWS = [
    ("Cats purr", "a cat purrs when content", "pets"),
    ("Dog walks", "walking a dog every day", "pets"),
    ("Stock picks", "markets and stocks for beginners", "finance"),
    ("Kitten care", "how to feed a kitten and a cat", "pets"),
    ("Bond basics", "bonds and interest rates explained", "finance"),
    ("Cat toys", "toys a cat will love, a cat toy guide", "pets"),
    ("Crypto", "digital currency markets", "finance"),
    ("Parrots", "talking parrots and their care", "pets"),
    ("Cat naps", "why a cat sleeps all day", "pets"),
    ("Savings", "saving money each month", "finance"),
]
DOCS = [
    {"document_id": f"p{i:02d}", "title": t, "text": x, "category": c,
     "vectors": {"emb": [math.cos(0.3 * i), math.sin(0.3 * i), 0.0, 0.0]}}
    for i, (t, x, c) in enumerate(ROWS)
]  # fmt: skip
SEARCHES = [
    {"feature_uri": DENSE, "query": {"input_mode": "text", "value": "a cat"}, "top_k": 6},
    {"feature_uri": BM25, "query": {"input_mode": "text", "value": "cat"}, "top_k": 6, "weight": 0.7},
    {"feature_uri": EMB, "query": {"input_mode": "vector", "value": [1, 0, 0, 0]}, "top_k": 6, "weight": 1.5},
]


@pytest.fixture
def papers(client: TestClient) -> TestClient:
    assert client.post("/v1/collections", json=TEXT_COLLECTION).status_code == 200
    added = client.post(f"/v1/collections/{TEXT_COLLECTION['collection_name']}/documents/batch",
                        json={"documents": DOCS})  # fmt: skip
    assert added.status_code == 200, added.text
    return client


def hybrid(fusion: str, **extra: Any) -> dict[str, Any]:
    params = {"searches": SEARCHES, "fusion": fusion, "final_top_k": 10, **extra}
    return {"stage_name": "hybrid", "config": {"stage_id": "feature_search", "parameters": params}}


def run(client: TestClient, stages: list[dict[str, Any]], explain: bool = True) -> dict[str, Any]:
    body = {"collection_identifiers": ["papers"], "stages": stages, "explain": explain}
    response = client.post(f"{R}/execute", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert result["status"] == "completed", result.get("error")
    return result


def fused_sum(lineage: dict[str, Any]) -> float:
    terms = [leg["contribution"] for leg in lineage["legs"]]
    return max(terms) if lineage["origin"]["fusion"] == "max" else math.fsum(terms)


def assert_adds_up(document: dict[str, Any]) -> None:
    lineage = document["lineage"]
    origin = lineage["origin"]
    assert fused_sum(lineage) == origin["score"]  # the fusion's own terms: exactly
    previous = origin["score"]
    for step in lineage["steps"]:
        assert step["score_before"] == previous
        assert step["change"] == step["score_after"] - step["score_before"]
        previous = step["score_after"]
    assert previous == document["score"] == lineage["score"]
    total = origin["score"] + math.fsum(step["change"] for step in lineage["steps"])
    assert total == pytest.approx(document["score"], rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("fusion", ["rrf", "weighted", "dbsf", "max", "learned"])
def test_every_documents_lineage_adds_up_to_its_score_for_each_fusion(
    papers: TestClient, fusion: str
) -> None:
    result = run(papers, [hybrid(fusion)])
    documents = result["documents"]
    assert len(documents) >= 6
    for document in documents:
        assert_adds_up(document)
        lineage = document["lineage"]
        assert lineage["origin"] == {**lineage["origin"], "stage_name": "hybrid", "fusion": fusion}
        assert [leg["feature_uri"] for leg in lineage["legs"]] == [s["feature_uri"] for s in SEARCHES]
        assert lineage["steps"] == []
        found = [leg for leg in lineage["legs"] if leg["rank"] is not None]
        assert found, "a fused document was found by at least one search"
        for leg in lineage["legs"]:
            if leg["rank"] is None:
                assert leg["contribution"] == 0.0 and leg["raw_score"] is None
    if fusion == "learned":  # the drawn weights are the weights shown
        drawn = result["learned_fusion_context"]["sampled_weights"]
        assert [leg["weight"] for leg in documents[0]["lineage"]["legs"]] == [
            drawn[s["feature_uri"]] for s in SEARCHES
        ]
        assert documents[0]["lineage"]["origin"]["applied"] in ("weighted", "rrf")


def test_rrf_lineage_shows_each_searchs_rank_raw_score_and_reciprocal_rank(papers: TestClient) -> None:
    fused = run(papers, [hybrid("rrf")])["documents"]
    for i, search in enumerate(SEARCHES):  # each search alone gives the raw scores and ranks shown
        alone = run(papers, [hybrid("rrf", searches=[search], final_top_k=6)])["documents"]
        ranks = {d["document_id"]: (n, d["score"]) for n, d in enumerate(alone, start=1)}
        for document in fused:
            leg = document["lineage"]["legs"][i]
            if document["document_id"] in ranks:
                rank, score = ranks[document["document_id"]]
                assert (leg["rank"], leg["raw_score"]) == (rank, score)
                assert leg["normalized"] == 1 / (60 + rank)
                assert leg["contribution"] == search.get("weight", 1.0) * leg["normalized"]
            else:
                assert leg["rank"] is None


def test_a_single_search_keeps_its_raw_score_as_the_whole_lineage(papers: TestClient) -> None:
    documents = run(papers, [hybrid("rrf", searches=SEARCHES[:1])])["documents"]
    for rank, document in enumerate(documents, start=1):
        (leg,) = document["lineage"]["legs"]
        assert document["lineage"]["origin"]["fusion"] is None
        assert leg["rank"] == rank and leg["raw_score"] == leg["contribution"] == document["score"]
        assert_adds_up(document)


@pytest.mark.parametrize("fusion", ["rrf", "weighted", "dbsf", "max"])
def test_lineage_follows_rerank_and_score_normalize_and_still_adds_up(
    papers: TestClient, tmp_path: Path, fusion: str
) -> None:
    folder = tiny_cross_encoder().build_counting_cross_encoder(tmp_path / "ce", 4937)  # counts "cat"
    stages = [
        hybrid(fusion),
        {"stage_name": "ce", "config": {"stage_id": "rerank",
                                        "parameters": {"model_path": str(folder), "query": "cat", "top_k": 8}}},
        {"stage_name": "norm", "config": {"stage_id": "score_normalize", "parameters": {"method": "softmax"}}},
        {"stage_name": "top5", "config": {"stage_id": "limit", "parameters": {"limit": 5}}},
    ]  # fmt: skip
    result = run(papers, stages)
    documents = result["documents"]
    assert len(documents) == 5
    plain = {d["document_id"]: d["score"] for d in run(papers, [hybrid(fusion)])["documents"]}
    for rank, document in enumerate(documents, start=1):
        assert_adds_up(document)
        steps = document["lineage"]["steps"]
        names = [s["stage_name"] for s in steps]
        assert names[:2] == ["ce", "norm"]  # both change every score; the limit changes none
        assert "top5" not in names
        assert document["lineage"]["origin"]["score"] == plain[document["document_id"]]
        assert steps[0]["rank_before"] == list(plain).index(document["document_id"]) + 1
        assert steps[-1]["rank_after"] == rank
        assert steps[0]["score_after"] == steps[1]["score_before"]
    assert math.fsum(d["score"] for d in documents) <= 1.0  # softmax over the 8 reranked


def test_lineage_is_kept_in_the_record_and_explain_plan_profiles_the_run(papers: TestClient) -> None:
    body = {"retriever_name": "kept", "collection_identifiers": ["papers"], "stages": [hybrid("dbsf")]}
    rid = papers.post(R, json=body).json()["retriever_id"]
    response = papers.post(f"{R}/{rid}/execute", json={"explain": True})
    assert response.status_code == 200, response.text
    result = response.json()
    plan = result["explain_plan"]
    assert [s["stage_name"] for s in plan["stages"]] == ["hybrid"]
    assert plan["stages"][0]["output_count"] == len(result["documents"]) > 0
    detail = papers.get(f"{R}/{rid}/executions/{result['execution_id']}")
    assert detail.status_code == 200, detail.text
    stored = detail.json()
    assert [d["lineage"] for d in stored["documents"]] == [d["lineage"] for d in result["documents"]]
    assert stored["explain_plan"] == plan


def test_without_explain_no_document_carries_lineage_and_the_cache_keeps_them_apart(
    papers: TestClient,
) -> None:
    body = {"retriever_name": "h", "collection_identifiers": ["papers"], "stages": [hybrid("rrf")],
            "cache_config": {"enabled": True}}  # fmt: skip
    assert papers.post(R, json=body).status_code == 200
    first = papers.post(f"{R}/h/execute", json={}).json()
    assert first["documents"] and all("lineage" not in d for d in first["documents"])
    assert "explain_plan" not in first
    explained = papers.post(f"{R}/h/execute", json={"explain": True})
    assert explained.headers["X-Cache"] == "MISS"  # not the cached result without lineage
    assert all("lineage" in d for d in explained.json()["documents"])
    again = papers.post(f"{R}/h/execute", json={"explain": True})
    assert again.headers["X-Cache"] == "HIT"
    assert [d["lineage"] for d in again.json()["documents"]] == [
        d["lineage"] for d in explained.json()["documents"]
    ]
    plain = papers.post(f"{R}/h/execute", json={})
    assert plain.headers["X-Cache"] == "HIT" and all("lineage" not in d for d in plain.json()["documents"])
