"""Namespaces: /v1/namespaces."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from siftline.api.deps import KeyDep, ServicesDep
from siftline.api.schemas.common import (
    ERROR_RESPONSES,
    MAX_OFFSET,
    OFFSET_HELP,
    DeleteResponse,
    ListBody,
    paginate,
)
from siftline.api.schemas.resources import NamespaceCreate, NamespaceList, NamespaceOut, NamespaceUpdate
from siftline.models import Namespace
from siftline.service import keys, namespaces

router = APIRouter(prefix="/v1/namespaces", tags=["namespaces"], responses=ERROR_RESPONSES)


def _out(svc: ServicesDep, ns: Namespace) -> NamespaceOut:
    _, count = svc.storage.list_collections(ns.namespace_id, 1, 0)
    return NamespaceOut(
        namespace_id=ns.namespace_id,
        namespace_name=ns.namespace_name,
        description=ns.description,
        metadata=ns.metadata,
        collection_count=count,
        created_at=ns.created_at,
        updated_at=ns.updated_at,
    )


@router.post("", summary="Create a namespace (keys without namespace limits only)")
def create_namespace(body: NamespaceCreate, svc: ServicesDep, key: KeyDep) -> NamespaceOut:
    keys.require_unlimited(key, "create namespaces")
    return _out(svc, namespaces.create(svc.storage, body.namespace_name, body.description, body.metadata))


@router.post("/list", summary="List the namespaces this key may use")
def list_namespaces(
    svc: ServicesDep,
    key: KeyDep,
    body: ListBody | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description=OFFSET_HELP)] = 0,
) -> NamespaceList:
    body = body or ListBody()
    limit = body.limit or body.page_size or limit
    offset = body.offset if body.offset is not None else offset
    found, total = svc.storage.list_namespaces(limit, offset, key.namespaces)
    page = paginate(total, limit, offset, None, offset + len(found) < total)
    return NamespaceList(results=[_out(svc, ns) for ns in found], pagination=page, total_count=total)


@router.get("/{namespace_identifier}", summary="Get a namespace by id or name")
def get_namespace(namespace_identifier: str, svc: ServicesDep, key: KeyDep) -> NamespaceOut:
    return _out(svc, namespaces.get(svc.storage, key, namespace_identifier))


@router.patch("/{namespace_identifier}", summary="Rename or describe a namespace")
def update_namespace(
    namespace_identifier: str, body: NamespaceUpdate, svc: ServicesDep, key: KeyDep
) -> NamespaceOut:
    ns = namespaces.get(svc.storage, key, namespace_identifier)
    return _out(svc, namespaces.update(svc.storage, ns, body.model_dump(exclude_unset=True)))


@router.delete("/{namespace_identifier}", summary="Delete a namespace and everything in it")
def delete_namespace(namespace_identifier: str, svc: ServicesDep, key: KeyDep) -> DeleteResponse:
    ns = namespaces.get(svc.storage, key, namespace_identifier)
    namespaces.delete(svc.storage, ns)
    return DeleteResponse(message=f"Namespace '{ns.namespace_name}' and everything in it deleted.")
