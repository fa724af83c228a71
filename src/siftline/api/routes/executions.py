"""Execution records: /v1/retrievers/executions/… (ad hoc) and /v1/retrievers/{id}/executions/…."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import Response

from siftline.api.deps import NamespaceDep, ServicesDep
from siftline.api.routes.retrievers import execution_response
from siftline.api.schemas.common import ERROR_RESPONSES, MAX_OFFSET, OFFSET_HELP
from siftline.errors import ValidationError
from siftline.models import Namespace
from siftline.service import compare, executions, retrievers
from siftline.service.container import Services

router = APIRouter(prefix="/v1/retrievers", tags=["executions"], responses=ERROR_RESPONSES)

ListBody = Annotated[
    dict[str, Any] | None,
    Body(examples=[{"status": "failed", "start_time": "2026-01-01T00:00:00Z", "limit": 20, "offset": 0}]),
]


def _retriever_id(svc: Services, ns: Namespace, identifier: str) -> str:
    """The retriever's id (by id or name); a deleted retriever's id still finds its records."""
    found = svc.storage.get_retriever(ns.namespace_id, identifier)
    return found.retriever_id if found else identifier


def _page(body: dict[str, Any], limit: int, offset: int) -> tuple[int, int]:
    """Body values win over the query parameters."""
    named = next((k for k in ("limit", "page_size") if body.get(k) is not None), None)
    size = body[named] if named else limit
    start = body.get("offset") if body.get("offset") is not None else offset
    if type(size) is not int or not 1 <= size <= 1000:
        raise ValidationError.at(
            ["body", named or "limit"], f"{named or 'limit'} is an integer from 1 to 1000"
        )
    if type(start) is not int or not 0 <= start <= MAX_OFFSET:
        raise ValidationError.at(["body", "offset"], f"offset is an integer from 0 to {MAX_OFFSET:,}")
    return size, start


def _list(
    svc: Services,
    ns: Namespace,
    body: dict[str, Any],
    limit: int,
    offset: int,
    mode: str | None = None,
    retriever_id: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Summaries of one page of records (newest first) and the page's pagination block."""
    limit, offset = _page(body, limit, offset)
    found, total = svc.storage.list_executions(
        ns.namespace_id,
        mode=mode,
        retriever_id=retriever_id,
        limit=limit,
        offset=offset,
        **executions.list_filters(body),
    )
    page = {"total": total, "limit": limit, "offset": offset, "has_next": offset + len(found) < total}
    return [executions.summary(r) for r in found], page


@router.post("/executions/list", summary="Ad-hoc executions, newest first")
def list_adhoc_executions(
    svc: ServicesDep,
    ns: NamespaceDep,
    body: ListBody = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description=OFFSET_HELP)] = 0,
) -> dict[str, Any]:
    body = body or {}
    results, page = _list(svc, ns, body, limit, offset, mode="adhoc")
    return {"results": [] if body.get("count_only") else results, "total": page["total"], "pagination": page}


@router.get(
    "/executions/compare",
    summary="Compare two executions: overlap@k, Jaccard, rank-biased overlap, rank moves, stage deltas",
)
def compare_executions(
    svc: ServicesDep,
    ns: NamespaceDep,
    a: Annotated[str, Query(description="The first execution id (saved or ad hoc).")],
    b: Annotated[str, Query(description="The second execution id.")],
    k: Annotated[int, Query(ge=1, le=compare.K_MAX, description="Depth of overlap@k.")] = 10,
) -> dict[str, Any]:
    return compare.compare(svc.storage, ns, a, b, k)


@router.post(
    "/executions/{execution_id}/replay",
    summary="Run an execution again (its stages, inputs and learned-fusion draw) on today's data",
)
def replay_execution(execution_id: str, svc: ServicesDep, ns: NamespaceDep, http: Request) -> Response:
    record = executions.find_any(svc.storage, ns, execution_id)
    result = svc.executor.replay(ns, record)
    headers = {"X-Execution-Mode": "adhoc"} if record.mode == "adhoc" else None
    return execution_response(result, http, headers)


@router.get("/executions/{execution_id}", summary="An ad-hoc execution (AdhocExecutionDetail)")
def get_adhoc_execution(execution_id: str, svc: ServicesDep, ns: NamespaceDep) -> dict[str, Any]:
    return executions.adhoc_detail(executions.find(svc.storage, ns, execution_id, None))


@router.get("/executions/{execution_id}/status", summary="Progress of an ad-hoc execution")
def get_adhoc_status(execution_id: str, svc: ServicesDep, ns: NamespaceDep) -> dict[str, Any]:
    return executions.status_view(executions.find(svc.storage, ns, execution_id, None))


@router.post("/{retriever_id}/executions/list", summary="A retriever's executions, newest first")
def list_executions(
    retriever_id: str,
    svc: ServicesDep,
    ns: NamespaceDep,
    body: ListBody = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description=OFFSET_HELP)] = 0,
) -> dict[str, Any]:
    rid = _retriever_id(svc, ns, retriever_id)
    results, page = _list(svc, ns, body or {}, limit, offset, retriever_id=rid)
    if page["total"] == 0 and svc.storage.get_retriever(ns.namespace_id, retriever_id) is None:
        retrievers.get(svc.storage, ns, retriever_id)  # 404: neither a retriever nor a deleted one's records
    return {"results": results, "pagination": page}


@router.get(
    "/{retriever_id}/executions/{execution_id}", summary="Everything about one execution (ExecutionDetail)"
)
def get_execution(
    retriever_id: str,
    execution_id: str,
    svc: ServicesDep,
    ns: NamespaceDep,
    include_legacy_results: bool = False,
) -> dict[str, Any]:
    record = executions.find(svc.storage, ns, execution_id, _retriever_id(svc, ns, retriever_id))
    return executions.execution_detail(record, include_legacy_results)


@router.get("/{retriever_id}/executions/{execution_id}/status", summary="Progress of an execution")
def get_execution_status(
    retriever_id: str, execution_id: str, svc: ServicesDep, ns: NamespaceDep
) -> dict[str, Any]:
    record = executions.find(svc.storage, ns, execution_id, _retriever_id(svc, ns, retriever_id))
    return executions.status_view(record)


@router.get(
    "/{retriever_id}/executions/{execution_id}/profile", summary="Per-stage timings and counts of a run"
)
def get_execution_profile(
    retriever_id: str, execution_id: str, svc: ServicesDep, ns: NamespaceDep
) -> dict[str, Any]:
    record = executions.find(svc.storage, ns, execution_id, _retriever_id(svc, ns, retriever_id))
    return executions.profile_view(record)
