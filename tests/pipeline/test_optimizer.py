"""Each optimizer rule on its own: it fires where it keeps results identical, and nowhere else."""

from __future__ import annotations

from typing import Any

import pytest

from siftline.pipeline.optimizer import (
    Optimizing,
    eliminate_redundant_sorts,
    group_by_push_down,
    limit_push_down,
    merge_consecutive_filters,
    optimize,
    push_down_filters,
)
from siftline.pipeline.plan import PlannedStage, stored_plan

VEC = "mixpeek://vectors@v1/emb"


def search(name: str = "search", searches: int = 1, **params: Any) -> dict[str, Any]:
    legs = [
        {"feature_uri": VEC, "query": {"input_mode": "vector", "value": [1, 0, 0, 0]}, "top_k": 50}
    ] * searches
    return {
        "stage_name": name,
        "config": {"stage_id": "feature_search", "parameters": {"searches": legs, **params}},
    }


def stage(name: str, stage_id: str, **params: Any) -> dict[str, Any]:
    return {"stage_name": name, "config": {"stage_id": stage_id, "parameters": params}}


def filt(name: str, field: str = "kind", value: Any = "a") -> dict[str, Any]:
    return stage(name, "attribute_filter", field=field, operator="eq", value=value)


def stages(*configs: dict[str, Any]) -> list[PlannedStage]:
    return list(stored_plan(list(configs)).stages)


def names(planned: list[PlannedStage]) -> list[str]:
    return [s.name for s in planned]


def absorbed(s: PlannedStage) -> list[tuple[str, str]]:
    return [(rule, a.name) for rule, a in s.absorbed]


# -- eliminate_redundant_sorts ----------------------------------------------------------------------


def test_score_sort_after_a_single_search_is_folded_into_it() -> None:
    opt = Optimizing()
    out = eliminate_redundant_sorts(stages(search(), stage("sort", "sort_relevance")), opt)
    assert names(out) == ["search"]
    assert absorbed(out[0]) == [("eliminate_redundant_sorts", "sort")]
    assert opt.rewrites[0].stages == ["sort"]


@pytest.mark.parametrize(
    "sort",
    [
        stage("sort", "sort_relevance", direction="asc"),
        stage("sort", "sort_relevance", score_field="metadata.rank"),
        {**stage("sort", "sort_relevance"), "on_error": "skip"},
        stage("sort", "sort_relevance", cache_behavior="aggressive"),
    ],
)
def test_a_sort_that_changes_order_or_has_its_own_behaviour_stays(sort: dict[str, Any]) -> None:
    assert names(eliminate_redundant_sorts(stages(search(), sort), Optimizing())) == ["search", "sort"]


def test_score_sort_after_a_fused_search_stays() -> None:
    # fusion breaks ties by coverage, not by document id: the sort may reorder ties
    out = eliminate_redundant_sorts(stages(search(searches=2), stage("sort", "sort_relevance")), Optimizing())
    assert names(out) == ["search", "sort"]


def test_a_sort_before_a_sort_that_rebuilds_the_order_is_dropped_into_it() -> None:
    out = eliminate_redundant_sorts(
        stages(filt("f"), stage("a", "sort_attribute", field="x"), stage("b", "sort_attribute", field="y")),
        Optimizing(),
    )
    assert names(out) == ["f", "b"]
    assert absorbed(out[1]) == [("eliminate_redundant_sorts", "a")]


def test_a_sort_before_a_position_preserving_sort_stays() -> None:
    planned = stages(
        stage("a", "sort_attribute", field="x"),
        stage("b", "sort_relevance", score_field="y", missing_score="preserve"),
    )
    assert names(eliminate_redundant_sorts(planned, Optimizing())) == ["a", "b"]


# -- merge_consecutive_filters ----------------------------------------------------------------------


def test_consecutive_filters_merge_in_order() -> None:
    out = merge_consecutive_filters(
        stages(filt("a"), filt("b"), filt("c"), stage("l", "limit", limit=3)), Optimizing()
    )
    assert names(out) == ["a", "l"]
    assert absorbed(out[0]) == [("merge_consecutive_filters", "b"), ("merge_consecutive_filters", "c")]


def test_filters_apart_or_with_templates_do_not_merge() -> None:
    apart = stages(filt("a"), stage("l", "limit", limit=3), filt("b"))
    assert names(merge_consecutive_filters(apart, Optimizing())) == ["a", "l", "b"]
    templated = stages(filt("a"), filt("b", value="{{INPUT.kind}}"))
    assert names(merge_consecutive_filters(templated, Optimizing())) == ["a", "b"]


# -- push_down_filters ------------------------------------------------------------------------------


def test_a_filter_after_a_search_is_pushed_into_it() -> None:
    opt = Optimizing()
    out = push_down_filters(stages(search(), filt("f"), stage("l", "limit", limit=3)), opt)
    assert names(out) == ["search", "l"]
    assert absorbed(out[0]) == [("push_down_filters", "f")]


def test_a_filter_on_score_is_not_pushed_down() -> None:
    planned = stages(search(), stage("f", "attribute_filter", field="score", operator="gt", value=0.5))
    assert names(push_down_filters(planned, Optimizing())) == ["search", "f"]


def test_a_filter_after_a_grouping_search_is_not_pushed_down() -> None:
    planned = stages(search(group_by={"field": "kind"}), filt("f"))
    assert names(push_down_filters(planned, Optimizing())) == ["search", "f"]


def test_search_post_filters_are_evaluated_by_storage_unless_they_read_score() -> None:
    own = search()
    own["config"]["post_filters"] = {"AND": [{"field": "kind", "operator": "eq", "value": "a"}]}
    out = push_down_filters(stages(own), Optimizing())
    assert out[0].post_filters_pushed
    own["config"]["post_filters"] = {"AND": [{"field": "score", "operator": "gt", "value": 0.1}]}
    assert not push_down_filters(stages(own), Optimizing())[0].post_filters_pushed


def test_nothing_is_pushed_into_a_search_whose_output_is_cached() -> None:
    planned = stages(search(), filt("f"))
    assert names(push_down_filters(planned, Optimizing(cached_stages=frozenset({"search"})))) == [
        "search",
        "f",
    ]


# -- limit_push_down --------------------------------------------------------------------------------


def test_a_limit_after_a_search_is_cut_from_the_ids() -> None:
    out = limit_push_down(stages(search(), stage("l", "limit", limit=3)), Optimizing())
    assert names(out) == ["search"]
    assert absorbed(out[0]) == [("limit_push_down", "l")]


def test_a_limit_after_a_sort_on_fields_stays() -> None:
    planned = stages(search(), stage("s", "sort_attribute", field="x"), stage("l", "limit", limit=3))
    assert names(limit_push_down(planned, Optimizing())) == ["search", "s", "l"]


def test_the_requested_page_is_pushed_only_when_the_search_ends_the_pipeline() -> None:
    opt = Optimizing(page_window=(10, 20))
    limit_push_down(stages(search()), opt)
    assert opt.page_window == (10, 20)
    opt = Optimizing(page_window=(10, 20))
    limit_push_down(stages(search(), stage("s", "sort_attribute", field="x")), opt)
    assert opt.page_window is None and not opt.rewrites


# -- group_by_push_down -----------------------------------------------------------------------------


def test_a_group_by_after_a_search_becomes_the_searchs_grouping() -> None:
    out = group_by_push_down(stages(search(), stage("g", "group_by", group_by_field="kind")), Optimizing())
    assert names(out) == ["search"]
    assert absorbed(out[0]) == [("group_by_push_down", "g")]


def test_a_group_by_elsewhere_stays() -> None:
    planned = stages(
        search(), stage("s", "sort_attribute", field="x"), stage("g", "group_by", group_by_field="kind")
    )
    assert names(group_by_push_down(planned, Optimizing())) == ["search", "s", "g"]


# -- the whole optimizer ----------------------------------------------------------------------------


def test_summary_counts_stages_and_names_rules_in_order() -> None:
    plan = stored_plan(
        [search(), stage("sort", "sort_relevance"), filt("a"), filt("b"), stage("top", "limit", limit=5)]
    )
    result = optimize(plan)
    assert result.summary is not None
    assert result.summary["original_stage_count"] == 5
    assert result.summary["optimized_stage_count"] == 1
    assert result.summary["stage_reduction_pct"] == 80.0
    assert result.summary["rules_applied"] == [
        "eliminate_redundant_sorts", "merge_consecutive_filters", "push_down_filters", "limit_push_down",
    ]  # fmt: skip
    assert [r["rule"] for r in result.summary["rewrites"]][-1] == "limit_push_down"


def test_nothing_to_rewrite_gives_no_summary() -> None:
    result = optimize(stored_plan([search(), stage("s", "sort_attribute", field="x")]))
    assert result.summary is None and not result.applied


def test_a_plan_reading_stage_outputs_is_left_alone() -> None:
    plan = stored_plan(
        [search(), filt("f", value="{{ STAGE.search[0].kind }}"), stage("l", "limit", limit=2)]
    )
    assert optimize(plan).summary is None
