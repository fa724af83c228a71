"""Executing retrievers, saved or ad hoc: inputs, filters, budget, the run, the page of results."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

import siftline.pipeline.templates as templates
from siftline.ids import new_id
from siftline.models import Collection, Namespace, Retriever
from siftline.pipeline.context import Budget, Embedder, ExecutionContext
from siftline.pipeline.filters import Node, bind, fields_of, parse_filter
from siftline.pipeline.plan import Plan, build_plan
from siftline.pipeline.runner import Event, RunResult, run_plan
from siftline.service import retrievers
from siftline.service.inputs import validate_inputs
from siftline.service.pagination import PageRequest, paginate, parse_page
from siftline.service.records import Recorder, canonical_json
from siftline.storage.base import Storage

COLLECTION_MISSING = "Retriever execution failed: Collection not found"


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha1(canonical_json(parts).encode()).hexdigest()[:16]


_NATIVE = frozenset({str, int, float, bool, type(None)})


def plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars and arrays a stage left in fields or metadata become Python values."""
    if isinstance(value, dict):
        return {k: v if type(v) in _NATIVE else plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [v if type(v) in _NATIVE else plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def merge_budgets(retriever: dict[str, Any], request: Any) -> dict[str, Any]:
    """Both budgets apply: for each limit, the stricter of the retriever's and the request's."""
    request = retrievers.validate_budget(request, ["body", "budget_limits"])
    merged = dict(retriever)
    for key, value in request.items():
        merged[key] = value if merged.get(key) is None else min(merged[key], value)
    return merged


def _interpretation(schema: dict[str, dict[str, Any]], given: Any, used: dict[str, Any]) -> dict[str, Any]:
    """What was understood from the inputs: provided, inferred (defaults applied) and ignored keys."""
    provided = sorted((given or {}).keys()) if isinstance(given, dict) else []
    return {
        "provided_input_keys": provided,
        "inferred_input_keys": sorted(k for k in used if k not in provided),
        "ignored_input_keys": sorted(k for k in provided if k not in schema),
        "relaxed_filters": [],
    }


class Executor:
    def __init__(self, storage: Storage, embedder: Embedder, recorder: Recorder | None = None) -> None:
        self.storage = storage
        self.embedder = embedder
        self.recorder = recorder or Recorder(storage)

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
        budget = merge_budgets(retriever.budget_limits, body.get("budget_limits"))
        if missing:
            validate_inputs(retriever.input_schema, body.get("inputs"))  # bad input is still a 422 first
            error = f"{COLLECTION_MISSING} ({', '.join(missing)} was deleted)"
            return self._failed_early(namespace, retriever, body, error, budget)
        plan = retrievers.plan_of(retriever)
        fingerprint = _fingerprint(
            retriever.retriever_id, retriever.version, body.get("inputs"), body.get("filters")
        )
        return self._execute(
            namespace,
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
        return self._execute(namespace, plan, collections, schema, budget, body, None, fingerprint, on_event)

    def _execute(
        self,
        namespace: Namespace,
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
            ctx.relaxed += [r.as_dict("request filters") for r in relaxed]
            ctx.warnings += [
                f"Filter condition on '{r.field}' was relaxed: no input '{r.input_path}'." for r in relaxed
            ]
        ctx.warnings += unindexed_field_warnings(plan, ctx.filters, collections)
        interpretation = _interpretation(schema, body.get("inputs"), inputs)
        tracker = self.recorder.start(
            execution_id=new_id("exec"),
            namespace_id=namespace.namespace_id,
            retriever_id=retriever_id,
            collection_ids=[c.collection_id for c in collections],
            total_stages=len(plan.stages),
            inputs=inputs,
            request={k: v for k, v in body.items() if k not in ("stages", "input_schema")},
            interpretation=interpretation,
        )

        def events(kind: str, data: dict[str, Any]) -> None:
            tracker.on_event(kind, data)
            if on_event is not None:
                on_event(kind, plain({"execution_id": tracker.record.execution_id, **data}))

        result = run_plan(plan, ctx, events)
        interpretation["relaxed_filters"] = ctx.relaxed
        response = self._response(result, ctx, page, fingerprint, retriever_id, tracker.record.execution_id)
        response.update(
            {
                "interpretation": interpretation,
                "created_at": tracker.record.detail["created_at"],
                "total_stages": len(plan.stages),
            }
        )
        tracker.finish(response, response["documents"])
        response["completed_at"] = tracker.record.detail["completed_at"]
        response["stages_completed"] = tracker.record.detail["stages_completed"]
        response["documents_retained"] = tracker.record.detail["documents_retained"]
        return response

    def _response(
        self,
        result: RunResult,
        ctx: ExecutionContext,
        page: PageRequest,
        fingerprint: str,
        retriever_id: str | None,
        execution_id: str,
    ) -> dict[str, Any]:
        chunk, pagination = paginate(result.documents, page, fingerprint)
        response: dict[str, Any] = {
            "execution_id": execution_id,
            "retriever_id": retriever_id or "",
            "status": result.status,
            "documents": [c.as_result(ctx.return_vectors) for c in chunk],
            "pagination": pagination,
            "stage_statistics": result.statistics(round(ctx.budget.credits_used, 6)),
            "budget": ctx.budget.snapshot(),
            "warnings": result.warnings,
            "limits": ctx.limits,
            "degraded": ctx.degraded,
            "optimization_applied": False,
            "total_returned": len(chunk),
        }
        if result.facets is not None:
            response["facets"] = result.facets
        if result.error is not None:
            response["error"] = result.error
            response["failed_stage"] = result.failed_stage
        return plain(response)

    def _failed_early(
        self,
        namespace: Namespace,
        retriever: Retriever,
        body: dict[str, Any],
        error: str,
        budget: dict[str, Any],
    ) -> dict[str, Any]:
        """A run that fails before any stage (a collection was deleted): recorded like any other."""
        inputs = body.get("inputs") if isinstance(body.get("inputs"), dict) else {}
        tracker = self.recorder.start(
            execution_id=new_id("exec"),
            namespace_id=namespace.namespace_id,
            retriever_id=retriever.retriever_id,
            collection_ids=list(retriever.collection_ids),
            total_stages=len(retriever.stages),
            inputs=inputs or {},
            request=body,
            interpretation=_interpretation(retriever.input_schema, inputs, inputs or {}),
        )
        response = {
            "execution_id": tracker.record.execution_id,
            "retriever_id": retriever.retriever_id,
            "status": "failed",
            "documents": [],
            "pagination": {"method": "offset", "total": 0, "returned": 0, "has_next": False},
            "stage_statistics": {"stages": {}, "total_time_ms": 0.0, "credits_used": 0.0},
            "budget": Budget(budget.get("max_credits"), budget.get("max_time_ms")).snapshot(),
            "warnings": [],
            "error": error,
            "total_returned": 0,
            "total_stages": len(retriever.stages),
            "created_at": tracker.record.detail["created_at"],
        }
        tracker.finish(response, [])
        response["completed_at"] = tracker.record.detail["completed_at"]
        return response


def unindexed_field_warnings(
    plan: Plan, request_filter: Node | None, collections: list[Collection]
) -> list[str]:
    """A warning per filtered field that a collection has no payload index for, saying how to add one."""
    fields = fields_of(request_filter)
    for stage in plan.stages:
        for raw in (stage.pre_filters, stage.post_filters):
            if raw:
                fields |= fields_of(parse_filter(raw, ("filters",)))
        if stage.stage_id == "attribute_filter":
            params = stage.parameters
            if isinstance(params.get("field"), str) and not templates.is_template(params["field"]):
                fields.add(params["field"])
            if isinstance(params.get("conditions"), dict):
                fields |= fields_of(parse_filter(params["conditions"], ("conditions",)))
    warnings = []
    for field in sorted(
        f for f in fields if f not in ("document_id", "collection_id") and not f.startswith("_internal")
    ):
        for col in collections:
            if field not in {p.field_name for p in col.payload_indexes}:
                warnings.append(
                    f"Filter on '{field}' uses a field without a payload index in collection "
                    f"'{col.collection_name}'; declare it with PATCH /v1/collections/{col.collection_name} "
                    f'{{"payload_indexes": [{{"field_name": "{field}", "type": "keyword"}}]}} (or integer, float, '
                    "bool, datetime, text)."
                )
    return warnings
