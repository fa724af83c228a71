"""Wire models of retrievers and executions (requests; responses are documented dicts)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from siftline.pipeline.plan import MAX_CACHE_TTL_S
from siftline.service.pagination import MAX_PAGE, MAX_PAGE_NUMBER
from siftline.service.retrievers import BUDGET_CEILINGS

# Bodies the service validates itself (with messages naming each field), described here with their
# bounds so the OpenAPI document says what is accepted.
_SIZE = {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}
_PAGINATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "object", "title": "OffsetPagination", "additionalProperties": False, "properties": {
            "method": {"enum": ["offset"]}, "page_size": _SIZE,
            "page_number": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_NUMBER}}},
        {"type": "object", "title": "CursorPagination", "additionalProperties": False, "required": ["method"],
         "properties": {"method": {"enum": ["cursor"]}, "limit": _SIZE, "cursor": {"type": ["string", "null"]}}},
        {"type": "object", "title": "KeysetPagination", "additionalProperties": False, "required": ["method"],
         "properties": {"method": {"enum": ["keyset"]}, "limit": _SIZE, "after": {"type": ["object", "null"]}}},
        {"type": "null"},
    ]
}  # fmt: skip
_BUDGET_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "title": "BudgetLimits",
            "additionalProperties": False,
            "properties": {
                name: {"type": "number", "minimum": 0, "maximum": ceiling}
                for name, ceiling in BUDGET_CEILINGS.items()
            },
        },
        {"type": "null"},
    ]
}
_CACHE_CONFIG_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "object", "title": "CacheConfig", "additionalProperties": False, "properties": {
            "enabled": {"type": "boolean"},
            "ttl_seconds": {"type": "integer", "minimum": 0, "maximum": MAX_CACHE_TTL_S},
            "cache_stage_names": {"type": "array", "items": {"type": "string"}},
            "exclude_fields": {"type": "array", "items": {"type": "string"}}}},
        {"type": "null"},
    ]
}  # fmt: skip
PaginationField = Annotated[dict[str, Any] | None, WithJsonSchema(_PAGINATION_SCHEMA)]
BudgetField = Annotated[dict[str, Any] | None, WithJsonSchema(_BUDGET_SCHEMA)]
CacheConfigField = Annotated[dict[str, Any] | None, WithJsonSchema(_CACHE_CONFIG_SCHEMA)]

_STAGE_EXAMPLE = {
    "stage_name": "search",
    "stage_type": "filter",
    "config": {
        "stage_id": "feature_search",
        "parameters": {
            "searches": [
                {
                    "feature_uri": "mixpeek://text_extractor@v1/all_minilm_l6_v2",
                    "query": "{{INPUT.query}}",
                    "top_k": 100,
                },
                {"feature_uri": "mixpeek://text_extractor@v1/bm25", "query": "{{INPUT.query}}", "top_k": 100},
            ],
            "fusion": "rrf",
            "final_top_k": 25,
        },
    },
}


class RetrieverCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")  # hosted-only fields the SDK may send (visibility, …)

    retriever_name: str
    description: str | None = None
    collection_identifiers: list[str] | None = None
    stages: list[dict[str, Any]] = Field(examples=[[_STAGE_EXAMPLE]])
    input_schema: dict[str, dict[str, Any]] | None = Field(
        None, examples=[{"query": {"type": "text", "required": True}}]
    )
    budget_limits: BudgetField = None
    cache_config: CacheConfigField = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None


class RetrieverPatch(BaseModel):
    model_config = ConfigDict(extra="allow")  # the service names a field that cannot be patched

    retriever_name: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    budget_limits: BudgetField = None
    cache_config: CacheConfigField = None


class RetrieverClone(BaseModel):
    model_config = ConfigDict(extra="ignore")

    retriever_name: str | None = None
    description: str | None = None
    collection_identifiers: list[str] | None = None
    stages: list[dict[str, Any]] | None = None
    input_schema: dict[str, dict[str, Any]] | None = None
    budget_limits: BudgetField = None
    cache_config: CacheConfigField = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None


class ExecuteBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    inputs: dict[str, Any] | None = None
    filters: dict[str, Any] | None = Field(
        None, description="A LogicalOperator tree ANDed into every search."
    )
    pagination: PaginationField = Field(
        None,
        description="{method: offset, page_size, page_number} | {method: cursor, limit, cursor} | "
        "{method: keyset, limit, after}",
    )
    limit: int | None = Field(None, ge=1, le=MAX_PAGE, description=f"Documents per page, 1 to {MAX_PAGE}.")
    page_size: int | None = Field(None, ge=1, le=MAX_PAGE, description="Alias of limit.")
    stream: bool = False
    skip_cache: bool = Field(
        False,
        description="Bypass the result and stage caches (no lookups); the fresh result is still stored.",
    )
    return_vectors: bool = False
    explain: bool = Field(
        False,
        description="Each document carries its score `lineage` (search legs, fusion, each later stage's "
        "change), kept in the execution record, and the response has `explain_plan` (per-stage profile).",
    )
    optimize: bool = Field(
        True, description="false runs the stages as written, without the optimizer's rewrites."
    )
    budget_limits: BudgetField = None


class ExplainBody(ExecuteBody):
    """``POST …/execute/explain``: without ``analyze`` only the plan and its estimates (nothing runs);
    with ``analyze: true`` the retriever runs with these inputs (caches not looked up, recorded like any
    execution) and each stage shows its actual counts, time and credits beside the estimates."""

    analyze: bool = Field(False, description="Run the plan and report actual beside estimated per stage.")


class AdhocExecuteBody(ExecuteBody):
    collection_identifiers: list[str] | None = None
    collection_ids: list[str] | None = None
    stages: list[dict[str, Any]] = Field(examples=[[_STAGE_EXAMPLE]])
    input_schema: dict[str, dict[str, Any]] | None = None
    cache_config: CacheConfigField = Field(
        None, description="{enabled, ttl_seconds, cache_stage_names, exclude_fields}; absent: no caching."
    )
