"""What the execution page shows, built from one record: the summary strip, the waterfall and funnel, the
results with their score lineage, and the plan before and after the optimizer. Pure functions over the
record's detail (``service.executions.execution_detail``): no storage here."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from siftline.api.ui.lineage import LineageView, lineage_view
from siftline.api.ui.render import NONE, as_dict, credits, ms, num, pct
from siftline.api.ui.waterfall import BUDGET_PREFIX, FunnelRow, Waterfall, funnel, value_text, waterfall
from siftline.service.inspector import PlannedStages

TIMES, DIVIDED = "\u00d7", "\u00f7"  # the signs of a mis-estimate ratio

RESULT_FIELDS = 3  # payload fields shown per result row
_NOT_PAYLOAD = {"document_id", "collection_id", "score", "_internal", "lineage", "vectors", "features"}
_FIELD_MAX = 80
LIVE = ("pending", "processing")


@dataclass(frozen=True)
class Fact:
    label: str
    value: str
    note: str = ""
    tone: str = ""  # "" | good | warn | bad
    href: str | None = None


@dataclass(frozen=True)
class ResultRow:
    rank: int
    document_id: str
    collection: str
    score: Any
    fields: list[tuple[str, str]]
    lineage: LineageView | None


@dataclass(frozen=True)
class PlanStage:
    index: int
    name: str
    stage_id: str
    params: str
    note: str = ""


@dataclass(frozen=True)
class ProfileStage:
    """One stage of the executed plan in the record's ``explain_plan`` (runs with ``explain: true``)."""

    name: str
    stage_id: str
    absorbed: list[str]
    duration_ms: float
    share: float  # of the total time
    flow: str
    credits: str
    cache_hit: bool
    error: str | None


@dataclass(frozen=True)
class Profile:
    stages: list[ProfileStage]
    total_ms: float
    credits: str


@dataclass(frozen=True)
class Estimate:
    """One measure of an analyzed stage: the estimate, the actual figure and how far apart they were."""

    estimated: str
    actual: str
    ratio: str  # actual / estimated: times 2.5, or divided by 4
    off: bool  # a factor of 2 or more either way


@dataclass(frozen=True)
class AnalyzedStage:
    name: str
    stage_id: str
    ran: bool
    output: Estimate
    duration: Estimate
    credits: Estimate


@dataclass(frozen=True)
class Analysis:
    """The record's ``explain_analyze`` (``POST …/execute/explain`` with ``analyze: true``)."""

    stages: list[AnalyzedStage]
    worst: str | None
    based_on: int


@dataclass
class ExecutionView:
    execution_id: str
    status: str
    mode: str
    retriever_id: str | None
    retriever_name: str | None
    created_at: str | None
    completed_at: str | None
    query_summary: str | None
    error: str | None
    replay_of: str | None
    live: bool
    progress: tuple[int, int]  # stages completed, total
    current_stage: str | None
    facts: list[Fact]
    waterfall: Waterfall
    funnel: list[FunnelRow]
    results: list[ResultRow]
    result_fields: list[str]
    documents_retained: bool
    total_returned: int
    has_lineage: bool
    plan_before: list[PlanStage] | None
    plan_source: PlannedStages
    plan_after: list[PlanStage]
    rewrites: list[dict[str, Any]]
    optimization: list[tuple[str, str]]
    notes: dict[str, list[str]] = field(default_factory=dict)
    profile: Profile | None = None
    analysis: Analysis | None = None


def _stage_id(stage: dict[str, Any]) -> str:
    config = as_dict(stage.get("config"))
    return str(stage.get("stage_id") or config.get("stage_id") or "")


def _params(stage: dict[str, Any]) -> Any:
    config = as_dict(stage.get("config"))
    return config.get("parameters", stage.get("parameters"))


def elapsed_ms(detail: dict[str, Any], now: datetime | None = None) -> float | None:
    """Time since a running execution started (None once it ended or without a start time)."""
    if detail.get("status") not in LIVE or not detail.get("created_at"):
        return None
    try:
        started = datetime.fromisoformat(str(detail["created_at"]).replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, ((now or datetime.now(UTC)) - started).total_seconds() * 1000)


def _facts(detail: dict[str, Any], flow: Waterfall) -> list[Fact]:
    stats = detail.get("stage_statistics") or {}
    budget = detail.get("budget") or {}
    ran = [r for r in flow.rows if r.state == "done"]
    facts = [Fact("Total time", ms(detail.get("duration_ms") or stats.get("total_time_ms") or flow.total_ms))]
    slowest = max(ran, key=lambda r: r.duration_ms, default=None)
    if slowest is not None and flow.total_ms > 0:
        share = slowest.duration_ms / flow.total_ms
        tone = "warn" if share >= 0.5 and len(ran) > 1 else ""
        facts.append(Fact("Slowest stage", slowest.name, f"{ms(slowest.duration_ms)} · {pct(share)}", tone))
    drops = [(r.input_count - r.output_count, r) for r in ran if r.input_count and r.output_count is not None]
    biggest = max(drops, key=lambda d: d[0], default=None)
    if biggest is not None and biggest[0] > 0:
        row = biggest[1]
        note = f"{row.input_count:,} → {row.output_count:,} (\u2212{biggest[0] / (row.input_count or 1):.0%})"
        facts.append(Fact("Largest drop", row.name, note))
    used = budget.get("credits_used", detail.get("credits_used"))
    limits = []
    if budget.get("max_credits") is not None:
        limits.append(f"of {credits(budget['max_credits'])} credits")
    if budget.get("max_time_ms") is not None:
        limits.append(f"{ms(budget.get('time_used_ms'))} of {ms(budget['max_time_ms'])}")
    stopped = str(detail.get("error") or "").startswith(BUDGET_PREFIX)
    facts.append(Fact("Credits", credits(used), " · ".join(limits) or "no budget", "bad" if stopped else ""))
    facts.append(_cache_fact(detail, ran))
    warnings = detail.get("warnings") or []
    facts.append(
        Fact("Warnings", str(len(warnings)), "", "warn" if warnings else "", "#notes" if warnings else None)
    )
    summary = detail.get("optimization_summary") or {}
    rules = ", ".join(summary.get("rules_applied") or []) if detail.get("optimization_applied") else ""
    facts.append(
        Fact("Optimizer", "applied" if rules else "no rewrite", rules, "good" if rules else "", "#plan")
    )
    learned = detail.get("learned_fusion_context")
    if isinstance(learned, dict):
        weights = learned.get("sampled_weights")
        facts.append(Fact("Learned fusion", str(learned.get("context_level") or "on"), value_text(weights)))
    else:
        facts.append(Fact("Learned fusion", "off"))
    return facts


def _cache_fact(detail: dict[str, Any], ran: list[Any]) -> Fact:
    hits = sum(1 for r in ran if any(m.kind == "cache" for m in r.marks))
    if detail.get("cache_hit") or detail.get("cached_at"):
        origin = detail.get("cached_from_execution_id")
        return Fact("Cache", "hit", f"from {origin}" if origin else "result cache", "good")
    status = str(detail.get("cache_status") or "off")
    note = (
        f"{hits} stage hit{'s' if hits != 1 else ''}"
        if hits
        else str(detail.get("cache_bypass_reason") or "")
    )
    return Fact("Cache", status, note, "good" if hits else "")


def result_fields(documents: list[dict[str, Any]]) -> list[str]:
    """The payload fields most documents have (first seen first), at most RESULT_FIELDS."""
    counts: Counter[str] = Counter()
    for doc in documents[:100]:
        counts.update(k for k in doc if k not in _NOT_PAYLOAD)
    order = {k: i for i, k in enumerate(counts)}
    best = sorted(counts, key=lambda k: (-counts[k], order[k]))[:RESULT_FIELDS]
    return sorted(best, key=lambda k: order[k])


def _cell(value: Any) -> str:
    text = value_text(value)
    return text if len(text) <= _FIELD_MAX else text[: _FIELD_MAX - 1] + "…"


def results(
    documents: list[dict[str, Any]], collections: dict[str, str]
) -> tuple[list[ResultRow], list[str]]:
    fields = result_fields(documents)
    rows = [
        ResultRow(
            rank=i + 1,
            document_id=str(doc.get("document_id", "")),
            collection=collections.get(str(doc.get("collection_id")), str(doc.get("collection_id") or "")),
            score=doc.get("score"),
            fields=[(f, _cell(doc[f])) if f in doc else (f, "") for f in fields],
            lineage=lineage_view(doc.get("lineage")),
        )
        for i, doc in enumerate(documents)
    ]
    return rows, fields


def _plan_after(flow: Waterfall) -> list[PlanStage]:
    out = []
    for row in flow.rows:
        if row.merged_into and row.merge_rule == "eliminate_redundant_sorts":
            note = f"eliminated ({row.merge_rule})"
        elif row.merged_into:
            note = f"run inside {row.merged_into} ({row.merge_rule})"
        else:
            note = {"running": "running", "stopped": "stopped here"}.get(row.state, "")
        out.append(PlanStage(row.index, row.name, row.stage_id, "", note))
    return out


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def profile(explain_plan: Any) -> Profile | None:
    """The executed plan of ``explain_plan``: each stage that ran as one with those folded into it (their
    time is inside its own), documents from its input to the last folded stage's output, credits summed."""
    plan = as_dict(explain_plan)
    stats = {str(s.get("stage_name")): s for s in plan.get("stages") or [] if isinstance(s, dict)}
    executed = [e for e in plan.get("executed_plan") or [] if isinstance(e, dict)]
    if not executed:
        return None
    total = _number(plan.get("total_time_ms"))
    rows = []
    for step in executed:
        name, absorbed = str(step.get("stage_name")), [str(a) for a in step.get("absorbed") or []]
        parts = [as_dict(stats.get(n)) for n in (name, *absorbed)]
        own = parts[0]
        duration = _number(own.get("duration_ms"))
        rows.append(
            ProfileStage(
                name=name,
                stage_id=str(step.get("stage_id") or ""),
                absorbed=absorbed,
                duration_ms=duration,
                share=round(min(1.0, duration / total), 4) if total > 0 else 0.0,
                flow=f"{num(own.get('input_count'))} → {num(parts[-1].get('output_count'))}" if own else "",
                credits=credits(sum(_number(p.get("credits")) for p in parts)),
                cache_hit=bool(own.get("stage_cache_hit")),
                error=next((str(p["error"]) for p in parts if p.get("error")), None),
            )
        )
    return Profile(rows, total, credits(plan.get("credits_used")))


def _estimate(estimated: Any, actual: Any, ratio: Any, show: Any) -> Estimate:
    if not isinstance(ratio, int | float) or isinstance(ratio, bool):
        shown = NONE if actual is None else "no estimate"
        return Estimate(show(estimated), show(actual), shown, False)
    factor = max(ratio, 1 / ratio) if ratio > 0 else float("inf")
    text = (
        f"{TIMES}1"
        if ratio == 1
        else (f"{TIMES}{ratio:.3g}" if ratio > 1 else (f"{DIVIDED}{1 / ratio:.3g}" if ratio else f"{TIMES}0"))
    )
    return Estimate(show(estimated), show(actual), text, factor >= 2)


def analysis(kept: Any) -> Analysis | None:
    """Estimate beside actual per stage, from the record's ``explain_analyze``."""
    data = as_dict(kept)
    steps = [as_dict(s) for s in data.get("stages") or [] if isinstance(s, dict)]
    if not steps:
        return None
    rows = []
    for step in steps:
        actual, ratios = as_dict(step.get("actual")), as_dict(step.get("misestimate"))
        rows.append(
            AnalyzedStage(
                name=str(step.get("stage_name")),
                stage_id=str(step.get("stage_id") or ""),
                ran=bool(actual),
                output=_estimate(
                    step.get("estimated_output"), actual.get("output"), ratios.get("output"), num
                ),
                duration=_estimate(
                    step.get("estimated_duration_ms"), actual.get("duration_ms"), ratios.get("duration"), ms
                ),
                credits=_estimate(
                    step.get("estimated_cost_credits"), actual.get("credits"), ratios.get("credits"), credits
                ),
            )
        )
    worst = as_dict(data.get("worst_misestimate"))
    worst_text = (
        f"{worst.get('stage_name')}: {worst.get('measure')} off by {TIMES}{worst.get('factor')}"
        if worst
        else None
    )
    return Analysis(rows, worst_text, int(_number(data.get("based_on_executions"))))


def _notes(detail: dict[str, Any]) -> dict[str, list[str]]:
    notes: dict[str, list[str]] = {}
    for key in ("warnings", "degraded", "limits"):
        items = detail.get(key) or []
        if items:
            notes[key] = [i if isinstance(i, str) else value_text(i) for i in items]
    interpretation = detail.get("interpretation") or {}
    found = [f"{k}: {value_text(v)}" for k, v in interpretation.items() if v]
    if found:
        notes["interpretation"] = found
    return notes


def execution_view(
    detail: dict[str, Any],
    *,
    mode: str,
    planned: PlannedStages,
    collections: dict[str, str],
    retriever_name: str | None,
    now: datetime | None = None,
) -> ExecutionView:
    """Everything the execution page shows, from ``executions.execution_detail`` of the record."""
    stages = planned.stages or []
    stage_ids = {str(s.get("stage_name")): _stage_id(s) for s in stages}
    flow = waterfall(detail, stage_ids, elapsed_ms(detail, now))
    documents = detail.get("documents") or []
    rows, fields = results(documents, collections)
    summary = detail.get("optimization_summary") or {}
    return ExecutionView(
        execution_id=str(detail.get("execution_id")),
        status=str(detail.get("status")),
        mode=mode,
        retriever_id=detail.get("retriever_id") or None,
        retriever_name=retriever_name,
        created_at=detail.get("created_at"),
        completed_at=detail.get("completed_at"),
        query_summary=detail.get("query_summary"),
        error=detail.get("error"),
        replay_of=detail.get("replay_of"),
        live=detail.get("status") in LIVE,
        progress=(int(detail.get("stages_completed") or 0), int(detail.get("total_stages") or 0)),
        current_stage=detail.get("current_stage"),
        facts=_facts(detail, flow),
        waterfall=flow,
        funnel=funnel(flow.rows),
        results=rows,
        result_fields=fields,
        documents_retained=bool(detail.get("documents_retained", True)),
        total_returned=int(detail.get("total_returned") or len(documents)),
        has_lineage=any(r.lineage is not None for r in rows),
        plan_before=[
            PlanStage(i, str(s.get("stage_name") or f"stage {i}"), _stage_id(s), value_text(_params(s)))
            for i, s in enumerate(stages)
        ]
        if planned.stages is not None
        else None,
        plan_source=planned,
        plan_after=_plan_after(flow),
        rewrites=[r for r in summary.get("rewrites") or [] if isinstance(r, dict)],
        optimization=[(k, value_text(v)) for k, v in summary.items() if k != "rewrites"],
        notes=_notes(detail),
        profile=profile(detail.get("explain_plan")),
        analysis=analysis(detail.get("explain_analyze")),
    )
