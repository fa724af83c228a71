"""The optimizer: rewrite rules that keep an execution's results identical, applied before the run.

Each rule is one small function over the list of planned stages; it returns the new list and notes
what it changed (``Rewrite``). A stage a rule folds into another is kept on that stage
(``PlannedStage.absorbed``) and still reports its own statistics under its own name, with
``metadata.optimized`` saying where it went. The rules, in the order they are tried:

* ``eliminate_redundant_sorts`` — a ``sort_relevance`` by score, descending, right after a
  ``feature_search`` with one search (whose output is already in that order: checked at run time
  over ids and scores, and sorted there if not); a sort right before another sort that fully rebuilds
  the order (``sort_attribute``, or ``sort_relevance`` not preserving positions) when the documents
  are distinct (checked at run time; with duplicates it runs as written).
* ``merge_consecutive_filters`` — consecutive ``attribute_filter`` stages become one pass over the
  candidates (each document's view built once), each keeping its own counts.
* ``push_down_filters`` — an ``attribute_filter`` right after a ``feature_search``, and the search's own
  ``post_filters``, are evaluated by storage over the search's candidates (payload indexes, no
  hydration) unless they read ``score``, which only the pipeline knows.
* ``limit_push_down`` — a ``limit`` after a search (and what was pushed into it) slices the ids before
  hydration; when the search is the last stage, only the requested page is hydrated.
* ``group_by_push_down`` — a ``group_by`` right after a search reads only its field from storage and
  hydrates only the members it keeps.

Only plain stages are folded: ``on_error: error``, no templated parameters, no stage filters of their
own (beyond what the rule evaluates), and no cache of their own (``cache_behavior: auto`` and not in
``cache_config.cache_stage_names``). A plan whose templates read earlier stages' outputs (``STAGE``)
is left alone, since folded stages produce no intermediate outputs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import pydantic

import siftline.pipeline.templates as templates
from siftline.errors import ValidationError
from siftline.filters import fields_of, parse_filter
from siftline.pipeline.plan import Plan, PlannedStage
from siftline.pipeline.stages.attribute_filter import AttributeFilterParams

SORTS = ("sort_relevance", "sort_attribute")


@dataclass
class Rewrite:
    rule: str
    stages: list[str]
    into: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "stages": self.stages, "into": self.into, "detail": self.detail}


@dataclass
class Optimizing:
    """What rules may consult, and the rewrites they made."""

    cached_stages: frozenset[str] = frozenset()
    page_window: tuple[int, int] | None = None
    rewrites: list[Rewrite] = field(default_factory=list)


@dataclass(frozen=True)
class Optimized:
    plan: Plan
    summary: dict[str, Any] | None  # None: nothing was rewritten
    page_window: tuple[int, int] | None = None  # hydrate only this slice of the final list

    @property
    def applied(self) -> bool:
        return self.summary is not None


Rule = Callable[[list[PlannedStage], Optimizing], list[PlannedStage]]


# -- eligibility ------------------------------------------------------------------------------------


def _has_template(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return templates.is_template(value)


def _plain(stage: PlannedStage, opt: Optimizing) -> bool:
    """May be folded into another stage."""
    return (
        stage.on_error == "error"
        and stage.cache_behavior == "auto"
        and stage.name not in opt.cached_stages
        and not stage.pre_filters
        and not stage.post_filters
        and not _has_template(stage.parameters)
    )


def _search(stage: PlannedStage, opt: Optimizing) -> bool:
    """A feature_search that can run folded stages over its ids: searches, no grouping of its own."""
    params = stage.parameters
    searches = params.get("searches")
    return (
        stage.stage_id == "feature_search"
        and isinstance(searches, list)
        and bool(searches)
        and not params.get("group_by")
        and stage.on_error == "error"
        and stage.cache_behavior != "aggressive"
        and stage.name not in opt.cached_stages
        # its own post_filters run before anything folded into it: only when storage evaluates them
        and not (stage.post_filters and _reads_score(stage.post_filters))
    )


def _absorbed_ids(stage: PlannedStage) -> list[str]:
    return [s.stage_id for _, s in stage.absorbed]


def _reads_score(raw: dict[str, Any] | None) -> bool:
    try:
        fields = fields_of(parse_filter(raw, ("filters",)))
    except ValidationError:
        return True
    return any(f == "score" or f.startswith("score.") for f in fields)


def _filter_reads_score(stage: PlannedStage) -> bool:
    return _params_read_score(orjson.dumps(stage.parameters, option=orjson.OPT_SORT_KEYS, default=str))


@functools.lru_cache(maxsize=1024)
def _params_read_score(params: bytes) -> bool:
    """Whether attribute_filter parameters read ``score`` (memoised: retrievers run the same ones)."""
    try:
        node = AttributeFilterParams.model_validate(orjson.loads(params)).node
    except pydantic.ValidationError:
        return True
    return any(f == "score" or f.startswith("score.") for f in fields_of(node))


def _fold(into: PlannedStage, rule: str, stage: PlannedStage) -> PlannedStage:
    return replace(into, absorbed=(*into.absorbed, (rule, stage), *stage.absorbed))


# -- rules ------------------------------------------------------------------------------------------


def eliminate_redundant_sorts(stages: list[PlannedStage], opt: Optimizing) -> list[PlannedStage]:
    out: list[PlannedStage] = []
    for stage in stages:
        prev = out[-1] if out else None
        params = stage.parameters
        if (
            prev is not None
            and stage.stage_id == "sort_relevance"
            and _plain(stage, opt)
            and params.get("score_field", "score") == "score"
            and params.get("direction", "desc") == "desc"
            and _search(prev, opt)
            and len(prev.parameters["searches"]) == 1
            and not prev.absorbed
        ):
            out[-1] = _fold(prev, "eliminate_redundant_sorts", stage)
            opt.rewrites.append(
                Rewrite("eliminate_redundant_sorts", [stage.name], prev.name,
                        "one search's results are already in score order (checked over ids and scores)")
            )  # fmt: skip
            continue
        rebuilds = stage.stage_id == "sort_attribute" or (
            stage.stage_id == "sort_relevance" and params.get("missing_score", "bottom") != "preserve"
        )
        if (
            prev is not None
            and prev.stage_id in SORTS
            and not prev.absorbed
            and _plain(prev, opt)
            and rebuilds
            and _plain(stage, opt)
        ):
            out[-1] = replace(stage, absorbed=(("eliminate_redundant_sorts", prev),))
            opt.rewrites.append(
                Rewrite("eliminate_redundant_sorts", [prev.name], stage.name,
                        f"'{stage.name}' rebuilds the whole order (skipped when the documents are distinct)")
            )  # fmt: skip
            continue
        out.append(stage)
    return out


def merge_consecutive_filters(stages: list[PlannedStage], opt: Optimizing) -> list[PlannedStage]:
    out: list[PlannedStage] = []
    for stage in stages:
        prev = out[-1] if out else None
        if (
            prev is not None
            and prev.stage_id == stage.stage_id == "attribute_filter"
            and _plain(prev, opt)
            and _plain(stage, opt)
        ):
            out[-1] = _fold(prev, "merge_consecutive_filters", stage)
            opt.rewrites.append(
                Rewrite("merge_consecutive_filters", [stage.name], prev.name, "evaluated in the same pass")
            )
            continue
        out.append(stage)
    return out


def push_down_filters(stages: list[PlannedStage], opt: Optimizing) -> list[PlannedStage]:
    out: list[PlannedStage] = []
    for stage in stages:
        if (
            _search(stage, opt)
            and stage.post_filters
            and not stage.post_filters_pushed
            and not _reads_score(stage.post_filters)
        ):
            stage = replace(stage, post_filters_pushed=True)
            opt.rewrites.append(
                Rewrite("push_down_filters", [stage.name], stage.name,
                        "post_filters evaluated by storage over the search's candidates before hydration")
            )  # fmt: skip
        prev = out[-1] if out else None
        if (
            prev is not None
            and _search(prev, opt)
            and set(_absorbed_ids(prev)) <= {"attribute_filter", "sort_relevance"}
            and stage.stage_id == "attribute_filter"
            and _plain(stage, opt)
            and not _filter_reads_score(stage)
            and not any(_filter_reads_score(s) for _, s in stage.absorbed)
        ):
            out[-1] = _fold(prev, "push_down_filters", stage)
            names = [stage.name, *(s.name for _, s in stage.absorbed)]
            opt.rewrites.append(
                Rewrite("push_down_filters", names, prev.name,
                        "evaluated by storage over the search's candidates (payload indexes) before hydration")
            )  # fmt: skip
            continue
        out.append(stage)
    return out


def _into_search(
    stages: list[PlannedStage], opt: Optimizing, rule: str, stage_id: str, detail: str
) -> list[PlannedStage]:
    """Fold each plain ``stage_id`` stage into the search right before it (unless that one groups)."""
    out: list[PlannedStage] = []
    for stage in stages:
        prev = out[-1] if out else None
        if (
            prev is not None
            and _search(prev, opt)
            and "group_by" not in _absorbed_ids(prev)
            and stage.stage_id == stage_id
            and _plain(stage, opt)
        ):
            out[-1] = _fold(prev, rule, stage)
            opt.rewrites.append(Rewrite(rule, [stage.name], prev.name, detail))
            continue
        out.append(stage)
    return out


def limit_push_down(stages: list[PlannedStage], opt: Optimizing) -> list[PlannedStage]:
    out = _into_search(
        stages, opt, "limit_push_down", "limit", "the window is cut from the ids before hydration"
    )
    last = out[-1] if out else None
    if (
        opt.page_window is not None
        and last is not None
        and _search(last, opt)
        and "group_by" not in _absorbed_ids(last)
    ):
        start, end = opt.page_window
        detail = f"only the requested page (results {start}-{end - 1}) is hydrated"
        opt.rewrites.append(Rewrite("limit_push_down", [], last.name, detail))
    else:
        opt.page_window = None
    return out


def group_by_push_down(stages: list[PlannedStage], opt: Optimizing) -> list[PlannedStage]:
    detail = "groups read only the group field from storage; only the kept members are hydrated"
    return _into_search(stages, opt, "group_by_push_down", "group_by", detail)


RULES: tuple[Rule, ...] = (
    eliminate_redundant_sorts,
    merge_consecutive_filters,
    push_down_filters,
    group_by_push_down,
    limit_push_down,
)


def _reads_stage_outputs(plan: Plan) -> bool:
    return any(
        "STAGE" in source or "stage" in source
        for s in plan.stages
        for source in templates.template_strings(s.parameters)
    )


def optimize(
    plan: Plan,
    *,
    cached_stages: frozenset[str] = frozenset(),
    page_window: tuple[int, int] | None = None,
) -> Optimized:
    """The rewritten plan and the summary the record reports (None when no rule fired)."""
    started = time.perf_counter()
    if _reads_stage_outputs(plan):
        return Optimized(plan, None)
    opt = Optimizing(cached_stages=cached_stages, page_window=page_window)
    stages = list(plan.stages)
    for rule in RULES:
        stages = rule(stages, opt)
    if not opt.rewrites:
        return Optimized(plan, None)
    original, optimized = len(plan.stages), len(stages)
    summary = {
        "original_stage_count": original,
        "optimized_stage_count": optimized,
        "optimization_time_ms": round((time.perf_counter() - started) * 1000, 3),
        "rules_applied": list(dict.fromkeys(r.rule for r in opt.rewrites)),
        "stage_reduction_pct": round(100.0 * (original - optimized) / original, 1) if original else 0.0,
        "rewrites": [r.as_dict() for r in opt.rewrites],
    }
    return Optimized(Plan(tuple(stages)), summary, opt.page_window)
