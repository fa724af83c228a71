"""Evaluations through the API: datasets of judged queries (create, get, list, delete, validation) and runs
of a saved retriever over them in the background (202, polled until completed), with metrics checked
against values computed by hand for a tiny corpus of user vectors (no embedding model involved).

The corpus: eight documents ``d0 … d7`` whose 2-d vectors lie on the unit circle at 0, 0.2, …, 1.4
radians, so the query vector ``[1, 0]`` ranks them ``d0, d1, …, d7`` (cosine), and the query at 1.4
radians ranks them the other way round.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mixpeek.models.evaluation_dataset import EvaluationDataset
from mixpeek.models.evaluation_record import EvaluationRecord

DATASETS = "/v1/retrievers/evaluations/datasets"
K_VALUES = ("1", "5", "10", "20")
METRICS = ("precision", "recall", "f1", "f2", "map", "ndcg", "mrr")
FORWARD = [1.0, 0.0]  # ranks d0, d1, …, d7
BACKWARD = [math.cos(1.4), math.sin(1.4)]  # ranks d7, d6, …, d0
# nDCG of a ranking d0 (grade 1), d1 (grade 2) against the ideal d1, d0: (1/1 + 2/log2 3) / (2/1 + 1/log2 3)
GRADED_NDCG = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
POLL_SECONDS = 30.0


def query(qid: str, vector: Any, relevant: list[str], grades: dict[str, int] | None = None) -> dict[str, Any]:
    q: dict[str, Any] = {"query_id": qid, "query_input": {"v": vector}, "relevant_documents": relevant}
    if grades is not None:
        q["relevance_scores"] = grades
    return q


JUDGED = [
    query("first", FORWARD, ["d0"]),  # the relevant document is ranked first
    query("third", FORWARD, ["d2"]),  # … third
    query("graded", FORWARD, ["d0", "d1"], {"d0": 1, "d1": 2}),  # both retrieved, the better one second
]
BAD_INPUT = query("bad", "not a vector", ["d0"])  # the retriever refuses this input


def search_stage() -> dict[str, Any]:
    search = {
        "feature_uri": "mixpeek://vectors@v1/v",
        "query": {"input_mode": "vector", "value": "{{INPUT.v}}"},
    }
    return {
        "stage_name": "search",
        "config": {
            "stage_id": "feature_search",
            "parameters": {"searches": [{**search, "top_k": 20}], "final_top_k": 20},
        },
    }


def make_corpus(client: TestClient, headers: dict[str, str] | None = None) -> str:
    """The collection ``c`` of the eight documents and the retriever ``by-vector``; returns its id."""
    collection = {
        "collection_name": "c",
        "vector_configs": [{"name": "v", "dimension": 2, "metric": "cosine"}],
    }
    created = client.post("/v1/collections", json=collection, headers=headers)
    assert created.status_code == 200, created.text
    docs = [
        {"document_id": f"d{i}", "vectors": {"v": [math.cos(0.2 * i), math.sin(0.2 * i)]}} for i in range(8)
    ]
    loaded = client.post("/v1/collections/c/documents/batch", json={"documents": docs}, headers=headers)
    assert loaded.status_code == 200, loaded.text
    body = {
        "retriever_name": "by-vector",
        "collection_identifiers": ["c"],
        "input_schema": {"v": {"type": "array", "required": True}},
        "stages": [search_stage()],
    }
    retriever = client.post("/v1/retrievers", json=body, headers=headers)
    assert retriever.status_code == 200, retriever.text
    rid: str = retriever.json()["retriever_id"]
    return rid


@pytest.fixture
def rid(client: TestClient) -> str:
    return make_corpus(client)


def create_dataset(
    client: TestClient, name: str, queries: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    response = client.post(DATASETS, json={"dataset_name": name, "queries": queries}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def start(client: TestClient, rid: str, body: dict[str, Any]) -> str:
    response = client.post(f"/v1/retrievers/{rid}/evaluations", json=body)
    assert response.status_code == 202, response.text
    started = response.json()
    assert started["status"] == "pending" and started["task_id"] == started["evaluation_id"]
    assert started["evaluation_id"].startswith("eval_")
    eid: str = started["evaluation_id"]
    return eid


def wait_done(client: TestClient, rid: str, eid: str) -> dict[str, Any]:
    """Poll the evaluation until it is completed or failed (at most POLL_SECONDS)."""
    deadline = time.monotonic() + POLL_SECONDS
    while True:
        response = client.get(f"/v1/retrievers/{rid}/evaluations/{eid}")
        assert response.status_code == 200, response.text
        record: dict[str, Any] = response.json()
        assert record["status"] in ("pending", "in_progress", "completed", "failed")
        if record["status"] in ("completed", "failed"):
            return record
        assert time.monotonic() < deadline, f"evaluation {eid} still {record['status']} after {POLL_SECONDS}s"
        time.sleep(0.02)


def evaluate(client: TestClient, rid: str, dataset: str, **config: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"dataset_name": dataset}
    if config:
        body["evaluation_config"] = config
    record = wait_done(client, rid, start(client, rid, body))
    assert record["status"] == "completed", record
    return record


def dataset_total(client: TestClient, headers: dict[str, str] | None = None) -> int:
    listed = client.get(DATASETS, headers=headers)
    assert listed.status_code == 200, listed.text
    total: int = listed.json()["total"]
    return total


def error_loc(response: Any) -> list[Any]:
    errors = response.json()["error"]["details"]["errors"]
    assert errors, response.text
    loc: list[Any] = errors[0]["loc"]
    return loc


# -- datasets -----------------------------------------------------------------------------------------


def test_a_created_dataset_has_the_sdks_fields_and_reads_back_by_id_and_by_name(client: TestClient) -> None:
    body = {
        "dataset_name": "circle",
        "description": "hand-judged",
        "metadata": {"source": "unit test"},
        "queries": JUDGED,
    }
    response = client.post(DATASETS, json=body)
    assert response.status_code == 200, response.text
    created = response.json()
    assert EvaluationDataset.from_dict(created) is not None  # the SDK's model parses it
    assert set(EvaluationDataset.model_fields) <= set(created)
    assert created["dataset_id"].startswith("ds_")
    assert created["dataset_name"] == "circle" and created["description"] == "hand-judged"
    assert created["metadata"] == {"source": "unit test"}
    assert created["query_count"] == 3
    assert [q["query_id"] for q in created["queries"]] == ["first", "third", "graded"]
    assert created["queries"][2]["relevance_scores"] == {"d0": 1, "d1": 2}
    assert created["queries"][0]["query_input"] == {"v": FORWARD}
    assert created["queries"][0]["relevant_documents"] == ["d0"]

    for identifier in (created["dataset_id"], "circle"):
        got = client.get(f"{DATASETS}/{identifier}")
        assert got.status_code == 200, got.text
        assert got.json() == created


def test_datasets_list_by_page_newest_first(client: TestClient) -> None:
    names = [f"set-{i}" for i in range(5)]
    for name in names:
        create_dataset(client, name, JUDGED[:1])
    pages = []
    for page in (1, 2, 3):
        listed = client.get(DATASETS, params={"page": page, "page_size": 2})
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert body["total"] == 5 and body["page"] == page and body["page_size"] == 2
        pages.append([d["dataset_name"] for d in body["datasets"]])
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [n for p in pages for n in p] == names[::-1]
    beyond = client.get(DATASETS, params={"page": 4, "page_size": 2}).json()
    assert beyond["datasets"] == [] and beyond["total"] == 5
    default = client.get(DATASETS).json()
    assert default["page"] == 1 and default["page_size"] == 20 and len(default["datasets"]) == 5
    assert client.get(DATASETS, params={"page_size": 0}).status_code == 422


def test_a_deleted_dataset_is_gone_but_its_evaluations_stay(client: TestClient, rid: str) -> None:
    created = create_dataset(client, "doomed", JUDGED)
    create_dataset(client, "kept", JUDGED[:1])
    record = evaluate(client, rid, "doomed")

    deleted = client.delete(f"{DATASETS}/doomed")
    assert deleted.status_code == 200, deleted.text
    for identifier in ("doomed", created["dataset_id"]):
        assert client.get(f"{DATASETS}/{identifier}").status_code == 404
    assert [d["dataset_name"] for d in client.get(DATASETS).json()["datasets"]] == ["kept"]
    assert client.delete(f"{DATASETS}/doomed").status_code == 404
    again = client.post(f"/v1/retrievers/{rid}/evaluations", json={"dataset_name": "doomed"})
    assert again.status_code == 404

    kept = client.get(f"/v1/retrievers/{rid}/evaluations/{record['evaluation_id']}")
    assert kept.status_code == 200 and kept.json() == record
    # the name is free again
    create_dataset(client, "doomed", JUDGED[:1])


def test_a_duplicate_dataset_name_is_a_409_and_stores_nothing(client: TestClient) -> None:
    first = create_dataset(client, "twice", JUDGED)
    response = client.post(DATASETS, json={"dataset_name": "twice", "queries": JUDGED[:1]})
    assert response.status_code == 409, response.text
    assert response.json()["success"] is False
    assert dataset_total(client) == 1
    assert client.get(f"{DATASETS}/twice").json() == first


def valid_queries() -> list[dict[str, Any]]:
    return [dict(q) for q in JUDGED]


def with_query(index: int, **changes: Any) -> list[dict[str, Any]]:
    queries = valid_queries()
    queries[index] = {**queries[index], **changes}
    return queries


def without(index: int, field: str) -> list[dict[str, Any]]:
    queries = valid_queries()
    queries[index] = {k: v for k, v in queries[index].items() if k != field}
    return queries


@pytest.mark.parametrize(
    "body, loc",
    [
        ({"dataset_name": "bad"}, ["body", "queries"]),
        ({"dataset_name": "bad", "queries": []}, ["body", "queries"]),
        ({"dataset_name": "bad", "queries": "q1"}, ["body", "queries"]),
        ({"queries": JUDGED}, ["body", "dataset_name"]),
        ({"dataset_name": "", "queries": JUDGED}, ["body", "dataset_name"]),
        ({"dataset_name": "x" * 201, "queries": JUDGED}, ["body", "dataset_name"]),
        (
            {"dataset_name": "bad", "queries": with_query(1, query_id="first")},
            ["body", "queries", 1, "query_id"],
        ),
        ({"dataset_name": "bad", "queries": with_query(2, query_id="")}, ["body", "queries", 2, "query_id"]),
        ({"dataset_name": "bad", "queries": without(0, "query_id")}, ["body", "queries", 0, "query_id"]),
        (
            {"dataset_name": "bad", "queries": with_query(2, relevance_scores={"d0": 6})},
            ["body", "queries", 2, "relevance_scores"],
        ),
        (
            {"dataset_name": "bad", "queries": with_query(2, relevance_scores={"d0": -1})},
            ["body", "queries", 2, "relevance_scores"],
        ),
        (
            {"dataset_name": "bad", "queries": with_query(2, relevance_scores={"d0": 2.5})},
            ["body", "queries", 2, "relevance_scores"],
        ),
        (
            {"dataset_name": "bad", "queries": with_query(0, query_input="not an object")},
            ["body", "queries", 0, "query_input"],
        ),
        (
            {"dataset_name": "bad", "queries": with_query(1, query_input=[1.0, 0.0])},
            ["body", "queries", 1, "query_input"],
        ),
        (
            {"dataset_name": "bad", "queries": without(1, "query_input")},
            ["body", "queries", 1, "query_input"],
        ),
        (
            {"dataset_name": "bad", "queries": with_query(0, relevant_documents="d0")},
            ["body", "queries", 0, "relevant_documents"],
        ),
        (
            {"dataset_name": "bad", "queries": with_query(0, relevant_documents=[7])},
            ["body", "queries", 0, "relevant_documents"],
        ),
        ({"dataset_name": "bad", "queries": ["first"]}, ["body", "queries", 0]),
        ({"dataset_name": "bad", "queries": JUDGED, "metadata": "x"}, ["body", "metadata"]),
    ],
)
def test_a_bad_dataset_is_a_422_naming_the_field_and_stores_nothing(
    client: TestClient, body: dict[str, Any], loc: list[Any]
) -> None:
    response = client.post(DATASETS, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["success"] is False
    assert error_loc(response) == loc
    assert dataset_total(client) == 0
    assert client.get(f"{DATASETS}/bad").status_code == 404


def test_an_unknown_query_field_is_a_422(client: TestClient) -> None:
    response = client.post(DATASETS, json={"dataset_name": "bad", "queries": with_query(0, text="cats")})
    assert response.status_code == 422, response.text
    assert error_loc(response) == ["body", "queries", 0, "text"]
    assert dataset_total(client) == 0


def test_an_unknown_dataset_is_a_404(client: TestClient, rid: str) -> None:
    assert client.get(f"{DATASETS}/nowhere").status_code == 404
    assert client.delete(f"{DATASETS}/nowhere").status_code == 404
    response = client.post(f"/v1/retrievers/{rid}/evaluations", json={"dataset_name": "nowhere"})
    assert response.status_code == 404, response.text
    assert client.get(f"/v1/retrievers/{rid}/evaluations").json()["total"] == 0


# -- evaluations --------------------------------------------------------------------------------------


def test_an_evaluation_computes_the_metrics_of_the_ranking(client: TestClient, rid: str) -> None:
    dataset = create_dataset(client, "circle", JUDGED)
    eid = start(client, rid, {"dataset_name": "circle"})
    record = wait_done(client, rid, eid)
    assert record["status"] == "completed", record
    assert EvaluationRecord.from_dict(record) is not None  # the SDK's model parses it
    assert record["evaluation_id"] == eid and record["retriever_id"] == rid
    assert record["dataset_id"] == dataset["dataset_id"] and record["dataset_name"] == "circle"
    assert record["config"] == {"k_values": [1, 5, 10, 20], "metrics": list(METRICS)}
    assert record["query_count"] == 3 and record["progress"] == {"done": 3, "total": 3}
    assert (
        record["total_queries"] == 3 and record["evaluated_queries"] == 3 and record["skipped_queries"] == 0
    )
    assert record["completed_at"] is not None and record["error_message"] is None

    by_query = {o["query_id"]: o for o in record["query_results"]}
    assert list(by_query) == ["first", "third", "graded"]
    assert all(o["status"] == "evaluated" and o["error"] is None for o in by_query.values())
    assert all(o["retrieved_count"] == 8 for o in by_query.values())

    first = by_query["first"]["metrics"]
    assert set(first) == set(K_VALUES)
    for k in K_VALUES:
        assert first[k]["ndcg"] == pytest.approx(1.0)
        assert first[k]["mrr"] == pytest.approx(1.0)
        assert first[k]["recall"] == pytest.approx(1.0)
        assert first[k]["map"] == pytest.approx(1.0)
        assert first[k]["precision"] == pytest.approx(1 / int(k))  # always over k (trec_eval's P_k)
    assert first["5"]["f1"] == pytest.approx(2 * 0.2 * 1 / (0.2 + 1))
    assert first["5"]["f2"] == pytest.approx(5 * 0.2 * 1 / (4 * 0.2 + 1))

    third = by_query["third"]["metrics"]
    assert third["1"] == {m: pytest.approx(0.0) for m in METRICS}
    for k in ("5", "10", "20"):
        assert third[k]["mrr"] == pytest.approx(1 / 3)
        assert third[k]["ndcg"] == pytest.approx(1 / math.log2(4))
        assert third[k]["map"] == pytest.approx(1 / 3)
        assert third[k]["recall"] == pytest.approx(1.0)

    graded = by_query["graded"]["metrics"]
    assert graded["1"]["ndcg"] == pytest.approx(0.5)  # d0 (grade 1) first, where the ideal has grade 2
    assert graded["1"]["recall"] == pytest.approx(0.5)
    assert graded["1"]["precision"] == pytest.approx(1.0)
    assert graded["5"]["ndcg"] == pytest.approx(GRADED_NDCG)
    assert graded["10"]["ndcg"] == pytest.approx(GRADED_NDCG)
    assert graded["5"]["precision"] == pytest.approx(0.4)
    assert graded["5"]["map"] == pytest.approx(1.0)
    assert graded["20"]["mrr"] == pytest.approx(1.0)

    # overall: the mean over the three queries, by k and as "metric@k"
    by_k = record["metrics_by_k"]
    assert set(by_k) == set(K_VALUES)
    assert all(set(values) == set(METRICS) for values in by_k.values())
    assert by_k["10"]["ndcg"] == pytest.approx((1 + 0.5 + GRADED_NDCG) / 3)
    assert by_k["10"]["mrr"] == pytest.approx((1 + 1 / 3 + 1) / 3)
    assert by_k["1"]["ndcg"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert by_k["1"]["recall"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert by_k["5"]["precision"] == pytest.approx((0.2 + 0.2 + 0.4) / 3)
    assert by_k["20"]["recall"] == pytest.approx(1.0)
    overall = record["overall_metrics"]
    assert set(overall) == {f"{m}@{k}" for m in METRICS for k in K_VALUES}
    for k in K_VALUES:
        for m in METRICS:
            assert overall[f"{m}@{k}"] == pytest.approx(by_k[k][m])


def test_the_ranking_evaluated_is_the_retrievers_own(client: TestClient, rid: str) -> None:
    """The same judgements with the query reversed: d0 is now last of eight, d7 first."""
    create_dataset(
        client,
        "reversed",
        [query("last", BACKWARD, ["d0"]), query("top", BACKWARD, ["d7"]), query("none", BACKWARD, ["zz"])],
    )
    record = evaluate(client, rid, "reversed")
    by_query = {o["query_id"]: o["metrics"] for o in record["query_results"]}
    assert by_query["last"]["5"]["recall"] == 0.0 and by_query["last"]["5"]["mrr"] == 0.0
    assert by_query["last"]["10"]["mrr"] == pytest.approx(1 / 8)
    assert by_query["last"]["10"]["ndcg"] == pytest.approx(1 / math.log2(9))
    assert by_query["top"]["1"]["ndcg"] == pytest.approx(1.0)
    # a relevant document that is not in the corpus: never retrieved, every metric 0
    assert all(v == 0.0 for values in by_query["none"].values() for v in values.values())
    assert record["metrics_by_k"]["10"]["mrr"] == pytest.approx((1 / 8 + 1 + 0) / 3)

    # each evaluated query names its execution, whose record holds the ranking that was scored
    outcome = next(o for o in record["query_results"] if o["query_id"] == "last")
    execution = client.get(f"/v1/retrievers/{rid}/executions/{outcome['execution_id']}")
    assert execution.status_code == 200, execution.text
    ranked = [d["document_id"] for d in execution.json()["documents"]]
    assert ranked == [f"d{i}" for i in range(7, -1, -1)]


def test_a_query_with_bad_input_is_skipped_with_its_error_and_the_others_are_evaluated(
    client: TestClient, rid: str
) -> None:
    wrong_size = query("wrong-size", [1.0, 0.0, 0.0], ["d0"])  # 3 dimensions against 2
    missing = {"query_id": "missing", "query_input": {}, "relevant_documents": ["d0"]}
    create_dataset(client, "mixed", [JUDGED[0], BAD_INPUT, JUDGED[1], wrong_size, missing])
    record = evaluate(client, rid, "mixed")
    assert record["total_queries"] == 5
    assert record["evaluated_queries"] == 2 and record["skipped_queries"] == 3
    outcomes = {o["query_id"]: o for o in record["query_results"]}
    assert list(outcomes) == ["first", "bad", "third", "wrong-size", "missing"]
    for qid in ("bad", "wrong-size", "missing"):
        assert outcomes[qid]["status"] == "skipped"
        assert outcomes[qid]["retrieved_count"] is None
        assert isinstance(outcomes[qid]["error"], str) and outcomes[qid]["error"]
    assert "'v'" in outcomes["bad"]["error"] and "array" in outcomes["bad"]["error"]
    assert "dimension" in outcomes["wrong-size"]["error"]
    assert "'v'" in outcomes["missing"]["error"] and "required" in outcomes["missing"]["error"]
    for qid in ("first", "third"):
        assert outcomes[qid]["status"] == "evaluated" and outcomes[qid]["error"] is None
    # the means are over the evaluated queries only
    assert record["metrics_by_k"]["10"]["mrr"] == pytest.approx((1 + 1 / 3) / 2)
    assert record["metrics_by_k"]["10"]["ndcg"] == pytest.approx((1 + 0.5) / 2)
    assert record["overall_metrics"]["mrr@10"] == pytest.approx((1 + 1 / 3) / 2)


def test_evaluation_config_chooses_the_ks_and_the_metrics(client: TestClient, rid: str) -> None:
    create_dataset(client, "circle", JUDGED)
    record = evaluate(client, rid, "circle", k_values=[3, 2], metrics=["ndcg", "mrr"])
    assert record["config"] == {"k_values": [2, 3], "metrics": ["ndcg", "mrr"]}
    assert set(record["metrics_by_k"]) == {"2", "3"}
    assert all(set(values) == {"ndcg", "mrr"} for values in record["metrics_by_k"].values())
    assert set(record["overall_metrics"]) == {"ndcg@2", "ndcg@3", "mrr@2", "mrr@3"}
    assert record["metrics_by_k"]["3"]["mrr"] == pytest.approx((1 + 1 / 3 + 1) / 3)
    assert record["metrics_by_k"]["2"]["mrr"] == pytest.approx((1 + 0 + 1) / 3)
    assert record["metrics_by_k"]["3"]["ndcg"] == pytest.approx((1 + 0.5 + GRADED_NDCG) / 3)
    for outcome in record["query_results"]:
        assert set(outcome["metrics"]) == {"2", "3"}
        assert all(set(values) == {"ndcg", "mrr"} for values in outcome["metrics"].values())

    # the cut-off asks the retriever for max(k) documents only
    shallow = evaluate(client, rid, "circle", k_values=[2])
    assert {o["retrieved_count"] for o in shallow["query_results"]} == {2}


@pytest.mark.parametrize(
    "config, loc",
    [
        ({"k_values": [0]}, ["body", "evaluation_config", "k_values"]),
        ({"k_values": [5, -1]}, ["body", "evaluation_config", "k_values"]),
        ({"k_values": [501]}, ["body", "evaluation_config", "k_values"]),
        ({"k_values": ["5"]}, ["body", "evaluation_config", "k_values"]),
        ({"k_values": [2.5]}, ["body", "evaluation_config", "k_values"]),
        ({"k_values": 5}, ["body", "evaluation_config", "k_values"]),
        ({"metrics": ["accuracy"]}, ["body", "evaluation_config", "metrics"]),
        ({"metrics": ["ndcg", "NDCG@10"]}, ["body", "evaluation_config", "metrics"]),
        ({"metrics": "ndcg"}, ["body", "evaluation_config", "metrics"]),
        ({"top_k": 5}, ["body", "evaluation_config"]),
        ("ndcg", ["body", "evaluation_config"]),
    ],
)
def test_a_bad_evaluation_config_is_a_422_and_starts_nothing(
    client: TestClient, rid: str, config: Any, loc: list[Any]
) -> None:
    create_dataset(client, "circle", JUDGED)
    response = client.post(
        f"/v1/retrievers/{rid}/evaluations", json={"dataset_name": "circle", "evaluation_config": config}
    )
    assert response.status_code == 422, response.text
    assert error_loc(response) == loc
    assert client.get(f"/v1/retrievers/{rid}/evaluations").json()["total"] == 0


def test_an_evaluation_needs_a_dataset_name_and_a_known_retriever(client: TestClient, rid: str) -> None:
    create_dataset(client, "circle", JUDGED)
    missing = client.post(f"/v1/retrievers/{rid}/evaluations", json={})
    assert missing.status_code == 422, missing.text
    assert error_loc(missing) == ["body", "dataset_name"]
    unknown = client.post("/v1/retrievers/ret_nope/evaluations", json={"dataset_name": "circle"})
    assert unknown.status_code == 404, unknown.text
    assert client.get("/v1/retrievers/ret_nope/evaluations").status_code == 404
    assert client.get(f"/v1/retrievers/{rid}/evaluations/eval_nope").status_code == 404
    assert client.get(f"/v1/retrievers/{rid}/evaluations").json()["total"] == 0


def test_an_evaluation_by_dataset_id_or_name_and_of_the_retriever_by_name(
    client: TestClient, rid: str
) -> None:
    dataset = create_dataset(client, "circle", JUDGED)
    by_id = evaluate(client, "by-vector", dataset["dataset_id"])
    assert by_id["retriever_id"] == rid and by_id["dataset_name"] == "circle"
    assert by_id["dataset_id"] == dataset["dataset_id"]
    by_name = evaluate(client, rid, "circle")
    assert by_name["metrics_by_k"] == by_id["metrics_by_k"]


def test_evaluations_list_newest_first_with_status_and_dataset_filters(client: TestClient, rid: str) -> None:
    create_dataset(client, "alpha", JUDGED)
    create_dataset(client, "beta", JUDGED[:1])
    runs = [evaluate(client, rid, name)["evaluation_id"] for name in ("alpha", "beta", "alpha")]

    def listed(**params: Any) -> dict[str, Any]:
        response = client.get(f"/v1/retrievers/{rid}/evaluations", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    everything = listed()
    assert everything["total"] == 3 and everything["page"] == 1 and everything["page_size"] == 20
    assert [e["evaluation_id"] for e in everything["evaluations"]] == runs[::-1]
    assert all(EvaluationRecord.from_dict(e) is not None for e in everything["evaluations"])
    alpha = listed(dataset_name="alpha")
    assert alpha["total"] == 2 and [e["evaluation_id"] for e in alpha["evaluations"]] == [runs[2], runs[0]]
    assert all(e["dataset_name"] == "alpha" for e in alpha["evaluations"])
    beta = listed(dataset_name="beta")
    assert [e["evaluation_id"] for e in beta["evaluations"]] == [runs[1]]
    assert beta["evaluations"][0]["metrics_by_k"]["10"]["ndcg"] == pytest.approx(1.0)
    assert listed(dataset_name="gamma")["total"] == 0
    assert listed(status="completed")["total"] == 3
    for status in ("pending", "in_progress", "failed"):
        assert listed(status=status) == {"evaluations": [], "total": 0, "page": 1, "page_size": 20}
    assert listed(status="completed", dataset_name="beta")["total"] == 1
    page = listed(page=2, page_size=2)
    assert page["total"] == 3 and [e["evaluation_id"] for e in page["evaluations"]] == [runs[0]]
    bad = client.get(f"/v1/retrievers/{rid}/evaluations", params={"status": "done"})
    assert bad.status_code == 422, bad.text


def test_an_evaluation_is_read_through_its_own_retriever_only(client: TestClient, rid: str) -> None:
    create_dataset(client, "circle", JUDGED)
    eid = evaluate(client, rid, "circle")["evaluation_id"]
    body = {"retriever_name": "other", "collection_identifiers": ["c"], "stages": [search_stage()],
            "input_schema": {"v": {"type": "array", "required": True}}}  # fmt: skip
    other = client.post("/v1/retrievers", json=body)
    assert other.status_code == 200, other.text
    other_id = other.json()["retriever_id"]
    assert client.get(f"/v1/retrievers/{other_id}/evaluations/{eid}").status_code == 404
    assert client.get(f"/v1/retrievers/{other_id}/evaluations").json()["total"] == 0


def test_the_retriever_version_evaluated_is_recorded(client: TestClient, rid: str) -> None:
    create_dataset(client, "circle", JUDGED)
    assert client.get(f"/v1/retrievers/{rid}").json()["version"] == 1
    before = evaluate(client, rid, "circle")
    assert before["retriever_version"] == 1
    patched = client.patch(f"/v1/retrievers/{rid}", json={"description": "second version"})
    assert patched.status_code == 200, patched.text
    assert client.get(f"/v1/retrievers/{rid}").json()["version"] == 2
    after = evaluate(client, rid, "circle")
    assert after["retriever_version"] == 2
    # the earlier record keeps the version it evaluated
    assert (
        client.get(f"/v1/retrievers/{rid}/evaluations/{before['evaluation_id']}").json()["retriever_version"]
        == 1
    )


def test_another_namespace_sees_neither_the_datasets_nor_the_evaluations(
    client: TestClient, rid: str
) -> None:
    dataset = create_dataset(client, "circle", JUDGED)
    eid = evaluate(client, rid, "circle")["evaluation_id"]
    assert client.post("/v1/namespaces", json={"namespace_name": "other"}).status_code == 200
    other = {"X-Namespace": "other"}

    for identifier in ("circle", dataset["dataset_id"]):
        assert client.get(f"{DATASETS}/{identifier}", headers=other).status_code == 404
        assert client.delete(f"{DATASETS}/{identifier}", headers=other).status_code == 404
    assert dataset_total(client, other) == 0
    assert client.get(f"/v1/retrievers/{rid}/evaluations/{eid}", headers=other).status_code == 404
    assert client.get(f"/v1/retrievers/{rid}/evaluations", headers=other).status_code == 404

    other_rid = make_corpus(client, other)  # the same corpus and retriever, in the other namespace
    assert client.get(f"/v1/retrievers/{other_rid}/evaluations/{eid}", headers=other).status_code == 404
    refused = client.post(
        f"/v1/retrievers/{other_rid}/evaluations", json={"dataset_name": "circle"}, headers=other
    )
    assert refused.status_code == 404, refused.text
    assert client.get(f"/v1/retrievers/{other_rid}/evaluations", headers=other).json()["total"] == 0
    refused = client.post(
        f"/v1/retrievers/{other_rid}/evaluations", json={"dataset_name": dataset["dataset_id"]}, headers=other
    )
    assert refused.status_code == 404, refused.text

    # names are per namespace: the other namespace may use the same one, for its own data
    mine = create_dataset(client, "circle", JUDGED[:1], other)
    assert mine["dataset_id"] != dataset["dataset_id"] and mine["query_count"] == 1
    assert client.get(f"{DATASETS}/circle").json() == dataset  # the default namespace's is untouched
    # everything still there for the owner
    assert client.get(f"{DATASETS}/circle").status_code == 200
    assert client.get(f"/v1/retrievers/{rid}/evaluations/{eid}").status_code == 200


def test_progress_is_saved_as_the_run_goes(client: TestClient, rid: str) -> None:
    queries = [query(f"q{i}", FORWARD, [f"d{i % 8}"]) for i in range(150)]
    create_dataset(client, "many", queries)
    eid = start(client, rid, {"dataset_name": "many"})
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + POLL_SECONDS
    while True:
        record = client.get(f"/v1/retrievers/{rid}/evaluations/{eid}").json()
        assert record["progress"]["total"] == 150 and 0 <= record["progress"]["done"] <= 150
        assert record["query_count"] == 150
        seen.append((record["status"], record["progress"]["done"]))
        if record["status"] in ("completed", "failed"):
            break
        assert record["metrics_by_k"] is None and record["overall_metrics"] is None  # not before the end
        assert time.monotonic() < deadline, f"still {record['status']} after {POLL_SECONDS}s"
        time.sleep(0.01)
    assert record["status"] == "completed" and record["progress"] == {"done": 150, "total": 150}
    done = [n for _, n in seen]
    assert done == sorted(done)  # never goes back
    order = ["pending", "in_progress", "completed"]
    assert [order.index(s) for s, _ in seen] == sorted(order.index(s) for s, _ in seen)
    # d{i % 8} sits at rank i % 8 + 1 of the ranking d0 … d7: MRR is the mean of 1 / rank
    expected = sum(1 / (i % 8 + 1) for i in range(150)) / 150
    assert record["metrics_by_k"]["10"]["mrr"] == pytest.approx(expected)
    assert record["metrics_by_k"]["5"]["mrr"] == pytest.approx(
        sum(1 / (i % 8 + 1) for i in range(150) if i % 8 < 5) / 150
    )
