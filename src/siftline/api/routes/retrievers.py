"""Retrievers and their execution: /v1/retrievers."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response

from siftline.api.deps import NamespaceDep, ServicesDep
from siftline.api.schemas.common import (
    ERROR_RESPONSES,
    MAX_OFFSET,
    OFFSET_HELP,
    DeleteResponse,
    ListBody,
    paginate,
)
from siftline.api.schemas.retrievers import (
    AdhocExecuteBody,
    ExecuteBody,
    ExplainBody,
    RetrieverClone,
    RetrieverCreate,
    RetrieverPatch,
)
from siftline.api.streaming import stream_execution
from siftline.credits import credits_table
from siftline.models import Retriever
from siftline.pipeline.stages import STAGES
from siftline.service import cache, explain, learned, retrievers

SkipCacheQuery = Annotated[
    bool,
    Query(
        description="Same as the body's skip_cache (either turns it on): no cache lookups, fresh result stored."
    ),
]
ReturnVectorsQuery = Annotated[
    bool, Query(description="Same as the body's return_vectors (either turns it on).")
]

STREAM_EVENTS = ("stage_start", "stage_complete", "stage_error", "execution_complete", "execution_error")
EXECUTE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The execution (JSON); with `stream: true`, Server-Sent Events: stage_start, "
        "stage_complete, stage_error per stage, then execution_complete or execution_error",
        "content": {
            "application/json": {},
            "text/event-stream": {  # one event: its kind and its JSON data
                "schema": {
                    "type": "object",
                    "properties": {
                        "event": {"type": "string", "enum": list(STREAM_EVENTS)},
                        "data": {"type": "string", "description": "The event's JSON."},
                    },
                    "required": ["event", "data"],
                }
            },
        },
    },
    304: {"description": "If-None-Match named this result's ETag"},
}
router = APIRouter(prefix="/v1/retrievers", tags=["retrievers"], responses=ERROR_RESPONSES)


def retriever_out(r: Retriever) -> dict[str, Any]:
    stages = [{**s, "parameters": s["config"].get("parameters", {})} for s in r.stages]
    fusion = next(
        (
            s["config"]["parameters"].get("fusion", "rrf")
            for s in r.stages
            if s["config"]["stage_id"] == "feature_search"
        ),
        None,
    )
    return {
        "retriever_id": r.retriever_id,
        "retriever_name": r.retriever_name,
        "description": r.description,
        "collection_ids": list(r.collection_ids),
        "collection_identifiers": list(r.collection_ids),
        "stages": stages,
        "input_schema": r.input_schema,
        "budget_limits": r.budget_limits or None,
        "cache_config": r.cache_config,
        "tags": list(r.tags),
        "metadata": r.metadata,
        "fusion": fusion,
        "version": r.version,
        "created_at": r.created_at.isoformat(),
        "updated_at": r.updated_at.isoformat(),
    }


@router.get("/stages", summary="Every built stage with its category and the JSON schema of its parameters")
def list_stages(_: NamespaceDep) -> list[dict[str, Any]]:
    credits = {row["stage_id"]: row for row in credits_table()}
    return [
        {
            "stage_id": stage_id,
            "description": cls.description,
            "category": cls.category,
            "icon": cls.icon,
            "parameter_schema": cls.schema(),
            "credits": credits.get(stage_id),
        }
        for stage_id, cls in sorted(STAGES.items())
    ]


@router.post(
    "/execute",
    summary="Execute stages ad hoc, without a stored retriever",
    responses=EXECUTE_RESPONSES,
)
def execute_adhoc(
    body: AdhocExecuteBody,
    svc: ServicesDep,
    ns: NamespaceDep,
    http: Request,
    skip_cache: SkipCacheQuery = False,
    return_vectors: ReturnVectorsQuery = False,
) -> Any:
    request = _with_query_flags(body.model_dump(exclude_unset=True), skip_cache, return_vectors)
    if body.stream:
        streamed = stream_execution(lambda emit: svc.executor.execute_adhoc(ns, request, emit))
        streamed.headers["X-Execution-Mode"] = "adhoc"
        return streamed
    return execution_response(svc.executor.execute_adhoc(ns, request), http, {"X-Execution-Mode": "adhoc"})


@router.post("", summary="Create a retriever (validated into a plan now, not mid-query)")
def create_retriever(body: RetrieverCreate, svc: ServicesDep, ns: NamespaceDep) -> dict[str, Any]:
    return retriever_out(retrievers.create(svc.storage, ns, body.model_dump(exclude_unset=True)))


@router.post("/list", summary="List the namespace's retrievers, newest first")
def list_retrievers(
    svc: ServicesDep,
    ns: NamespaceDep,
    body: ListBody | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description=OFFSET_HELP)] = 0,
) -> dict[str, Any]:
    body = body or ListBody()
    limit = body.limit or body.page_size or limit
    offset = body.offset if body.offset is not None else offset
    found, total = svc.storage.list_retrievers(ns.namespace_id, limit, offset)
    page = paginate(total, limit, offset, None, offset + len(found) < total)
    return {"results": [retriever_out(r) for r in found], "total": total, "pagination": page.model_dump()}


@router.get("/{retriever_id}", summary="Get a retriever by id or name")
def get_retriever(retriever_id: str, svc: ServicesDep, ns: NamespaceDep) -> dict[str, Any]:
    return retriever_out(retrievers.get(svc.storage, ns, retriever_id))


@router.patch(
    "/{retriever_id}", summary="Change a retriever's metadata (name, description, tags, metadata, budget)"
)
def patch_retriever(
    retriever_id: str, body: RetrieverPatch, svc: ServicesDep, ns: NamespaceDep
) -> dict[str, Any]:
    current = retrievers.get(svc.storage, ns, retriever_id)
    return {
        "retriever": retriever_out(
            retrievers.patch(svc.storage, current, body.model_dump(exclude_unset=True))
        )
    }


@router.delete("/{retriever_id}", summary="Delete a retriever")
def delete_retriever(retriever_id: str, svc: ServicesDep, ns: NamespaceDep) -> DeleteResponse:
    current = retrievers.get(svc.storage, ns, retriever_id)
    retrievers.delete(svc.storage, current)
    return DeleteResponse(message=f"Retriever '{current.retriever_name}' deleted.")


@router.post("/{retriever_id}/clone", status_code=201, summary="A new retriever from this one, with changes")
def clone_retriever(
    retriever_id: str, body: RetrieverClone, svc: ServicesDep, ns: NamespaceDep
) -> dict[str, Any]:
    source = retrievers.get(svc.storage, ns, retriever_id)
    clone = retrievers.clone(svc.storage, ns, source, body.model_dump(exclude_unset=True))
    return {"retriever": retriever_out(clone), "source_retriever_id": source.retriever_id}


@router.get(
    "/{retriever_id}/learned-fusion",
    summary="Learned-fusion posteriors per stage, context level and leg (alpha, beta, interactions, last update)",
)
def learned_fusion(retriever_id: str, svc: ServicesDep, ns: NamespaceDep) -> dict[str, Any]:
    retriever = retrievers.get(svc.storage, ns, retriever_id)
    return learned.posteriors(svc.storage, ns.namespace_id, retriever.retriever_id)


@router.post(
    "/{retriever_id}/execute/explain",
    summary="The plan with estimates per stage; with analyze: true, also run it and show actual beside estimate",
)
def explain_retriever(
    retriever_id: str, svc: ServicesDep, ns: NamespaceDep, body: ExplainBody | None = None
) -> dict[str, Any]:
    retriever = retrievers.get(svc.storage, ns, retriever_id)
    if body is not None:  # checked as an execution checks them, whether it runs or not
        explain.check_request(retriever, body.model_dump(exclude_unset=True, exclude={"analyze"}))
    planned = explain.explain(svc.storage, ns, retriever, svc.settings.optimizer_enabled)
    if body is None or not body.analyze:
        return planned
    request = {
        **body.model_dump(exclude_unset=True, exclude={"analyze"}),
        "skip_cache": True,
        "stream": False,
    }
    analysis = explain.analyze(planned, svc.executor.execute_saved(ns, retriever, request))
    explain.keep_analysis(svc.storage, svc.executor.recorder, ns, analysis)
    return analysis


@router.post(
    "/{retriever_id}/execute",
    summary="Execute a stored retriever",
    responses=EXECUTE_RESPONSES,
)
def execute_retriever(
    retriever_id: str,
    body: ExecuteBody,
    svc: ServicesDep,
    ns: NamespaceDep,
    http: Request,
    skip_cache: SkipCacheQuery = False,
    return_vectors: ReturnVectorsQuery = False,
) -> Any:
    retriever = retrievers.get(svc.storage, ns, retriever_id)
    request = _with_query_flags(body.model_dump(exclude_unset=True), skip_cache, return_vectors)
    if body.stream:
        return stream_execution(lambda emit: svc.executor.execute_saved(ns, retriever, request, emit))
    return execution_response(svc.executor.execute_saved(ns, retriever, request), http)


def _with_query_flags(request: dict[str, Any], skip_cache: bool, return_vectors: bool) -> dict[str, Any]:
    """The SDK may send ``skip_cache`` and ``return_vectors`` as query parameters: either source turns them on."""
    if skip_cache:
        request["skip_cache"] = True
    if return_vectors:
        request["return_vectors"] = True
    return request


def execution_response(
    result: dict[str, Any], http: Request, headers: dict[str, str] | None = None
) -> Response:
    """The execution's JSON with ``X-Cache`` (HIT | MISS | BYPASS) and its ``ETag``; 304 when the client
    already holds this result (``If-None-Match``)."""
    tag = cache.etag(result)
    out = {**(headers or {}), "ETag": tag, "X-Cache": str(result.get("cache_status", "bypass")).upper()}
    wanted = http.headers.get("if-none-match")
    if wanted and (wanted.strip() == "*" or tag in [t.strip().removeprefix("W/") for t in wanted.split(",")]):
        return Response(status_code=304, headers=out)
    return fast_json(result, out)


def fast_json(content: Any, headers: dict[str, str] | None = None) -> Response:
    """An execution's JSON, encoded by orjson straight from the (already JSON-ready) result."""
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    return Response(body, media_type="application/json", headers=headers)
