"""Wire models of namespaces, collections and documents (requests and responses)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from siftline.api.schemas.common import ListBody, Pagination


class NamespaceCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the SDK sends hosted-only fields; they do not apply here

    namespace_name: str = Field(description="3-64 letters, digits, '_', '-' or '.'.")
    description: str | None = None
    metadata: dict[str, Any] | None = None


class NamespaceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace_name: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None


class NamespaceOut(BaseModel):
    object: Literal["namespace"] = "namespace"
    namespace_id: str
    namespace_name: str
    description: str | None
    metadata: dict[str, Any]
    collection_count: int | None = None
    namespace_ready: bool = True
    created_at: datetime
    updated_at: datetime


class NamespaceList(BaseModel):
    results: list[NamespaceOut]
    pagination: Pagination
    total_count: int


class FeatureExtractorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feature_extractor_name: str = Field(examples=["text_extractor"])
    version: str = Field("v1", examples=["v1"])
    input_mappings: dict[str, str | list[str]] = Field(
        default_factory=lambda: dict[str, str | list[str]](text="text"),
        description="`text`: the document field (or list of fields, joined with a space) to embed and index.",
    )


class VectorConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    dimension: int = Field(strict=True, ge=1, le=4096, description="Number of components, 1 to 4096.")
    metric: Literal["cosine", "dot_product", "euclidean"] = "cosine"


class PayloadIndexIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field_name: str
    type: Literal["keyword", "integer", "float", "bool", "datetime", "text"]


class CollectionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "collection_name": "papers",
                "feature_extractor": {
                    "feature_extractor_name": "text_extractor",
                    "version": "v1",
                    "input_mappings": {"text": ["title", "text"]},
                },
                "vector_configs": [{"name": "emb", "dimension": 384, "metric": "cosine"}],
                "payload_indexes": [{"field_name": "category", "type": "keyword"}],
            }
        },
    )

    collection_name: str
    description: str | None = None
    feature_extractor: FeatureExtractorIn | None = None
    vector_configs: list[VectorConfigIn] | None = None
    payload_indexes: list[PayloadIndexIn] | None = None
    metadata: dict[str, Any] | None = None
    source: dict[str, Any] | None = Field(
        None, description="Accepted for SDK compatibility; documents are written directly."
    )
    enabled: bool | None = Field(None, description="Accepted for SDK compatibility.")


class CollectionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection_name: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None
    payload_indexes: list[PayloadIndexIn] | None = Field(
        None,
        description="Replaces the declared payload indexes (fields filtered on without one draw a warning).",
    )


class FeatureOut(BaseModel):
    feature_uri: str
    feature_address: str
    name: str
    type: Literal["dense", "bm25"]
    dimension: int | None
    metric: str | None
    extractor: str
    source_fields: list[str]


class CollectionOut(BaseModel):
    collection_id: str
    collection_name: str
    namespace_id: str
    description: str | None
    feature_extractor: dict[str, Any] | None
    source: dict[str, Any] = {"type": "direct"}
    vector_configs: list[dict[str, Any]]
    payload_indexes: list[dict[str, Any]]
    features: list[FeatureOut]
    metadata: dict[str, Any]
    enabled: bool = True
    document_count: int | None = None
    created_at: datetime
    updated_at: datetime


class CollectionList(BaseModel):
    results: list[CollectionOut]
    pagination: Pagination
    total_count: int


class FeaturesOut(BaseModel):
    features: list[FeatureOut]


class VectorIndexFeature(BaseModel):
    name: str
    feature_uri: str
    path: Literal["exact", "hnsw"] = Field(description="How an unfiltered search runs now.")
    vectors: int = Field(description="Live vectors.")
    indexed: int = Field(description="Live vectors inside HNSW segments.")
    pending: int = Field(description="Live vectors written but not yet in a segment (scanned exactly).")
    tombstones: int = Field(description="Deleted or replaced vectors still inside segments.")
    segments: int
    building: bool
    m: int
    ef_construction: int
    ef_search: int
    threshold: int = Field(description="Live vectors from which searches go through HNSW.")


class VectorIndexOut(BaseModel):
    collection_id: str
    features: list[VectorIndexFeature]


class SortIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str
    direction: Literal["asc", "desc"] = "asc"


class DocumentListBody(ListBody):
    filters: dict[str, Any] | None = Field(None, description="A LogicalOperator filter tree.")
    sort: SortIn | None = None
    return_vectors: bool = False


class DocumentListOut(BaseModel):
    results: list[dict[str, Any]]
    pagination: Pagination
    total_documents: int | None = None


class DocumentCountOut(BaseModel):
    collection_id: str
    count: int


class BatchCreateOut(BaseModel):
    collection_id: str
    count: int
    document_ids: list[str]
