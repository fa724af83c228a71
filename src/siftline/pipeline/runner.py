"""Runs a plan: renders each stage's parameters, checks the budget, times and counts every stage.

The runner never raises for a stage's failure: it returns a ``RunResult`` whose ``status`` is
``failed`` with a human-readable ``error`` naming the stage, and the statistics of the stages that
ran. A budget (``max_credits``, ``max_time_ms``) stops the run before the stage that would exceed it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from siftline.credits import stage_credits
from siftline.errors import SiftlineError
from siftline.filters import Node, and_all, bind, matcher, parse_filter
from siftline.pipeline import lineage
from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import CachedStage, ExecutionContext
from siftline.pipeline.plan import Plan, PlannedStage, validate_params
from siftline.pipeline.stages.base import Stage

log = logging.getLogger("siftline.runner")

CREDITS_EXCEEDED = "Budget exceeded: Maximum credits limit reached"
TIME_EXCEEDED = "Budget exceeded: Maximum time limit reached"

Event = Callable[[str, dict[str, Any]], None]
ELIMINATE_SORT = "eliminate_redundant_sorts"
MERGE_FILTERS = "merge_consecutive_filters"
SORTS = ("sort_relevance", "sort_attribute")


@dataclass
class RunResult:
    status: str  # "completed" | "failed"
    documents: list[Candidate]
    stages: dict[str, dict[str, Any]]
    total_time_ms: float
    error: str | None = None
    failed_stage: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    facets: list[dict[str, Any]] | None = None

    def statistics(self, credits_used: float) -> dict[str, Any]:
        return {
            "stages": self.stages,
            "total_time_ms": round(self.total_time_ms, 3),
            "credits_used": credits_used,
        }


class _StoppedAt(Exception):
    """The budget stopped the run at a stage the optimizer folded away (as it would have stopped it there)."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__(info["stage_name"])
        self.info = info


class StageFailure(Exception):
    def __init__(self, message: str, budget: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.budget = budget


def _bound(raw: dict[str, Any] | None, ctx: ExecutionContext, where: str) -> Node | None:
    if raw is None:
        return None
    node, relaxed = bind(parse_filter(raw, (where,)), ctx.inputs)
    ctx.relaxed += [r.as_dict(where) for r in relaxed]
    for r in relaxed:
        ctx.warnings.append(
            f"Filter condition on '{r.field}' ({r.operator}) was relaxed: input '{r.input_path}' was not provided."
        )
    return node


def _instance(stage: PlannedStage, ctx: ExecutionContext) -> Stage[Any]:
    loc: list[str | int] = ["stages", stage.index, "config", "parameters"]
    params = validate_params(stage.stage_class, stage.parameters, ctx.template_context(), loc)
    assert params is not None
    return stage.stage_class(stage.name, params)


@dataclass
class _Ran:
    out: list[Candidate]
    credits: float
    cached_at: float | None = None  # served from the stage cache


def _run_stage(stage: PlannedStage, ctx: ExecutionContext, candidates: list[Candidate]) -> _Ran:
    """Run one stage (or serve it from the stage cache); its output and the credits it cost."""
    instance = _instance(stage, ctx)
    searches = bool(getattr(stage.stage_class, "accepts_pre_filter", False))
    cache = (
        ctx.stage_cache
        if ctx.stage_cache is not None and ctx.stage_cache.wanted(stage.name, stage.cache_behavior)
        else None
    )
    key = cache.key(ctx, stage, instance.params.model_dump(mode="json"), candidates) if cache else None
    if cache is not None and key is not None and not ctx.skip_cache:
        hit = cache.lookup(key)
        if hit is not None:
            ctx.metadata = {**hit.metadata, "stage_cache": "hit"}
            ctx.warnings += hit.warnings
            ctx.limits += hit.limits
            return _Ran(hit.candidates, 0.0, hit.cached_at)
    budget = ctx.budget
    if budget.max_credits is not None:  # the most this stage can cost must fit what is left
        estimate = stage_credits(stage.stage_id, instance.units(), instance.max_documents(ctx, candidates))
        if round(budget.credits_used + estimate, 6) > budget.max_credits:
            raise StageFailure(CREDITS_EXCEEDED, budget=True)
    pre = _bound(stage.pre_filters, ctx, "pre_filters")
    post = _bound(stage.post_filters, ctx, "post_filters")
    ctx.metadata = {}
    ctx.search_filter = and_all(ctx.filters, pre) if searches else None
    if stage.stage_id not in SORTS:  # a sort's absorbed stages are the sorts dropped before it
        ctx.absorbed = [(rule, planned, _instance(planned, ctx)) for rule, planned in stage.absorbed]
    ctx.absorbed_runs = []
    ctx.pushed_post_filter = post if stage.post_filters_pushed else None
    ctx.stage_cache_hit = False
    ctx.cache_behavior = stage.cache_behavior
    warned, limited = len(ctx.warnings), len(ctx.limits)
    if pre is not None and not searches:
        keep = matcher(pre)
        candidates = [c for c in candidates if keep(c.view())]
    try:
        out = instance.run(ctx, candidates)
    finally:
        ctx.absorbed, ctx.pushed_post_filter = [], None
    if post is not None and not stage.post_filters_pushed:
        keep = matcher(post)
        out = [c for c in out if keep(c.view())]
    if cache is not None and key is not None and not ctx.absorbed_runs:
        value = CachedStage(out, dict(ctx.metadata), ctx.warnings[warned:], ctx.limits[limited:], time.time())
        cache.store(key, stage.name, stage.cache_ttl_seconds, value)
    own = _absorbed_output_count(ctx)  # a search pays for its own output, not what absorbed stages kept
    charged = (len(out) if own is None else own) if searches else len(candidates)
    return _Ran(out, stage_credits(stage.stage_id, instance.units(), charged))


def _eliminated_before(stage: PlannedStage, ctx: ExecutionContext, candidates: list[Candidate],
                       stats: dict[str, dict[str, Any]], emit: Event) -> list[Candidate]:  # fmt: skip
    """Sorts the optimizer dropped before ``stage`` (a sort whose order the next sort rebuilds): skipped
    when the candidates are distinct documents, else run as written (the only case they matter)."""
    if stage.stage_id not in SORTS:
        return candidates
    for _, planned in stage.absorbed:
        info = {"stage_name": planned.name, "stage_id": planned.stage_id, "stage_index": planned.index}
        emit("stage_start", info)
        credits = stage_credits(planned.stage_id, 1, len(candidates))
        budget = ctx.budget
        if budget.max_credits is not None and round(budget.credits_used + credits, 6) > budget.max_credits:
            raise _StoppedAt(info)
        started = time.perf_counter()
        if len({c.key for c in candidates}) == len(candidates):
            metadata: dict[str, Any] = {
                "optimized": {"rule": ELIMINATE_SORT, "eliminated": True, "merged_into": stage.name}
            }
            out = candidates
        else:
            ctx.metadata = {}
            out = _instance(planned, ctx).run(ctx, candidates)
            metadata = {
                **ctx.metadata,
                "optimized": {"rule": ELIMINATE_SORT, "eliminated": False, "merged_into": stage.name},
            }
        ctx.budget.credits_used += credits
        metadata["credits"] = credits
        stats[planned.name] = _stats(
            len(candidates), len(out), (time.perf_counter() - started) * 1000, metadata, None
        )
        emit("stage_complete", {**info, **stats[planned.name]})
        candidates = out
    return candidates


def _absorbed_stats(
    ctx: ExecutionContext, stats: dict[str, dict[str, Any]], emit: Event
) -> dict[str, Any] | None:
    """Statistics and credits of the stages run inside the one that just ran, in pipeline order;
    a budget stop at one of them as if it had run alone (returns its stage info)."""
    for run in ctx.absorbed_runs:
        credits = stage_credits(run.stage_id, 1, run.input_count)
        budget = ctx.budget
        info = {"stage_name": run.name, "stage_id": run.stage_id, "stage_index": run.stage_index}
        emit("stage_start", info)
        if budget.max_credits is not None and round(budget.credits_used + credits, 6) > budget.max_credits:
            return info
        budget.credits_used += credits
        metadata = {
            **run.metadata,
            "credits": credits,
            "optimized": {"rule": run.rule, "merged_into": run.merged_into},
        }
        stats[run.name] = _stats(run.input_count, run.output_count, run.duration_ms, metadata, None)
        emit("stage_complete", {**info, **stats[run.name]})
    return None


def run_plan(plan: Plan, ctx: ExecutionContext, on_event: Event | None = None) -> RunResult:
    emit = on_event or (lambda kind, data: None)
    candidates: list[Candidate] = []
    stats: dict[str, dict[str, Any]] = {}
    facets: list[dict[str, Any]] | None = None
    for stage in plan.stages:
        budget = ctx.budget
        info = {"stage_name": stage.name, "stage_id": stage.stage_id, "stage_index": stage.index}
        if budget.max_time_ms is not None and budget.elapsed_ms > budget.max_time_ms:
            return _failed(ctx, stats, TIME_EXCEEDED, info, facets)
        try:
            candidates = _eliminated_before(stage, ctx, candidates, stats, emit)
        except _StoppedAt as stop:
            return _failed(ctx, stats, CREDITS_EXCEEDED, stop.info, facets)
        except Exception as exc:
            return _failed(ctx, stats, _message(stage, exc), info, facets)
        emit("stage_start", info)
        started = time.perf_counter()
        try:
            ran = _run_stage(stage, ctx, candidates)
        except StageFailure as exc:
            return _failed(ctx, stats, exc.message, info, facets)
        except Exception as exc:
            message = exc.message if isinstance(exc, SiftlineError) else "internal error (see the server log)"
            if not isinstance(exc, SiftlineError):
                log.exception("stage %s (%s) failed", stage.name, stage.stage_id)
            duration = (time.perf_counter() - started) * 1000
            if stage.on_error == "skip":
                stats[stage.name] = _stats(
                    len(candidates), len(candidates), duration, {"skipped": True}, message
                )
                ctx.warnings.append(
                    f"Stage '{stage.name}' failed and was skipped (on_error: skip): {message}"
                )
                ctx.degraded.append(
                    {
                        "resource": "stage",
                        "id": stage.stage_id,
                        "reason": message,
                        "next_step": "fix the stage's parameters or inputs; its input was passed on unchanged",
                        "stage": stage.name,
                    }
                )
                emit("stage_error", {**info, "error": message, "skipped": True})
                continue
            error = f"Stage '{stage.name}' ({stage.stage_id}, index {stage.index}) failed: {message}"
            stats[stage.name] = _stats(len(candidates), 0, duration, dict(ctx.metadata), message)
            emit("stage_error", {**info, "error": error})
            return _failed(ctx, stats, error, info, facets)
        duration = (time.perf_counter() - started) * 1000
        out = lineage.trace(stage.name, stage.stage_id, candidates, ran.out) if ctx.explain else ran.out
        budget.credits_used += ran.credits
        metadata = dict(ctx.metadata)
        facets = metadata.get("facets", facets)
        metadata["credits"] = ran.credits
        stats[stage.name] = _stats(len(candidates), len(out), duration, metadata, None)
        if ran.cached_at is not None or ctx.stage_cache_hit:
            stats[stage.name].update({"stage_cache_hit": True, "cached_at": ran.cached_at})
        absorbed_out = _absorbed_output_count(ctx)
        if absorbed_out is not None:  # the stage's own output, before what it absorbed
            stats[stage.name].update(
                {"output_count": absorbed_out, "efficiency": _efficiency(absorbed_out, len(candidates))}
            )
        ctx.stage_outputs[stage.name] = [c.view() for c in out]
        candidates = out
        emit("stage_complete", {**info, **stats[stage.name]})
        stopped = _absorbed_stats(ctx, stats, emit) if ran.cached_at is None else None
        if stopped is not None:
            return _failed(ctx, stats, CREDITS_EXCEEDED, stopped, facets)
    return RunResult(
        "completed", candidates, stats, ctx.budget.elapsed_ms, warnings=ctx.warnings, facets=facets
    )


def _absorbed_output_count(ctx: ExecutionContext) -> int | None:
    """The running stage's own output count when it ran absorbed stages (the first one's input)."""
    return ctx.absorbed_runs[0].input_count if ctx.absorbed_runs else None


def _efficiency(count_out: int, count_in: int) -> float:
    return round(count_out / count_in, 6) if count_in else 0.0


def _message(stage: PlannedStage, exc: Exception) -> str:
    message = exc.message if isinstance(exc, SiftlineError) else "internal error (see the server log)"
    return f"Stage '{stage.name}' ({stage.stage_id}, index {stage.index}) failed: {message}"


def _stats(
    input_count: int, output_count: int, duration_ms: float, metadata: dict[str, Any], error: str | None
) -> dict[str, Any]:
    return {
        "input_count": input_count,
        "output_count": output_count,
        "duration_ms": round(duration_ms, 3),
        "efficiency": _efficiency(output_count, input_count),
        "stage_cache_hit": False,
        "cached_at": None,
        "error": error,
        "metadata": metadata,
    }


def _failed(
    ctx: ExecutionContext,
    stats: dict[str, dict[str, Any]],
    error: str,
    stage: dict[str, Any],
    facets: list[dict[str, Any]] | None,
) -> RunResult:
    return RunResult(
        "failed",
        [],
        stats,
        ctx.budget.elapsed_ms,
        error=error,
        failed_stage=stage,
        warnings=ctx.warnings,
        facets=facets,
    )
