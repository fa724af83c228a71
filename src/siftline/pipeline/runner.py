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
from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.filters import Node, and_all, bind, matcher, parse_filter
from siftline.pipeline.plan import Plan, PlannedStage, validate_params

log = logging.getLogger("siftline.runner")

CREDITS_EXCEEDED = "Budget exceeded: Maximum credits limit reached"
TIME_EXCEEDED = "Budget exceeded: Maximum time limit reached"

Event = Callable[[str, dict[str, Any]], None]


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


def _run_stage(
    stage: PlannedStage, ctx: ExecutionContext, candidates: list[Candidate]
) -> tuple[list[Candidate], float]:
    """Run one stage; returns its output and the credits it cost."""
    cls = stage.stage_class
    loc: list[str | int] = ["stages", stage.index, "config", "parameters"]
    params = validate_params(cls, stage.parameters, ctx.template_context(), loc)
    assert params is not None
    instance = cls(stage.name, params)
    searches = bool(getattr(cls, "accepts_pre_filter", False))
    budget = ctx.budget
    if budget.max_credits is not None:  # the most this stage can cost must fit what is left
        estimate = stage_credits(stage.stage_id, instance.units(), instance.max_documents(ctx, candidates))
        if round(budget.credits_used + estimate, 6) > budget.max_credits:
            raise StageFailure(CREDITS_EXCEEDED, budget=True)
    pre = _bound(stage.pre_filters, ctx, "pre_filters")
    post = _bound(stage.post_filters, ctx, "post_filters")
    ctx.metadata = {}
    ctx.search_filter = and_all(ctx.filters, pre) if searches else None
    if pre is not None and not searches:
        keep = matcher(pre)
        candidates = [c for c in candidates if keep(c.view())]
    out = instance.run(ctx, candidates)
    if post is not None:
        keep = matcher(post)
        out = [c for c in out if keep(c.view())]
    return out, stage_credits(stage.stage_id, instance.units(), len(out) if searches else len(candidates))


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
        emit("stage_start", info)
        started = time.perf_counter()
        try:
            out, charged = _run_stage(stage, ctx, candidates)
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
        budget.credits_used += charged
        metadata = dict(ctx.metadata)
        facets = metadata.get("facets", facets)
        metadata["credits"] = charged
        stats[stage.name] = _stats(len(candidates), len(out), duration, metadata, None)
        ctx.stage_outputs[stage.name] = [c.view() for c in out]
        candidates = out
        emit("stage_complete", {**info, **stats[stage.name]})
    return RunResult(
        "completed", candidates, stats, ctx.budget.elapsed_ms, warnings=ctx.warnings, facets=facets
    )


def _stats(
    input_count: int, output_count: int, duration_ms: float, metadata: dict[str, Any], error: str | None
) -> dict[str, Any]:
    return {
        "input_count": input_count,
        "output_count": output_count,
        "duration_ms": round(duration_ms, 3),
        "efficiency": round(output_count / input_count, 6) if input_count else 0.0,
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
