"""Executing retrievers, saved or ad hoc: inputs, filters, budget, the run, the page of results."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

import siftline.pipeline.templates as templates
from siftline.errors import ConflictError
from siftline.filters import Node, bind, fields_of, parse_filter
from siftline.ids import new_id
from siftline.models import CacheEntry, Collection, ExecutionRecord, Namespace, Retriever
from siftline.pipeline.context import Budget, Embedder, ExecutionContext
from siftline.pipeline.optimizer import Optimized, optimize
from siftline.pipeline.plan import Plan, build_plan, stored_plan
from siftline.pipeline.runner import Event, RunResult, run_plan
from siftline.service import cache, executions, retrievers
from siftline.service.inputs import validate_inputs
from siftline.service.pagination import PageRequest, page_window, paginate, parse_page
from siftline.service.records import Recorder, Tracker, canonical_json
from siftline.storage.base import Storage

COLLECTION_MISSING = "Retriever execution failed: Collection not found"
LEARNED_INTERNAL = ("ranks", "config", "context_keys", "scope")
# what a cached result keeps: the answer and how it was computed (not the ids and times of that run)
CACHED_FIELDS = (
    "status", "documents", "pagination", "stage_statistics", "warnings", "limits", "degraded", "facets",
    "optimization_applied", "optimization_summary", "total_returned",
)  # fmt: skip


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


@dataclass(frozen=True)
class CacheSettings:
    max_entries: int = 10_000
    max_bytes: int = 256 * 1024 * 1024
    embedding_entries: int = 10_000


@dataclass
class _Caching:
    """What the result cache does for one execution."""

    status: str  # hit | miss | bypass
    key: str | None = None
    config: cache.CacheConfig = dataclasses.field(default_factory=cache.CacheConfig)
    reason: str | None = None


class Executor:
    def __init__(
        self,
        storage: Storage,
        embedder: Embedder,
        recorder: Recorder | None = None,
        *,
        optimizer: bool = True,
        caches: CacheSettings | None = None,
    ) -> None:
        self.storage = storage
        self.embedder = embedder
        self.recorder = recorder or Recorder(storage)
        self.optimizer = optimizer
        self.caches = caches or CacheSettings()
        self.results = cache.ResultCache(storage, self.caches.max_entries, self.caches.max_bytes)
        self.embeddings = cache.QueryEmbeddingCache(embedder, self.caches.embedding_entries)

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
        identity = ["saved", retriever.retriever_id,
                    cache.digest(list(retriever.stages), retriever.input_schema, list(retriever.collection_ids))]  # fmt: skip
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
            identity,
            retriever.cache_config,
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
        config = cache.validate_cache_config(
            body.get("cache_config"), ["body", "cache_config"], [s.name for s in plan.stages]
        )
        identity = ["adhoc", cache.digest(plan.configs(), schema, [c.collection_id for c in collections])]
        return self._execute(
            namespace, plan, collections, schema, budget, body, None, fingerprint, on_event, identity, config
        )

    def replay(self, namespace: Namespace, record: ExecutionRecord) -> dict[str, Any]:
        """Run a recorded execution again: the stages, inputs, filters, page and budget it ran with (not
        the retriever's current version), its learned-fusion draws, against today's data; a new
        execution of the same mode, ``replay_of`` naming the original. Caches are not looked up."""
        recorded = record.detail.get("replay")
        if not isinstance(recorded, dict):
            raise ConflictError(
                f"Execution '{record.execution_id}' cannot be replayed: it failed before its stages ran, "
                "or was recorded by a Siftline version that did not keep its stages."
            )
        collections: list[Collection] = []
        for col_id in recorded["collection_ids"]:
            col = self.storage.get_collection(namespace.namespace_id, col_id)
            if col is None:
                raise ConflictError(
                    f"Execution '{record.execution_id}' cannot be replayed: its collection '{col_id}' was deleted."
                )
            collections.append(col)
        plan = stored_plan(recorded["stages"])
        schema = recorded["input_schema"]
        body = {**(record.detail.get("request") or {}), "skip_cache": True, "stream": False}
        body["inputs"] = orjson.loads(record.detail.get("inputs") or "{}")
        pinned = {d["stage_name"]: d for d in record.detail.get("learned_fusion_internal") or []}
        scope = recorded.get("identity") or [
            "adhoc",
            cache.digest(plan.configs(), schema, recorded["collection_ids"]),
        ]
        fingerprint = _fingerprint(
            record.retriever_id, record.execution_id, body.get("inputs"), body.get("filters")
        )
        return self._execute(
            namespace, plan, collections, schema, recorded.get("budget_limits") or {}, body,
            record.retriever_id, fingerprint, None, scope, recorded.get("cache_config") or {},
            replay_of=record.execution_id, pinned=pinned,
        )  # fmt: skip

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
        identity: list[Any],
        cache_config: dict[str, Any],
        *,
        replay_of: str | None = None,
        pinned: dict[str, dict[str, Any]] | None = None,
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
            skip_cache=bool(body.get("skip_cache")),
            embeddings=self.embeddings,
            fusion_scope=identity[1] if identity[0] == "saved" else f"adhoc:{identity[1]}",
            fusion_seed=secrets.randbits(63),
            explain=bool(body.get("explain")),
            pinned_draws=pinned or {},
        )
        if body.get("filters"):
            ctx.filters, relaxed = bind(parse_filter(body["filters"], ("body", "filters")), inputs)
            ctx.relaxed += [r.as_dict("request filters") for r in relaxed]
            ctx.warnings += [
                f"Filter condition on '{r.field}' was relaxed: no input '{r.input_path}'." for r in relaxed
            ]
        ctx.warnings += unindexed_field_warnings(plan, ctx.filters, collections)
        interpretation = _interpretation(schema, body.get("inputs"), inputs)
        caching = self._caching(namespace, plan, collections, identity, cache_config, inputs, page, body, ctx)
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
        tracker.record.detail["replay"] = {  # what POST /v1/retrievers/executions/{id}/replay runs again
            "stages": plan.configs(),
            "input_schema": schema,
            "collection_ids": [c.collection_id for c in collections],
            "budget_limits": budget_limits,
            "cache_config": cache_config,
            "identity": identity,
        }
        if replay_of is not None:
            tracker.record.detail["replay_of"] = replay_of
        if caching.status == "lookup":
            assert caching.key is not None
            entry = self.results.get(caching.key)
            if entry is not None:
                return self._hit(
                    entry, caching, ctx, namespace, retriever_id, tracker, interpretation, len(plan.stages)
                )
            caching.status = "miss"

        def events(kind: str, data: dict[str, Any]) -> None:
            tracker.on_event(kind, data)
            if on_event is not None:
                on_event(kind, plain({"execution_id": tracker.record.execution_id, **data}))

        optimized = self._optimize(plan, body, caching.config, page, fingerprint)
        ctx.page_window = optimized.page_window
        result = run_plan(optimized.plan, ctx, events)
        interpretation["relaxed_filters"] = ctx.relaxed
        response = self._response(result, ctx, page, fingerprint, retriever_id, tracker.record.execution_id)
        response.update(
            {
                "interpretation": interpretation,
                "created_at": tracker.record.detail["created_at"],
                "total_stages": len(plan.stages),
                "optimization_applied": optimized.applied,
                "cache_hit": False,
                "cached_at": None,
                "cache_status": caching.status,
            }
        )
        if optimized.summary is not None:
            response["optimization_summary"] = optimized.summary
        if ctx.learned:  # the first learned stage's draw; what credit assignment needs stays in the record
            first = ctx.learned[0]
            response["learned_fusion_context"] = {k: v for k, v in first.items() if k not in LEARNED_INTERNAL}
            tracker.record.detail["learned_fusion_internal"] = ctx.learned
        if caching.reason:
            response["cache_bypass_reason"] = caching.reason
        if ctx.explain:
            response["explain_plan"] = explain_plan(response, optimized)
        if replay_of is not None:
            response["replay_of"] = replay_of
        if caching.key is not None and result.status == "completed":
            self._store(caching, namespace, retriever_id, tracker.record.execution_id, response)
        tracker.finish(response, response["documents"])
        return _finished(tracker, response)

    def _optimize(
        self, plan: Plan, body: dict[str, Any], config: cache.CacheConfig, page: PageRequest, fingerprint: str
    ) -> Optimized:
        if not self.optimizer or body.get("optimize") is False:
            return Optimized(plan, None)
        cached = frozenset(config.cache_stage_names) if config.enabled else frozenset()
        return optimize(plan, cached_stages=cached, page_window=page_window(page, fingerprint))

    def _caching(
        self,
        namespace: Namespace,
        plan: Plan,
        collections: list[Collection],
        identity: list[Any],
        stored_config: dict[str, Any],
        inputs: dict[str, Any],
        page: PageRequest,
        body: dict[str, Any],
        ctx: ExecutionContext,
    ) -> _Caching:
        """Whether this run looks up (``lookup``), only refreshes (``bypass`` with a key), or skips the
        result cache, and its key; sets up the stage-output cache on ``ctx``."""
        config = cache.config_of(stored_config)
        reason = None if config.enabled else "caching is off for this retriever (cache_config)"
        unrepeatable = cache.repeatable(plan)
        reason = reason or unrepeatable
        versions = cache.read_collections(self.storage, namespace.namespace_id, plan, collections)
        if versions is None:
            reason = reason or "a stage reads a collection named by a template"
        base = [inputs, body.get("filters"), ctx.return_vectors, versions]
        if ctx.explain:  # results with lineage are cached apart from those without
            base.append("explain")
        if versions is not None and unrepeatable is None:
            ctx.stage_cache = cache.StageOutputCache(
                self.storage,
                namespace.namespace_id,
                base,
                config,
                self.caches.max_entries,
                self.caches.max_bytes,
            )
        if reason is None and config.cache_stage_names:
            reason = "cache_config.cache_stage_names caches those stages' outputs instead of the result"
        if reason is not None:
            return _Caching("bypass", None, config, reason)
        pagination = [page.method, page.size, page.page_number, page.cursor, page.after]
        key = cache.digest(
            "result", namespace.namespace_id, identity, base, pagination, config.exclude_fields
        )
        if ctx.skip_cache:
            return _Caching("bypass", key, config, "skip_cache: the result was computed afresh and stored")
        return _Caching("lookup", key, config)

    def _store(
        self, caching: _Caching, namespace: Namespace, retriever_id: str | None, execution_id: str,
        response: dict[str, Any],
    ) -> None:  # fmt: skip
        assert caching.key is not None
        kept = {k: response[k] for k in CACHED_FIELDS if k in response}
        kept["documents"] = cache.strip_fields(response["documents"], caching.config.exclude_fields)
        self.results.put(
            caching.key, namespace.namespace_id, retriever_id, execution_id, caching.config.ttl_seconds, kept
        )

    def _hit(
        self,
        entry: CacheEntry,
        caching: _Caching,
        ctx: ExecutionContext,
        namespace: Namespace,
        retriever_id: str | None,
        tracker: Tracker,
        interpretation: dict[str, Any],
        total_stages: int,
    ) -> dict[str, Any]:
        """A result served from the cache: recorded as an execution of its own that cost nothing."""
        response: dict[str, Any] = orjson.loads(entry.value)
        cache.restore_fields(
            self.storage, namespace.namespace_id, response["documents"], caching.config.exclude_fields
        )
        stats = response["stage_statistics"]
        for stage in stats["stages"].values():
            stage.update({"stage_cache_hit": True, "cached_at": entry.created_at})
        stats["credits_used"] = 0.0
        stats["total_time_ms"] = round(ctx.budget.elapsed_ms, 3)
        response.update(
            {
                "execution_id": tracker.record.execution_id,
                "retriever_id": retriever_id or "",
                "budget": ctx.budget.snapshot(),
                "cache_hit": True,
                "cached_at": entry.created_at,
                "cached_from_execution_id": entry.execution_id,
                "cache_status": "hit",
                "interpretation": interpretation,
                "created_at": tracker.record.detail["created_at"],
                "total_stages": total_stages,
            }
        )
        tracker.finish(response, response["documents"])
        return _finished(tracker, response)

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
            "cache_hit": False,
            "cache_status": "bypass",
            "cache_bypass_reason": "the run failed before any stage",
            "total_stages": len(retriever.stages),
            "created_at": tracker.record.detail["created_at"],
        }
        tracker.finish(response, [])
        response["completed_at"] = tracker.record.detail["completed_at"]
        return response


def _finished(tracker: Tracker, response: dict[str, Any]) -> dict[str, Any]:
    """The response completed with what the record settled when the run was saved."""
    for key in ("completed_at", "stages_completed", "documents_retained"):
        response[key] = tracker.record.detail[key]
    return response


def explain_plan(response: dict[str, Any], optimized: Optimized) -> dict[str, Any]:
    """The query profile of this execution (``explain: true``, the SDK's ``explain_plan``): per stage
    in the order they ran, time and counts; the optimizer's summary and the plan it ran."""
    stats = response["stage_statistics"]
    return {
        "stages": executions.stage_rows(stats),
        "total_time_ms": stats["total_time_ms"],
        "credits_used": stats["credits_used"],
        "optimization_applied": optimized.applied,
        "optimization_summary": optimized.summary,
        "executed_plan": [
            {"stage_name": s.name, "stage_id": s.stage_id, "absorbed": [a.name for _, a in s.absorbed]}
            for s in optimized.plan.stages
        ],
    }


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
