"""Evaluations: datasets of judged queries (/v1/retrievers/evaluations/datasets) and runs of a retriever
over one (/v1/retrievers/{id}/evaluations), as the SDK's RetrieverEvaluationsApi sends them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query

from siftline.api.deps import NamespaceDep, ServicesDep
from siftline.api.schemas.common import ERROR_RESPONSES
from siftline.errors import NotFoundError
from siftline.service import evaluations, retrievers

router = APIRouter(prefix="/v1/retrievers", tags=["evaluations"], responses=ERROR_RESPONSES)

Page = Annotated[int, Query(ge=1, le=1_000_000)]
PageSize = Annotated[int, Query(ge=1, le=1000)]
_DATASET = {
    "dataset_name": "scifact-train",
    "queries": [{"query_id": "1", "query_input": {"query": "…"}, "relevant_documents": ["31715818"]}],
}


@router.post("/evaluations/datasets", summary="Create a dataset of judged queries")
def create_dataset(
    svc: ServicesDep, ns: NamespaceDep, body: Annotated[dict[str, Any], Body(examples=[_DATASET])]
) -> dict[str, Any]:
    return evaluations.dataset_out(evaluations.create_dataset(svc.storage, ns, body))


@router.get("/evaluations/datasets", summary="The namespace's datasets, newest first")
def list_datasets(
    svc: ServicesDep, ns: NamespaceDep, page: Page = 1, page_size: PageSize = 20
) -> dict[str, Any]:
    found, total = svc.storage.list_datasets(ns.namespace_id, page_size, (page - 1) * page_size)
    return {
        "datasets": [evaluations.dataset_out(d) for d in found],
        "total": total,
        "page": page,
        "page_size": page_size,
    }


@router.get("/evaluations/datasets/{dataset_identifier}", summary="A dataset by id or name")
def get_dataset(dataset_identifier: str, svc: ServicesDep, ns: NamespaceDep) -> dict[str, Any]:
    return evaluations.dataset_out(evaluations.get_dataset(svc.storage, ns, dataset_identifier))


@router.delete(
    "/evaluations/datasets/{dataset_identifier}", summary="Delete a dataset (its evaluations stay)"
)
def delete_dataset(dataset_identifier: str, svc: ServicesDep, ns: NamespaceDep) -> dict[str, Any]:
    dataset = evaluations.get_dataset(svc.storage, ns, dataset_identifier)
    svc.storage.delete_dataset(ns.namespace_id, dataset.dataset_id)
    return {"success": True, "message": f"Dataset '{dataset.dataset_name}' deleted."}


@router.post(
    "/{retriever_id}/evaluations",
    status_code=202,
    summary="Evaluate the retriever on a dataset (in the background)",
)
def start_evaluation(
    retriever_id: str,
    svc: ServicesDep,
    ns: NamespaceDep,
    body: Annotated[dict[str, Any], Body(examples=[{"dataset_name": "scifact-train"}])],
) -> dict[str, Any]:
    retriever = retrievers.get(svc.storage, ns, retriever_id)
    run = evaluations.start(svc.storage, ns, retriever, body)
    svc.evaluations.submit(ns, retriever, run)
    return {
        "task_id": run.evaluation_id,
        "evaluation_id": run.evaluation_id,
        "task_type": "retriever.evaluation",
        "status": "pending",
        "created_at": run.created_at.isoformat(),
    }


@router.get("/{retriever_id}/evaluations", summary="The retriever's evaluations, newest first")
def list_evaluations(
    retriever_id: str,
    svc: ServicesDep,
    ns: NamespaceDep,
    status: Literal["pending", "in_progress", "completed", "failed"] | None = None,
    dataset_name: str | None = None,
    page: Page = 1,
    page_size: PageSize = 20,
) -> dict[str, Any]:
    retriever = retrievers.get(svc.storage, ns, retriever_id)
    found, total = svc.storage.list_evaluations(
        ns.namespace_id, retriever.retriever_id, status, dataset_name, page_size, (page - 1) * page_size
    )
    return {
        "evaluations": [evaluations.run_out(r) for r in found],
        "total": total,
        "page": page,
        "page_size": page_size,
    }


@router.get("/{retriever_id}/evaluations/{evaluation_id}", summary="An evaluation: status, progress, metrics")
def get_evaluation(
    retriever_id: str, evaluation_id: str, svc: ServicesDep, ns: NamespaceDep
) -> dict[str, Any]:
    retriever = retrievers.get(svc.storage, ns, retriever_id)
    run = svc.storage.get_evaluation(ns.namespace_id, evaluation_id)
    if run is None or run.retriever_id != retriever.retriever_id:
        raise NotFoundError(f"Evaluation '{evaluation_id}' of retriever '{retriever_id}' not found.")
    return evaluations.run_out(run)
