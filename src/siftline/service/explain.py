"""Explain a retriever without running it: per-stage estimates from its recorded history.

With recorded executions of the retriever, each stage's estimated input, output and duration are
the medians over the most recent runs; without history they come from simple rules (a search returns
at most final_top_k of the documents its collections hold; sorts keep their input; limit caps it).
Costs follow the credits table. Bottlenecks are the stages estimated at ≥ 80 % of the slowest.
"""

from __future__ import annotations

from statistics import median
from typing import Any

from siftline.credits import stage_credits
from siftline.filters import parse_filter
from siftline.models import Collection, Namespace, Retriever
from siftline.pipeline.optimizer import Optimized, optimize
from siftline.pipeline.plan import PlannedStage, stored_plan
from siftline.service.cache import config_of
from siftline.service.execute import merge_budgets, unindexed_field_warnings
from siftline.service.inputs import validate_inputs
from siftline.service.pagination import parse_page
from siftline.service.records import Recorder
from siftline.storage.base import Storage

HISTORY = 50
# what a record keeps of an analysis (explain_analyze), per stage
ANALYZED_FIELDS = (
    "stage_name", "stage_id", "estimated_input", "estimated_output", "estimated_duration_ms",
    "estimated_cost_credits", "optimization_notes", "actual", "misestimate",
)  # fmt: skip
DEFAULT_DURATION_MS = {"feature_search": 10.0, "rerank": 50.0}


def _history(storage: Storage, namespace: Namespace, retriever: Retriever) -> dict[str, list[dict[str, Any]]]:
    records, _ = storage.list_executions(
        namespace.namespace_id, retriever_id=retriever.retriever_id, statuses=["completed"], limit=HISTORY
    )
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        for name, stats in ((record.detail.get("stage_statistics") or {}).get("stages") or {}).items():
            by_stage.setdefault(name, []).append(stats)
    return by_stage


def _rule_output(stage: PlannedStage, count_in: int, held: int) -> tuple[int, int]:
    """(estimated input, estimated output) of a stage without history."""
    params = stage.parameters
    if stage.stage_id == "feature_search":
        top = params.get("final_top_k", 25)
        return 0, min(top if isinstance(top, int) else 25, held)
    if stage.stage_id == "limit" and isinstance(params.get("limit"), int):
        return count_in, min(count_in, params["limit"])
    if stage.stage_id == "rerank" and isinstance(params.get("top_k"), int):
        return count_in, min(count_in, params["top_k"])
    return count_in, count_in


def explain(
    storage: Storage, namespace: Namespace, retriever: Retriever, optimizer: bool = True
) -> dict[str, Any]:
    collections: list[Collection] = [
        c for cid in retriever.collection_ids if (c := storage.get_collection(namespace.namespace_id, cid))
    ]
    held = sum(storage.count_documents(c) for c in collections)
    plan = stored_plan(retriever.stages)
    config = config_of(retriever.cache_config)
    optimized = (
        optimize(plan, cached_stages=frozenset(config.cache_stage_names) if config.enabled else frozenset())
        if optimizer
        else Optimized(plan, None)
    )
    history = _history(storage, namespace, retriever)
    steps: list[dict[str, Any]] = []
    flowing = 0
    for stage in plan.stages:
        past = history.get(stage.name)
        if past:
            count_in = int(median(s.get("input_count", 0) for s in past))
            count_out = int(median(s.get("output_count", 0) for s in past))
            duration = float(median(s.get("duration_ms", 0.0) for s in past))
            credits = float(median((s.get("metadata") or {}).get("credits", 0.0) for s in past))
            notes = [f"from {len(past)} recorded run(s)"]
        else:
            count_in, count_out = _rule_output(stage, flowing, held)
            searches = stage.parameters.get("searches") if stage.stage_id == "feature_search" else None
            units = len(searches) if isinstance(searches, list) else 1
            credits = stage_credits(
                stage.stage_id, units, count_out if stage.stage_id == "feature_search" else count_in
            )
            duration = DEFAULT_DURATION_MS.get(stage.stage_id, 1.0)
            notes = ["no recorded runs: estimated by rule"]
        steps.append(
            {
                "stage_index": stage.index,
                "stage_name": stage.name,
                "stage_type": stage.stage_type,
                "stage_id": stage.stage_id,
                "estimated_input": count_in,
                "estimated_output": count_out,
                "estimated_efficiency": round(count_out / count_in, 4) if count_in else 0.0,
                "estimated_cost_credits": round(credits, 6),
                "estimated_duration_ms": round(duration, 3),
                "cache_likely": False,
                "optimization_notes": notes,
                "warnings": [],
            }
        )
        flowing = count_out
    slowest = max((s["estimated_duration_ms"] for s in steps), default=0.0)
    return {
        "retriever_id": retriever.retriever_id,
        "retriever_name": retriever.retriever_name,
        "estimated_cost": {
            "total_credits": round(sum(s["estimated_cost_credits"] for s in steps), 6),
            "total_duration_ms": round(sum(s["estimated_duration_ms"] for s in steps), 3),
        },
        "execution_plan": steps,
        "optimization_suggestions": [],
        "total_estimated_stages": len(steps),
        "bottleneck_stages": [
            s["stage_name"] for s in steps if slowest and s["estimated_duration_ms"] >= 0.8 * slowest
        ],
        "optimization_level": "rules" if optimized.applied else "none",
        "optimization_applied": optimized.applied,
        "optimization_summary": optimized.summary,
        "optimized_plan": [
            {
                "stage_name": s.name,
                "stage_id": s.stage_id,
                "absorbed": [
                    {"stage_name": a.name, "stage_id": a.stage_id, "rule": rule} for rule, a in s.absorbed
                ],
                "post_filters_by_storage": s.post_filters_pushed,
            }
            for s in optimized.plan.stages
        ],
        "warnings": unindexed_field_warnings(plan, None, collections),
        "based_on_executions": max((len(v) for v in history.values()), default=0),
    }


def _ratio(actual: float, estimated: float) -> float | None:
    """actual / estimated (1.0 when both are 0; None when only the estimate is 0: no finite ratio)."""
    if estimated:
        return round(actual / estimated, 4)
    return 1.0 if not actual else None


def analyze(planned: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """EXPLAIN ANALYZE for retrieval: the plan's estimates (``explain``) beside what the execution
    ``result`` actually did, per stage; ``misestimate`` is actual / estimated for documents out, time
    and credits, and ``worst_misestimate`` names the stage and measure furthest from 1 either way."""
    stats = (result.get("stage_statistics") or {}).get("stages") or {}
    worst: dict[str, Any] | None = None
    for step in planned["execution_plan"]:
        ran = stats.get(step["stage_name"])
        if ran is None:  # stopped before it (budget, failure)
            step["actual"] = None
            step["misestimate"] = None
            continue
        credits = float((ran.get("metadata") or {}).get("credits", 0.0))
        step["actual"] = {
            "input": ran["input_count"],
            "output": ran["output_count"],
            "duration_ms": ran["duration_ms"],
            "credits": credits,
            "stage_cache_hit": ran["stage_cache_hit"],
            "error": ran["error"],
            "optimized": (ran.get("metadata") or {}).get("optimized"),
        }
        step["misestimate"] = {
            "output": _ratio(ran["output_count"], step["estimated_output"]),
            "duration": _ratio(ran["duration_ms"], step["estimated_duration_ms"]),
            "credits": _ratio(credits, step["estimated_cost_credits"]),
        }
        for measure, ratio in step["misestimate"].items():
            if ratio is None or ratio <= 0:
                continue
            factor = max(ratio, 1 / ratio)
            if worst is None or factor > worst["factor"]:
                worst = {"stage_name": step["stage_name"], "measure": measure, "ratio": ratio,
                         "factor": round(factor, 4)}  # fmt: skip
    planned["analyzed"] = True
    planned["execution_id"] = result.get("execution_id")
    planned["status"] = result.get("status")
    planned["error"] = result.get("error")
    planned["actual_total"] = {
        "duration_ms": (result.get("stage_statistics") or {}).get("total_time_ms"),
        "credits": (result.get("stage_statistics") or {}).get("credits_used"),
        "returned": result.get("total_returned"),
    }
    planned["worst_misestimate"] = worst
    return planned


def keep_analysis(
    storage: Storage, recorder: Recorder, namespace: Namespace, analysis: dict[str, Any]
) -> None:
    """Keep an analysis in the record of the execution it ran (``explain_analyze``), so the execution
    page shows the estimates beside the actual figures later."""
    record = storage.get_execution(namespace.namespace_id, str(analysis.get("execution_id")))
    if record is None:
        return
    record.detail["explain_analyze"] = {
        "stages": [{k: step.get(k) for k in ANALYZED_FIELDS} for step in analysis["execution_plan"]],
        "worst_misestimate": analysis.get("worst_misestimate"),
        "based_on_executions": analysis.get("based_on_executions"),
    }
    recorder.save(record)


def check_request(retriever: Retriever, request: dict[str, Any]) -> None:
    """422 for what an execution of ``retriever`` would refuse in ``request`` (inputs, filters, page,
    budget), so that explain without ``analyze`` accepts nothing an execution would not."""
    validate_inputs(retriever.input_schema, request.get("inputs"))
    if request.get("filters"):
        parse_filter(request["filters"], ("body", "filters"))
    parse_page(request)
    merge_budgets(retriever.budget_limits, request.get("budget_limits"))
