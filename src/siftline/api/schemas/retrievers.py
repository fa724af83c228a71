"""Wire models of retrievers and executions (requests; responses are documented dicts)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from siftline.service.pagination import MAX_PAGE

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
    budget_limits: dict[str, Any] | None = None
    cache_config: dict[str, Any] | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None


class RetrieverPatch(BaseModel):
    model_config = ConfigDict(extra="allow")  # the service names a field that cannot be patched

    retriever_name: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    budget_limits: dict[str, Any] | None = None
    cache_config: dict[str, Any] | None = None


class RetrieverClone(BaseModel):
    model_config = ConfigDict(extra="ignore")

    retriever_name: str | None = None
    description: str | None = None
    collection_identifiers: list[str] | None = None
    stages: list[dict[str, Any]] | None = None
    input_schema: dict[str, dict[str, Any]] | None = None
    budget_limits: dict[str, Any] | None = None
    cache_config: dict[str, Any] | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None


class ExecuteBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    inputs: dict[str, Any] | None = None
    filters: dict[str, Any] | None = Field(
        None, description="A LogicalOperator tree ANDed into every search."
    )
    pagination: dict[str, Any] | None = Field(
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
    budget_limits: dict[str, Any] | None = None


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
    cache_config: dict[str, Any] | None = Field(
        None, description="{enabled, ttl_seconds, cache_stage_names, exclude_fields}; absent: no caching."
    )
