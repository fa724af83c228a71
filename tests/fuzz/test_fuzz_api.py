"""Fuzzing the whole API with schemathesis, reaching the core: a namespace is seeded with a collection,
documents, a saved retriever, executions, an interaction, a dataset and an evaluation, and every path
parameter is drawn from those ids (random ids would only ever find 404). Every operation must answer
without a server error and conform to its response schema, and none may answer only 404.

CI runs a few examples per operation (``SIFTLINE_FUZZ_EXAMPLES``, default 5); ``make fuzz`` runs 200.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from helpers import ADMIN_KEY, settings_for
from siftline.api.app import create_app
from siftline.service.container import Services

EXAMPLES = int(os.environ.get("SIFTLINE_FUZZ_EXAMPLES", "5"))
R = "/v1/retrievers"
URI = "mixpeek://vectors@v1/v"
STAGES = [{"stage_name": "s", "config": {"stage_id": "feature_search", "parameters": {
    "searches": [{"feature_uri": URI, "query": {"input_mode": "vector", "value": [1, 0]}, "top_k": 10}],
    "final_top_k": 10}}}]  # fmt: skip
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
# what every answer must satisfy: no server error, the body as the operation's response schema declares it,
# and a Content-Type the operation declares (the schemas are loose where the wire is open: a 422 for a
# schema-valid value is not a failure here, the bounded-inputs test covers the ranges)
QUERY_SEEDS = {"a": "execution_id", "b": "adhoc_execution_id"}
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.content_type_conformance,
]


def _seed(client: TestClient) -> dict[str, str]:
    """Resources of every kind in namespace default; their ids by path parameter name."""

    def ok(response: Any) -> dict[str, Any]:
        assert response.status_code < 300, response.text
        body: dict[str, Any] = response.json()
        return body

    collection = ok(client.post("/v1/collections", json={"collection_name": "c", "vector_configs": [{"name": "v", "dimension": 2}],
                                              "payload_indexes": [{"field_name": "n", "type": "integer"}]}))  # fmt: skip
    docs = [
        {"document_id": f"d{i}", "n": i, "text": f"note {i}", "vectors": {"v": [1, i]}} for i in range(20)
    ]
    ok(client.post("/v1/collections/c/documents/batch", json={"documents": docs}))
    rid = ok(client.post(R, json={"retriever_name": "r", "collection_identifiers": ["c"], "stages": STAGES}))[
        "retriever_id"
    ]
    run = ok(client.post(f"{R}/{rid}/execute", json={}))
    adhoc = ok(client.post(f"{R}/execute", json={"collection_identifiers": ["c"], "stages": STAGES}))
    click = {"feature_id": run["documents"][0]["document_id"], "interaction_type": ["click"], "position": 0,
             "execution_id": run["execution_id"]}  # fmt: skip
    interaction = ok(client.post(f"{R}/interactions", json=click))
    dataset = ok(client.post(f"{R}/evaluations/datasets", json={"dataset_name": "ds", "queries": [
        {"query_id": "q1", "query_input": {}, "relevant_documents": ["d0"]}]}))  # fmt: skip
    evaluation = ok(client.post(f"{R}/{rid}/evaluations", json={"dataset_name": "ds"}))
    return {
        "collection_identifier": collection["collection_id"],  # a PATCH may rename it
        "document_id": "d3",
        "retriever_id": rid,
        "execution_id": run["execution_id"],
        "adhoc_execution_id": adhoc["execution_id"],
        "interaction_id": str(interaction.get("interaction_id") or interaction.get("id") or ""),
        "namespace_identifier": "default",
        "dataset_identifier": str(dataset.get("dataset_id") or dataset.get("dataset_name") or "ds"),
        "evaluation_id": str(evaluation.get("evaluation_id")),
    }


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, embedder: Any
) -> Iterator[tuple[Any, dict[str, str], TestClient]]:
    data: Path = tmp_path_factory.mktemp("fuzz") / "data"
    config = settings_for(data)
    services = Services.open(config, embedder)
    app = create_app(config, services)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers.update(AUTH)
        ids = _seed(client)
        yield app, ids, client
    services.close()


def _fuzz(operation: Any, ids: dict[str, str], answers: Counter[int], problems: list[str]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)  # fmt: skip
    def run(case: Any) -> None:
        for name in list(case.path_parameters or {}):  # the seeded resources: reach the core, not 404
            if name == "execution_id" and "/{retriever_id}/" not in case.path:
                case.path_parameters[name] = ids["adhoc_execution_id"]
            elif name in ids:
                case.path_parameters[name] = ids[name]
        for name, seed in QUERY_SEEDS.items():  # ids passed in the query string (compare's a and b)
            if case.query and name in case.query:
                case.query[name] = ids[seed]
        if case.query and "namespace" in case.query:  # the seeded namespace, not a random name's 404
            case.query["namespace"] = "default"
        if case.headers:
            case.headers.pop("X-Namespace", None)
            case.headers.pop("x-namespace", None)
        response = case.call(headers=AUTH)
        answers[response.status_code] += 1
        _judge(case, response, problems)

    run()


def _judge(case: Any, response: Any, problems: list[str]) -> None:
    """A server error, or a body or Content-Type the operation does not declare: collected, reported together."""
    if response.status_code >= 500:
        problems.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}")
        return
    try:
        case.validate_response(response, checks=CHECKS)
    except BaseException as exc:
        problems.append(f"{case.method} {case.formatted_path}: {str(exc)[:400]}")


def test_every_operation_reaches_the_core_without_errors(
    seeded: tuple[Any, dict[str, str], TestClient],
) -> None:
    app, ids, _ = seeded
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    answers: dict[str, Counter[int]] = defaultdict(Counter)
    problems: list[str] = []
    operations: list[Any] = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    # deletes last (the seeds go), the deepest paths first (a document before its collection)
    deletes = sorted(
        (op for op in operations if op.method.upper() == "DELETE"), key=lambda op: -op.path.count("/")
    )
    for operation in [op for op in operations if op.method.upper() != "DELETE"] + deletes:
        _fuzz(operation, ids, answers[f"{operation.method.upper()} {operation.path}"], problems)
    only_404 = sorted(op for op, codes in answers.items() if set(codes) == {404})
    codes: Counter[int] = sum(answers.values(), Counter())
    counts = sorted(sum(c.values()) for c in answers.values())
    print(
        f"\nfuzzed {len(operations)} operations, up to {EXAMPLES} examples each: {sum(counts)} requests "
        f"(per operation min {counts[0]}, median {counts[len(counts) // 2]}); answers {dict(sorted(codes.items()))}; "
        f"5xx {sum(n for code, n in codes.items() if code >= 500)}, problems {len(problems)}, only-404 operations {len(only_404)}"
    )
    for op, seen in sorted(answers.items()):
        total = sum(seen.values())
        if seen[404] * 2 > total:
            print(f"  mostly 404: {op} {dict(seen)}")
    assert not problems, "\n".join(problems[:40])
    assert not only_404, "\n".join(only_404)


def test_stateful_chains_reach_the_core_without_errors(
    seeded: tuple[Any, dict[str, str], TestClient],
) -> None:
    """The stateful phase: chains of calls linked by the ids one answer gives the next (links that
    schemathesis infers from the response schemas and path parameters: create → read → update →
    delete of collections, documents, retrievers, executions, interactions, datasets, evaluations)."""
    app, _, _ = seeded
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen: Counter[str] = Counter()
    problems: list[str] = []

    class Chains(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": AUTH}

        def before_call(self, case: Any) -> None:
            if case.query and "namespace" in case.query:
                case.query["namespace"] = "default"
            if case.headers:
                case.headers.pop("X-Namespace", None)

        def call(self, case: Any, **kwargs: Any) -> Any:
            try:
                return super().call(case, **kwargs)
            except (
                Exception
            ) as exc:  # the app raised: a server error (in-process, it is not turned into a 500)
                problems.append(f"{case.method} {case.formatted_path}: raised {exc!r}"[:400])
                raise

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            seen[f"{case.method.upper()} {case.path} {response.status_code}"] += 1
            _judge(case, response, problems)

    # Runs of at most 30 sequences, as many as the examples ask for: the server keeps what each sequence
    # made, so a longer run's replays (hypothesis shrinking or exploring) see other bundles and stop with
    # FlakyStrategyDefinition; a fresh run starts a fresh search (measured: fine at 30, not at 100).
    per_run = min(max(EXAMPLES // 2, 3), 30)
    for _ in range(max(1, EXAMPLES // 30)):
        Chains.run(
            settings=settings(
                max_examples=per_run, stateful_step_count=10, deadline=None,
                suppress_health_check=list(HealthCheck), database=None,
            )
        )  # fmt: skip
    linked = sum(n for key, n in seen.items() if not key.endswith((" 404", " 422", " 400")))
    print(f"\nstateful: {sum(seen.values())} calls, {linked} answered 2xx/409; problems {len(problems)}")
    assert not problems, "\n".join(problems[:40])
    assert linked > 0
