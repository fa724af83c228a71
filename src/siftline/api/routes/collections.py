"""Collections: /v1/collections."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from siftline.api.deps import CollectionDep, NamespaceDep, ServicesDep
from siftline.api.schemas.common import (
    ERROR_RESPONSES,
    MAX_OFFSET,
    OFFSET_HELP,
    DeleteResponse,
    ListBody,
    paginate,
)
from siftline.api.schemas.resources import (
    CollectionCreate,
    CollectionList,
    CollectionOut,
    CollectionUpdate,
    FeatureOut,
    FeaturesOut,
    VectorIndexOut,
)
from siftline.models import Collection
from siftline.service import collections

router = APIRouter(prefix="/v1/collections", tags=["collections"], responses=ERROR_RESPONSES)


def collection_out(svc: ServicesDep, col: Collection) -> CollectionOut:
    return CollectionOut(
        collection_id=col.collection_id,
        collection_name=col.collection_name,
        namespace_id=col.namespace_id,
        description=col.description,
        feature_extractor=col.feature_extractor,
        vector_configs=[
            {"name": f.name, "dimension": f.dimension, "metric": f.metric}
            for f in col.features
            if f.extractor == "vectors"
        ],
        payload_indexes=[asdict(p) for p in col.payload_indexes],
        features=[FeatureOut(**f) for f in collections.describe_features(col)],
        metadata=col.metadata,
        document_count=svc.storage.count_documents(col),
        created_at=col.created_at,
        updated_at=col.updated_at,
    )


@router.post("", summary="Create a collection with its features")
def create_collection(body: CollectionCreate, svc: ServicesDep, ns: NamespaceDep) -> CollectionOut:
    col = collections.create(
        svc.storage,
        ns,
        collection_name=body.collection_name,
        description=body.description,
        feature_extractor=body.feature_extractor.model_dump() if body.feature_extractor else None,
        vector_configs=[v.model_dump() for v in body.vector_configs or []],
        payload_indexes=[p.model_dump() for p in body.payload_indexes or []],
        metadata=body.metadata,
    )
    return collection_out(svc, col)


@router.post("/list", summary="List the namespace's collections")
def list_collections(
    svc: ServicesDep,
    ns: NamespaceDep,
    body: ListBody | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description=OFFSET_HELP)] = 0,
) -> CollectionList:
    body = body or ListBody()
    limit = body.limit or body.page_size or limit
    offset = body.offset if body.offset is not None else offset
    found, total = svc.storage.list_collections(ns.namespace_id, limit, offset)
    page = paginate(total, limit, offset, None, offset + len(found) < total)
    return CollectionList(results=[collection_out(svc, c) for c in found], pagination=page, total_count=total)


@router.get("/{collection_identifier}", summary="Get a collection by id or name")
def get_collection(svc: ServicesDep, col: CollectionDep) -> CollectionOut:
    return collection_out(svc, col)


@router.patch("/{collection_identifier}", summary="Rename or describe a collection")
def update_collection(body: CollectionUpdate, svc: ServicesDep, col: CollectionDep) -> CollectionOut:
    return collection_out(svc, collections.update(svc.storage, col, body.model_dump(exclude_unset=True)))


@router.delete("/{collection_identifier}", summary="Delete a collection, its documents and indexes")
def delete_collection(svc: ServicesDep, col: CollectionDep) -> DeleteResponse:
    collections.delete(svc.storage, col)
    return DeleteResponse(message=f"Collection '{col.collection_name}' deleted.")


@router.get("/{collection_identifier}/features", summary="The collection's feature URIs")
def list_features(col: CollectionDep) -> FeaturesOut:
    return FeaturesOut(features=[FeatureOut(**f) for f in collections.describe_features(col)])


class VectorIndexBuild(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wait: bool = Field(True, description="Answer once the build is done (false: build in the background).")


@router.get(
    "/{collection_identifier}/vector-index",
    summary="The vector index of each dense feature: exact or HNSW, vectors indexed, pending, tombstones",
)
def vector_index_status(svc: ServicesDep, col: CollectionDep) -> VectorIndexOut:
    return VectorIndexOut(
        collection_id=col.collection_id, features=collections.vector_indexes(svc.storage, col)
    )


@router.post(
    "/{collection_identifier}/vector-index/build",
    summary="Index every pending vector now and drop tombstones (a full rebuild into one HNSW segment)",
)
def build_vector_index(
    svc: ServicesDep, col: CollectionDep, body: VectorIndexBuild | None = None
) -> VectorIndexOut:
    wait = body.wait if body is not None else True
    features = collections.build_vector_indexes(svc.storage, col, wait=wait)
    return VectorIndexOut(collection_id=col.collection_id, features=features)
