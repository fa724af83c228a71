"""Interactions with executions' results: /v1/retrievers/interactions (the SDK's RetrieverInteractionsApi)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import WithJsonSchema

from siftline.api.deps import NamespaceDep, ServicesDep
from siftline.api.schemas.common import ERROR_RESPONSES
from siftline.errors import ValidationError
from siftline.service import interactions

router = APIRouter(prefix="/v1/retrievers/interactions", tags=["interactions"], responses=ERROR_RESPONSES)

_EXAMPLE = {
    "feature_id": "doc_123",
    "interaction_type": ["click"],
    "position": 0,
    "execution_id": "exec_abc",
    "user_id": "user_1",
    "session_id": "sess_1",
}
_INTERACTION_SCHEMA: dict[str, Any] = {  # the service checks each field and names the one that is off
    "type": "object",
    "required": ["feature_id", "interaction_type", "position", "execution_id"],
    "properties": {
        "feature_id": {"type": "string"},
        "document_id": {"type": "string"},
        "interaction_type": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "position": {"type": "integer", "minimum": 0, "maximum": interactions.MAX_POSITION},
        "execution_id": {"type": "string"},
        "metadata": {"type": "object"},
        "user_id": {"type": "string"},
        "session_id": {"type": "string"},
    },
}
InteractionBody = Annotated[dict[str, Any], WithJsonSchema(_INTERACTION_SCHEMA), Body(examples=[_EXAMPLE])]


@router.post("", summary="Record an interaction with a result of an execution")
def create_interaction(body: InteractionBody, svc: ServicesDep, ns: NamespaceDep) -> dict[str, Any]:
    return interactions.record(svc.storage, ns, body)


@router.post("/batch", summary="Record up to 1,000 interactions; each is validated on its own")
def create_interactions(
    svc: ServicesDep,
    ns: NamespaceDep,
    body: Annotated[dict[str, Any], Body(examples=[{"interactions": [_EXAMPLE]}])],
) -> dict[str, Any]:
    return interactions.record_batch(svc.storage, ns, body)


@router.post(
    "/list", summary="Interactions, newest first, filtered by execution, retriever, user, session, type, time"
)
def list_interactions(
    svc: ServicesDep,
    ns: NamespaceDep,
    body: Annotated[
        dict[str, Any] | None, Body(examples=[{"retriever_id": "ret_1", "interaction_type": "click"}])
    ] = None,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    page_size: Annotated[int | None, Query(ge=1, le=1000)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    include_total: bool | None = None,
) -> dict[str, Any]:
    body = dict(body or {})
    size = body.pop("limit", None) or body.pop("page_size", None) or limit or page_size or 50
    start = body.pop("offset", None)
    start = offset if start is None else start
    body.pop("include_total", None)
    if (
        type(size) is not int
        or not 1 <= size <= 1000
        or type(start) is not int
        or not 0 <= start <= 1_000_000
    ):
        raise ValidationError.at(["body", "limit"], "limit is 1-1000 and offset 0-1,000,000")
    return interactions.list_page(svc.storage, ns, body, size, start)


@router.get("/{interaction_id}", summary="An interaction by id")
def get_interaction(interaction_id: str, svc: ServicesDep, ns: NamespaceDep) -> dict[str, Any]:
    return interactions.get(svc.storage, ns, interaction_id)


@router.delete("/{interaction_id}", summary="Delete an interaction")
def delete_interaction(interaction_id: str, svc: ServicesDep, ns: NamespaceDep) -> dict[str, Any]:
    interactions.delete(svc.storage, ns, interaction_id)
    return {"success": True, "message": f"Interaction '{interaction_id}' deleted."}
