"""Executing retrievers, saved or ad hoc: inputs, filters, budget, the run, the page of results."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from siftline.ids import new_id
from siftline.models import Collection, Namespace, Retriever
from siftline.pipeline.context import Budget, Embedder, ExecutionContext
from siftline.pipeline.filters import bind, parse_filter
from siftline.pipeline.plan import Plan, build_plan
from siftline.pipeline.runner import Event, RunResult, run_plan
from siftline.service import retrievers
from siftline.service.inputs import validate_inputs
from siftline.service.pagination import PageRequest, paginate, parse_page
from siftline.storage.base import Storage

COLLECTION_MISSING = "Retriever execution failed: Collection not found"


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Executor:
    def __init__(self, storage: Storage, embedder: Embedder) -> None:
        self.storage = storage
        self.embedder = embedder

    def execute_saved(
        self, namespace: Namespace, retriever: Retriever, body: dict[str, Any], on_event: Event | None = None
    ) -> dict[str, Any]:
        collections: list[Collection] = []
        missing = []
        for col_id in retriever.collection_ids:
            col = self.storage.get_collection(namespace.namespace_id, col_id)
            if col is None:
                missing.append(col_id)
            else:
                collections.append(col)
        budget = body.get("budget_limits") or retriever.budget_limits
        if missing:
            return self._failed_early(retriever, f"{COLLECTION_MISSING} ({', '.join(missing)} was deleted)")
        plan = retrievers.plan_of(retriever, collections)
        fingerprint = _fingerprint(
            retriever.retriever_id, retriever.version, body.get("inputs"), body.get("filters")
        )
        return self._execute(
            plan,
            collections,
            retriever.input_schema,
            budget,
            body,
            retriever.retriever_id,
            fingerprint,
            on_event,
        )

    def execute_adhoc(
        self, namespace: Namespace, body: dict[str, Any], on_event: Event | None = None
    ) -> dict[str, Any]:
        identifiers = body.get("collection_identifiers", body.get("collection_ids"))
        collections = retrievers.resolve_collections(self.storage, namespace, identifiers)
        schema = retrievers.validate_input_schema(body.get("input_schema"))
        plan = build_plan(body.get("stages"), collections, schema)
        budget = retrievers.validate_budget(body.get("budget_limits"), ["body", "budget_limits"])
        fingerprint = _fingerprint(plan.configs(), [c.collection_id for c in collections], body.get("inputs"),
                                   body.get("filters"))  # fmt: skip
        return self._execute(plan, collections, schema, budget, body, None, fingerprint, on_event)

    def _execute(
        self,
        plan: Plan,
        collections: list[Collection],
        schema: dict[str, dict[str, Any]],
        budget_limits: dict[str, Any],
        body: dict[str, Any],
        retriever_id: str | None,
        fingerprint: str,
        on_event: Event | None,
    ) -> dict[str, Any]:
        inputs = validate_inputs(schema, body.get("inputs"))
        page = parse_page(body)
        budget_limits = retrievers.validate_budget(budget_limits, ["body", "budget_limits"])
        ctx = ExecutionContext(
            storage=self.storage,
            embedder=self.embedder,
            collections=collections,
            inputs=inputs,
            return_vectors=bool(body.get("return_vectors")),
            budget=Budget(budget_limits.get("max_credits"), budget_limits.get("max_time_ms")),
        )
        if body.get("filters"):
            ctx.filters, relaxed = bind(parse_filter(body["filters"], ("body", "filters")), inputs)
            ctx.warnings += [
                f"Filter condition on '{r.field}' was relaxed: no input '{r.input_path}'." for r in relaxed
            ]
        result = run_plan(plan, ctx, on_event)
        return self._response(result, ctx, page, fingerprint, retriever_id)

    def _response(
        self,
        result: RunResult,
        ctx: ExecutionContext,
        page: PageRequest,
        fingerprint: str,
        retriever_id: str | None,
    ) -> dict[str, Any]:
        chunk, pagination = paginate(result.documents, page, fingerprint)
        response: dict[str, Any] = {
            "execution_id": new_id("exec"),
            "retriever_id": retriever_id or "",
            "status": result.status,
            "documents": [c.as_result(ctx.return_vectors) for c in chunk],
            "pagination": pagination,
            "stage_statistics": result.statistics(round(ctx.budget.credits_used, 6)),
            "budget": ctx.budget.snapshot(),
            "warnings": result.warnings,
            "total_returned": len(chunk),
        }
        if result.facets is not None:
            response["facets"] = result.facets
        if result.error is not None:
            response["error"] = result.error
            response["failed_stage"] = result.failed_stage
        return response

    def _failed_early(self, retriever: Retriever, error: str) -> dict[str, Any]:
        started = time.perf_counter()
        return {
            "execution_id": new_id("exec"),
            "retriever_id": retriever.retriever_id,
            "status": "failed",
            "documents": [],
            "pagination": {"method": "offset", "total": 0, "returned": 0, "has_next": False},
            "stage_statistics": {
                "stages": {},
                "total_time_ms": (time.perf_counter() - started) * 1000,
                "credits_used": 0.0,
            },
            "budget": Budget().snapshot(),
            "warnings": [],
            "error": error,
            "total_returned": 0,
        }
