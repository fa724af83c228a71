"""Evaluations: datasets of judged queries, and runs of a retriever over them in the background.

A dataset is the SDK's ``CreateDatasetRequest``: ``dataset_name`` and ``queries`` of
``{query_id, query_input, relevant_documents, relevance_scores?}`` (grades 0-5; without them every
relevant document has grade 1). A run executes the retriever (as it is now; its version is recorded)
once per query with ``query_input`` as the inputs, asks for ``max(k_values)`` documents, and computes
the metrics of ``service/metrics.py`` per query and overall (``metrics_by_k``, ``overall_metrics``
as ``metric@k``). Runs go one at a time on a worker thread and save their progress as they go; a
query whose execution fails is skipped with its error (``query_results``), not the whole run.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from siftline.errors import AlreadyExistsError, NotFoundError, ValidationError
from siftline.ids import new_id
from siftline.models import EvaluationDataset, EvaluationRun, Namespace, Retriever, iso, utcnow
from siftline.service import metrics
from siftline.service.execute import Executor
from siftline.storage.base import Storage

MAX_QUERIES = 100_000
MAX_K = 500  # an execution's largest page
SERVER_STOPPED = "the server stopped while this evaluation was running; start it again"
log = logging.getLogger("siftline.evaluations")


# -- datasets -----------------------------------------------------------------------------------------


def _query(raw: Any, loc: list[str | int]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValidationError.at(
            loc, "a query is {query_id, query_input, relevant_documents, relevance_scores}"
        )
    unknown = sorted(set(raw) - {"query_id", "query_input", "relevant_documents", "relevance_scores"})
    if unknown:
        raise ValidationError.at([*loc, unknown[0]], f"unknown field '{unknown[0]}'")
    qid, inputs, relevant = raw.get("query_id"), raw.get("query_input"), raw.get("relevant_documents")
    if not isinstance(qid, str) or not qid:
        raise ValidationError.at([*loc, "query_id"], "query_id is a non-empty string")
    if not isinstance(inputs, dict):
        raise ValidationError.at(
            [*loc, "query_input"], "query_input is the retriever's inputs, e.g. {'query': '…'}"
        )
    if not isinstance(relevant, list) or not all(isinstance(d, str) and d for d in relevant):
        raise ValidationError.at([*loc, "relevant_documents"], "relevant_documents is a list of document ids")
    grades = raw.get("relevance_scores")
    if grades is not None and (
        not isinstance(grades, dict)
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 5 for v in grades.values())
    ):
        raise ValidationError.at(
            [*loc, "relevance_scores"], "relevance_scores maps document ids to grades 0-5"
        )
    return {
        "query_id": qid,
        "query_input": inputs,
        "relevant_documents": relevant,
        "relevance_scores": grades,
    }


def create_dataset(storage: Storage, namespace: Namespace, body: Any) -> EvaluationDataset:
    if not isinstance(body, dict):
        raise ValidationError.at(["body"], "a dataset is {dataset_name, queries, description, metadata}")
    name = body.get("dataset_name")
    if not isinstance(name, str) or not 1 <= len(name) <= 200 or name.startswith("ds_"):
        raise ValidationError.at(
            ["body", "dataset_name"], "dataset_name is 1-200 characters, not starting with 'ds_'"
        )
    raw = body.get("queries")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_QUERIES:
        raise ValidationError.at(
            ["body", "queries"], f"queries is a list of 1 to {MAX_QUERIES:,} judged queries"
        )
    queries = [_query(q, ["body", "queries", i]) for i, q in enumerate(raw)]
    seen: set[str] = set()
    for i, q in enumerate(queries):
        if q["query_id"] in seen:
            raise ValidationError.at(
                ["body", "queries", i, "query_id"], f"query_id '{q['query_id']}' is used twice"
            )
        seen.add(q["query_id"])
    if body.get("metadata") is not None and not isinstance(body["metadata"], dict):
        raise ValidationError.at(["body", "metadata"], "metadata is an object")
    now = utcnow()
    dataset = EvaluationDataset(
        new_id("ds"),
        namespace.namespace_id,
        name,
        body.get("description"),
        queries,
        body.get("metadata") or {},
        now,
        now,
    )
    try:
        storage.create_dataset(dataset)
    except AlreadyExistsError as exc:
        raise AlreadyExistsError(
            f"A dataset named '{name}' already exists in this namespace; pick another name."
        ) from exc
    return dataset


def get_dataset(storage: Storage, namespace: Namespace, identifier: str) -> EvaluationDataset:
    found = storage.get_dataset(namespace.namespace_id, identifier)
    if found is None:
        raise NotFoundError(
            f"Dataset '{identifier}' not found in namespace '{namespace.namespace_name}'; "
            "list datasets with GET /v1/retrievers/evaluations/datasets."
        )
    return found


def dataset_out(d: EvaluationDataset, with_queries: bool = True) -> dict[str, Any]:
    """The SDK's ``EvaluationDataset``."""
    return {
        "dataset_id": d.dataset_id,
        "dataset_name": d.dataset_name,
        "description": d.description,
        "queries": d.queries if with_queries else [],
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
        "namespace_id": d.namespace_id,
        "internal_id": d.namespace_id,
        "query_count": len(d.queries),
        "metadata": d.metadata,
    }


# -- runs ---------------------------------------------------------------------------------------------


def _config(raw: Any) -> dict[str, Any]:
    raw = raw or {}
    if not isinstance(raw, dict) or set(raw) - {"k_values", "metrics"}:
        raise ValidationError.at(["body", "evaluation_config"], "evaluation_config is {k_values, metrics}")
    ks = raw.get("k_values") or list(metrics.DEFAULT_K)
    if not isinstance(ks, list) or not all(
        isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= MAX_K for k in ks
    ):
        raise ValidationError.at(
            ["body", "evaluation_config", "k_values"], f"k_values are integers from 1 to {MAX_K}"
        )
    names = raw.get("metrics") or list(metrics.METRICS)
    if not isinstance(names, list) or not all(m in metrics.METRICS for m in names):
        raise ValidationError.at(
            ["body", "evaluation_config", "metrics"], f"metrics are among {', '.join(metrics.METRICS)}"
        )
    return {"k_values": sorted(set(ks)), "metrics": list(dict.fromkeys(names))}


def start(storage: Storage, namespace: Namespace, retriever: Retriever, body: Any) -> EvaluationRun:
    if not isinstance(body, dict):
        raise ValidationError.at(["body"], "the body is {dataset_name, evaluation_config}")
    name = body.get("dataset_name")
    if not isinstance(name, str) or not name:
        raise ValidationError.at(["body", "dataset_name"], "dataset_name names a dataset of this namespace")
    dataset = get_dataset(storage, namespace, name)
    now = utcnow()
    run = EvaluationRun(
        new_id("eval"), namespace.namespace_id, retriever.retriever_id, retriever.version, dataset.dataset_id,
        dataset.dataset_name, _config(body.get("evaluation_config")), "pending", now, now,
        progress={"done": 0, "total": len(dataset.queries)}, owner=storage.server_id,
    )  # fmt: skip
    storage.save_evaluation(run)
    return run


def evaluate(
    storage: Storage,
    executor: Executor,
    namespace: Namespace,
    retriever: Retriever,
    dataset: EvaluationDataset,
    run: EvaluationRun,
    advance: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> EvaluationRun:
    """Run every query, compute the metrics, save the run (progress included) as it goes; ``stop`` set
    (the server is stopping) fails the run between two queries."""
    ks, names = run.config["k_values"], run.config["metrics"]
    run.status, run.updated_at = "in_progress", utcnow()
    storage.save_evaluation(run)
    per_query: list[dict[int, dict[str, float]]] = []
    outcomes: list[dict[str, Any]] = []
    every = max(1, len(dataset.queries) // 50)
    for i, query in enumerate(dataset.queries):
        if stop is not None and stop.is_set():
            run.status, run.error_message, run.updated_at = "failed", SERVER_STOPPED, utcnow()
            storage.save_evaluation(run)
            return run
        outcomes.append(_one(executor, namespace, retriever, query, ks, names, per_query))
        if advance is not None:
            advance(1)
        if (i + 1) % every == 0:
            run.progress, run.updated_at = {**run.progress, "done": i + 1}, utcnow()
            storage.save_evaluation(run)
    overall = metrics.aggregate(per_query) if per_query else {}
    run.results = {
        "metrics_by_k": {str(k): values for k, values in overall.items()},
        "overall_metrics": {f"{m}@{k}": v for k, values in overall.items() for m, v in values.items()},
        "total_queries": len(dataset.queries),
        "evaluated_queries": len(per_query),
        "skipped_queries": len(dataset.queries) - len(per_query),
        "query_results": outcomes,
    }
    run.status = "completed"
    run.progress = {**run.progress, "done": len(dataset.queries)}
    run.completed_at = run.updated_at = utcnow()
    storage.save_evaluation(run)
    return run


def _one(
    executor: Executor,
    namespace: Namespace,
    retriever: Retriever,
    query: dict[str, Any],
    ks: list[int],
    names: list[str],
    per_query: list[dict[int, dict[str, float]]],
) -> dict[str, Any]:
    outcome: dict[str, Any] = {
        "query_id": query["query_id"],
        "status": "skipped",
        "error": None,
        "retrieved_count": None,
    }
    try:
        result = executor.execute_saved(
            namespace, retriever, {"inputs": query["query_input"], "limit": max(ks)}
        )
    except Exception as exc:  # a bad input for this query: skip it, keep going
        outcome["error"] = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return outcome
    if result.get("status") != "completed":
        outcome["error"] = result.get("error") or "the execution failed"
        return outcome
    ranked = [str(d.get("document_id")) for d in result["documents"]]
    grades = {**dict.fromkeys(query["relevant_documents"], 1), **(query["relevance_scores"] or {})}
    values = metrics.query_metrics(ranked, grades, ks, names)
    per_query.append(values)
    outcome.update({"status": "evaluated", "retrieved_count": len(ranked), "execution_id": result["execution_id"],
                    "metrics": {str(k): v for k, v in values.items()}})  # fmt: skip
    return outcome


def run_out(run: EvaluationRun) -> dict[str, Any]:
    """The SDK's ``EvaluationRecord`` (plus progress and the retriever version evaluated)."""
    return {
        "evaluation_id": run.evaluation_id,
        "retriever_id": run.retriever_id,
        "retriever_version": run.retriever_version,
        "dataset_id": run.dataset_id,
        "dataset_name": run.dataset_name,
        "config": run.config,
        "status": run.status,
        "created_at": iso(run.created_at),
        "updated_at": iso(run.updated_at),
        "completed_at": iso(run.completed_at) if run.completed_at else None,
        "namespace_id": run.namespace_id,
        "internal_id": run.namespace_id,
        "query_count": run.progress.get("total", 0),
        "progress": run.progress,
        "error_message": run.error_message,
        "overall_metrics": None,
        "metrics_by_k": None,
        **run.results,
    }


def recover(storage: Storage) -> int:
    """Runs whose server is gone are marked failed (runs of a live server are left alone): at start-up
    and then periodically (``service/maintenance.py``), so a server that dies is noticed by the others."""
    failed = 0
    for run in storage.unfinished_evaluations():
        if not storage.server_alive(run.owner):
            run.status, run.error_message, run.updated_at = (
                "failed",
                f"Evaluation failed: {SERVER_STOPPED}",
                utcnow(),
            )
            storage.save_evaluation(run)
            failed += 1
    return failed


class EvaluationWorker:
    """Runs evaluations one at a time on a background thread."""

    def __init__(self, storage: Storage, executor: Executor) -> None:
        self.storage = storage
        self.executor = executor
        self._queue: queue.Queue[tuple[Namespace, Retriever, EvaluationDataset, EvaluationRun] | None] = (
            queue.Queue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def submit(self, namespace: Namespace, retriever: Retriever, run: EvaluationRun) -> None:
        dataset = get_dataset(self.storage, namespace, run.dataset_id)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="siftline-evaluations", daemon=True)
                self._thread.start()
        self._queue.put((namespace, retriever, dataset, run))

    def _loop(self) -> None:
        while (job := self._queue.get()) is not None:
            namespace, retriever, dataset, run = job
            try:
                evaluate(self.storage, self.executor, namespace, retriever, dataset, run, stop=self._stop)
            except Exception as exc:  # the run fails, the worker goes on
                log.exception("evaluation %s failed", run.evaluation_id)
                run.status, run.error_message, run.updated_at = "failed", f"internal error: {exc}", utcnow()
                self.storage.save_evaluation(run)

    def close(self) -> None:
        """Stop after the current query (a run cut short is saved as failed); queued runs stay pending and
        are marked failed at the next start."""
        if self._thread is not None:
            self._stop.set()
            self._queue.put(None)
            self._thread.join(timeout=30)
