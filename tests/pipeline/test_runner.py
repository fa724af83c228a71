"""The runner on hand-built plans over real SQLite: statistics, credits, budget, on_error, templates, filters.

Corpus: 20 documents d00…d19 with a 4-d cosine vector ``emb`` at angle 0.05·i from [1, 0, 0, 0], so a
search for [1, 0, 0, 0] ranks them d00, d01, … d19; category cycles pets/finance/food; every year differs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from siftline.credits import TABLE, cost_of, credits_table
from siftline.features.embedder import TextEmbedder
from siftline.filters import parse_filter
from siftline.models import Collection, Feature, PayloadIndex
from siftline.pipeline.context import Budget, ExecutionContext
from siftline.pipeline.plan import build_plan
from siftline.pipeline.runner import CREDITS_EXCEEDED, TIME_EXCEEDED, RunResult, run_plan
from siftline.storage.sqlite.backend import SQLiteStorage
from siftline.testing import fresh, make_write, new_collection, new_namespace

EMB = Feature("emb", "dense", "vectors", "v1", 4, "cosine")
EMB_URI = "mixpeek://vectors@v1/emb"
CATEGORIES = ("pets", "finance", "food")
N = 20


def category(i: int) -> str:
    return CATEGORIES[i % 3]


def year(i: int) -> int:
    return 2000 + (i * 13) % 20


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SQLiteStorage, Collection]]:
    """One storage per module (the runs only read it)."""
    path: Path = tmp_path_factory.mktemp("runner")
    storage = SQLiteStorage(path / "siftline.db", path / "vectors")
    ns = new_namespace(storage, "runner")
    col = new_collection(
        storage, ns, "docs", (EMB,), (PayloadIndex("category", "keyword"), PayloadIndex("year", "integer"))
    )
    writes = [
        make_write(
            col,
            f"d{i:02d}",
            vectors={"emb": np.array([math.cos(0.05 * i), math.sin(0.05 * i), 0, 0], dtype=np.float32)},
            category=category(i),
            year=year(i),
        )
        for i in range(N)
    ]
    storage.put_documents(col, writes, replace=False)
    yield storage, fresh(storage, col)
    storage.close()


def search(name: str = "search", vector: Any = (1, 0, 0, 0), **params: Any) -> dict[str, Any]:
    query = list(vector) if not isinstance(vector, str) else {"input_mode": "vector", "value": vector}
    return {
        "stage_name": name,
        "stage_type": "filter",
        "config": {
            "stage_id": "feature_search",
            "parameters": {"searches": [{"feature_uri": EMB_URI, "query": query}], **params},
        },
    }


def stage(name: str, stage_id: str, *, config: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
    return {"stage_name": name, "config": {"stage_id": stage_id, "parameters": params, **(config or {})}}


class Runner:
    def __init__(self, storage: SQLiteStorage, collection: Collection, embedder: TextEmbedder) -> None:
        self.storage, self.collection, self.embedder = storage, collection, embedder

    def __call__(
        self,
        stages: list[dict[str, Any]],
        inputs: dict[str, Any] | None = None,
        schema: dict[str, dict[str, Any]] | None = None,
        *,
        max_credits: float | None = None,
        max_time_ms: int | None = None,
        filters: dict[str, Any] | None = None,
        on_event: Any = None,
    ) -> tuple[RunResult, ExecutionContext]:
        plan = build_plan(stages, [self.collection], schema or {})
        ctx = ExecutionContext(
            storage=self.storage,
            embedder=self.embedder,
            collections=[self.collection],
            inputs=dict(inputs or {}),
            budget=Budget(max_credits, max_time_ms),
            filters=parse_filter(filters) if filters else None,
        )
        return run_plan(plan, ctx, on_event), ctx


@pytest.fixture
def run(corpus: tuple[SQLiteStorage, Collection], embedder: TextEmbedder) -> Runner:
    return Runner(*corpus, embedder)


def ids(result: RunResult) -> list[str]:
    return [c.document_id for c in result.documents]


def expected_credits(stage_id: str, units: int, documents: int) -> float:
    """The credits table applied by hand: base per unit plus per_document per document."""
    cost = TABLE[stage_id]
    return cost.base * units + cost.per_document * documents


PIPELINE = [
    search(final_top_k=10),
    stage("pets", "attribute_filter", field="category", operator="eq", value="pets"),
    stage("by_year", "sort_attribute", field="year", direction="asc"),
    stage("top", "limit", limit=2),
]


# -- statistics -----------------------------------------------------------------------------------------


def test_every_stage_reports_its_statistics_in_pipeline_order(run: Runner) -> None:
    result, _ = run(PIPELINE)

    assert result.status == "completed" and result.error is None
    assert ids(result) == ["d00", "d09"]  # pets d00 d03 d06 d09, by year ascending (2000, 2017, …), top 2
    stats = result.stages
    assert list(stats) == ["search", "pets", "by_year", "top"]
    counts = [(s["input_count"], s["output_count"]) for s in stats.values()]
    assert counts == [(0, 10), (10, 4), (4, 4), (4, 2)]
    for s in stats.values():
        assert s["duration_ms"] >= 0 and s["error"] is None and s["stage_cache_hit"] is False
        assert isinstance(s["metadata"], dict) and "credits" in s["metadata"]
    assert stats["search"]["metadata"]["candidates_examined"] == N  # every hit, before final_top_k
    assert stats["pets"]["metadata"]["matched"] == 4 and stats["top"]["metadata"]["dropped"] == 2
    assert result.total_time_ms >= sum(s["duration_ms"] for s in stats.values()) - 0.01


def test_efficiency_is_output_over_input_and_zero_without_input(run: Runner) -> None:
    result, _ = run(PIPELINE)
    assert [s["efficiency"] for s in result.stages.values()] == [0.0, 0.4, 1.0, 0.5]


def test_a_stage_receiving_nothing_has_efficiency_zero(run: Runner) -> None:
    stages = [
        search(final_top_k=5),
        stage("none", "attribute_filter", field="category", value="toys"),
        stage("top", "limit", limit=3),
    ]
    result, _ = run(stages)
    assert result.status == "completed" and result.documents == []
    assert result.stages["none"]["efficiency"] == 0.0 and result.stages["top"]["input_count"] == 0
    assert result.stages["top"]["efficiency"] == 0.0


def test_the_runner_records_each_stage_output_for_later_templates(run: Runner) -> None:
    _, ctx = run(PIPELINE)
    assert [d["document_id"] for d in ctx.stage_outputs["pets"]] == ["d00", "d03", "d06", "d09"]
    assert [d["document_id"] for d in ctx.stage_outputs["top"]] == ["d00", "d09"]


# -- credits --------------------------------------------------------------------------------------------


def test_credits_follow_the_credits_table_exactly(run: Runner) -> None:
    two_searches = search(final_top_k=10)
    two_searches["config"]["parameters"]["searches"].append({"feature_uri": EMB_URI, "query": [0, 1, 0, 0]})
    result, ctx = run([two_searches, *PIPELINE[1:]])

    expected = {
        "search": expected_credits("feature_search", 2, 10),  # per search, plus the documents it returns
        "pets": expected_credits("attribute_filter", 1, 10),  # plus the documents it receives
        "by_year": expected_credits("sort_attribute", 1, 4),
        "top": expected_credits("limit", 1, 4),
    }
    charged = {name: s["metadata"]["credits"] for name, s in result.stages.items()}
    assert charged == pytest.approx(expected, abs=1e-9)
    assert ctx.budget.credits_used == pytest.approx(sum(expected.values()), abs=1e-9)
    assert result.statistics(ctx.budget.credits_used)["credits_used"] == ctx.budget.credits_used


def test_the_documented_credits_table_is_the_one_applied() -> None:
    table = {row["stage_id"]: (row["base"], row["per_document"]) for row in credits_table()}
    assert table == {sid: (c.base, c.per_document) for sid, c in TABLE.items()}
    for stage_id in (
        "feature_search",
        "attribute_filter",
        "sort_relevance",
        "sort_attribute",
        "rerank",
        "limit",
        "group_by",
    ):
        assert stage_id in table and cost_of(stage_id) == TABLE[stage_id]


# -- budget ---------------------------------------------------------------------------------------------


def test_a_credit_budget_stops_before_the_stage_that_would_exceed_it(run: Runner) -> None:
    first = expected_credits("feature_search", 1, 10)
    second = expected_credits("attribute_filter", 1, 10)
    result, ctx = run(PIPELINE, max_credits=first + second / 2)

    assert result.status == "failed" and result.error == CREDITS_EXCEEDED
    assert list(result.stages) == ["search"]  # the filter never ran
    assert result.documents == []
    assert result.failed_stage == {"stage_name": "pets", "stage_id": "attribute_filter", "stage_index": 1}
    assert ctx.budget.credits_used == pytest.approx(first)


def test_a_credit_budget_too_small_for_the_first_stage_runs_nothing(run: Runner) -> None:
    result, ctx = run(PIPELINE, max_credits=0.5)
    assert result.status == "failed" and result.error == CREDITS_EXCEEDED
    assert result.stages == {} and ctx.budget.credits_used == 0


def test_a_budget_that_covers_every_stage_completes(run: Runner) -> None:
    result, ctx = run(PIPELINE, max_credits=5)
    assert result.status == "completed" and ctx.budget.credits_remaining == pytest.approx(
        5 - ctx.budget.credits_used
    )


def test_a_credit_budget_equal_to_the_exact_cost_completes(run: Runner) -> None:
    stages = [search(final_top_k=18), stage("all", "attribute_filter", field="year", operator="gte", value=0)]
    exact = round(expected_credits("feature_search", 1, 18) + expected_credits("attribute_filter", 1, 18), 6)
    result, _ = run(stages, max_credits=exact)
    assert result.status == "completed", result.error


def test_a_run_never_spends_more_than_max_credits(run: Runner) -> None:
    result, ctx = run([search(final_top_k=10)], max_credits=1.0)  # 1 search = 1.0, + 10 documents x 0.001
    assert ctx.budget.credits_used <= 1.0, (result.status, ctx.budget.credits_used)


def test_a_zero_time_budget_stops_before_the_first_stage(run: Runner) -> None:
    result, _ = run(PIPELINE, max_time_ms=0)
    assert result.status == "failed" and result.error == TIME_EXCEEDED
    assert result.stages == {} and result.documents == []


def test_a_time_budget_running_out_between_stages_keeps_the_statistics_of_those_that_ran(run: Runner) -> None:
    plan = build_plan(PIPELINE, [run.collection], {})
    ctx = ExecutionContext(
        storage=run.storage, embedder=run.embedder, collections=[run.collection], budget=Budget(None, 5_000)
    )

    def slow_first_stage(kind: str, data: dict[str, Any]) -> None:
        if kind == "stage_complete" and data["stage_name"] == "search":
            ctx.budget.started -= 10.0  # as if the first stage had taken ten seconds

    result = run_plan(plan, ctx, slow_first_stage)

    assert result.status == "failed" and result.error == TIME_EXCEEDED
    assert list(result.stages) == ["search"] and result.stages["search"]["output_count"] == 10
    assert result.failed_stage is not None and result.failed_stage["stage_name"] == "pets"


# -- failures and on_error ------------------------------------------------------------------------------

CAP_SCHEMA = {"n": {"type": "integer", "required": True}}


def capped(on_error: str) -> list[dict[str, Any]]:
    cap = stage("cap", "limit", limit="{{ INPUT.n }}")
    cap["on_error"] = on_error
    return [search(final_top_k=10), cap, stage("by_year", "sort_attribute", field="year", direction="desc")]


def test_a_failing_stage_fails_the_run_naming_it_and_keeps_earlier_statistics(run: Runner) -> None:
    result, _ = run(capped("error"), {"n": 0}, CAP_SCHEMA)  # limit 0 is invalid once rendered

    assert result.status == "failed" and result.documents == []
    assert result.error is not None and result.error.startswith("Stage 'cap' (limit, index 1) failed:")
    assert "limit" in result.error and "greater than or equal to 1" in result.error
    assert list(result.stages) == ["search", "cap"]  # the sort never ran
    assert result.stages["search"]["output_count"] == 10 and result.stages["search"]["error"] is None
    assert result.stages["cap"]["error"] and result.stages["cap"]["output_count"] == 0
    assert result.failed_stage == {"stage_name": "cap", "stage_id": "limit", "stage_index": 1}


def test_on_error_skip_keeps_going_with_a_warning(run: Runner) -> None:
    result, ctx = run(capped("skip"), {"n": 0}, CAP_SCHEMA)

    assert result.status == "completed" and result.error is None
    assert list(result.stages) == ["search", "cap", "by_year"]
    skipped = result.stages["cap"]
    assert (skipped["input_count"], skipped["output_count"]) == (10, 10)
    assert skipped["metadata"] == {"skipped": True} and skipped["error"]
    assert len(result.documents) == 10  # the cap did not apply
    assert [c.fields["year"] for c in result.documents] == sorted((year(i) for i in range(10)), reverse=True)
    assert any(w.startswith("Stage 'cap' failed and was skipped (on_error: skip)") for w in ctx.warnings)
    assert result.warnings == ctx.warnings


def test_a_skipped_stage_costs_nothing(run: Runner) -> None:
    _, ctx = run(capped("skip"), {"n": 0}, CAP_SCHEMA)
    assert ctx.budget.credits_used == pytest.approx(
        expected_credits("feature_search", 1, 10) + expected_credits("sort_attribute", 1, 10)
    )


# -- templates ------------------------------------------------------------------------------------------


def test_templates_are_rendered_with_each_runs_inputs(run: Runner) -> None:
    stages = [search(vector="{{ INPUT.v }}", final_top_k=10), stage("cap", "limit", limit="{{ INPUT.n }}")]
    schema = {"v": {"type": "array", "required": True}, "n": {"type": "integer", "default": 3}}
    plan = build_plan(stages, [run.collection], schema)

    def execute(inputs: dict[str, Any]) -> list[str]:
        ctx = ExecutionContext(
            storage=run.storage, embedder=run.embedder, collections=[run.collection], inputs=inputs
        )
        result = run_plan(plan, ctx)
        assert result.status == "completed", result.error
        return ids(result)

    assert execute({"v": [1, 0, 0, 0], "n": 2}) == ["d00", "d01"]
    far = [math.cos(0.05 * 19), math.sin(0.05 * 19), 0, 0]
    assert execute({"v": far, "n": 4}) == ["d19", "d18", "d17", "d16"]
    assert execute({"v": [1, 0, 0, 0], "n": 2}) == ["d00", "d01"]  # nothing of the previous run stuck


def test_templates_read_the_budget_through_context(run: Runner) -> None:
    stages = [
        search(final_top_k=10),
        stage("cap", "limit", limit="{{ 1 if CONTEXT.budget_remaining is none else 3 }}"),
    ]
    assert len(run(stages)[0].documents) == 1
    assert len(run(stages, max_credits=100)[0].documents) == 3


def test_templates_read_an_earlier_stages_output(run: Runner) -> None:
    same = stage(
        "same", "attribute_filter", field="category", operator="eq", value="{{ STAGE.search[0].category }}"
    )
    near_far = [math.cos(0.05 * 19), math.sin(0.05 * 19), 0, 0]  # d19 first: category of 19 % 3 = finance

    result, _ = run([search(final_top_k=20), same])
    assert {c.fields["category"] for c in result.documents} == {category(0)}
    assert len(result.documents) == 7

    result, _ = run([search(vector=near_far, final_top_k=20), same])
    assert {c.fields["category"] for c in result.documents} == {category(19)}
    assert ids(result)[0] == "d19"


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("{{ (STAGE.search | length) // 2 if STAGE.search[0].score > 0.5 else 1 }}", id="stage"),
        pytest.param("{{ 3 if CONTEXT.budget_remaining < 9 else 5 }}", id="context"),
    ],
)
def test_templates_over_run_time_values_are_accepted_and_rendered_at_run_time(
    run: Runner, template: str
) -> None:
    result, _ = run([search(final_top_k=10), stage("cap", "limit", limit=template)], max_credits=10)
    assert result.status == "completed" and len(result.documents) in (3, 5)


# -- pre_filters and post_filters on non-search stages ---------------------------------------------------


def test_pre_filters_on_a_non_search_stage_narrow_its_input(run: Runner) -> None:
    pets_only = {"pre_filters": {"AND": [{"field": "category", "operator": "eq", "value": "pets"}]}}
    stages = [search(final_top_k=10), stage("by_year", "sort_attribute", config=pets_only, field="year")]
    result, _ = run(stages)

    assert ids(result) == ["d03", "d06", "d09", "d00"]  # pets only, latest year first
    assert [c.fields["year"] for c in result.documents] == sorted(
        (year(i) for i in (0, 3, 6, 9)), reverse=True
    )
    assert (result.stages["by_year"]["input_count"], result.stages["by_year"]["output_count"]) == (10, 4)


def test_post_filters_on_a_non_search_stage_narrow_its_output(run: Runner) -> None:
    recent = {"post_filters": {"AND": [{"field": "year", "operator": "gte", "value": 2010}]}}
    result, _ = run([search(final_top_k=20), stage("top", "limit", config=recent, limit=6)])

    assert ids(result) == [f"d{i:02d}" for i in range(6) if year(i) >= 2010]
    assert result.stages["top"]["output_count"] == len(result.documents)


def test_pre_filters_of_a_non_search_stage_may_read_the_inputs(run: Runner) -> None:
    dynamic = {
        "pre_filters": {"AND": [{"field": "category", "value": {"type": "dynamic", "field": "inputs.cat"}}]}
    }
    stages = [search(final_top_k=9), stage("top", "limit", config=dynamic, limit=9)]
    schema = {"cat": {"type": "string"}}

    result, _ = run(stages, {"cat": "food"}, schema)
    assert ids(result) == ["d02", "d05", "d08"]
    result, ctx = run(stages, {}, schema)  # the absent input relaxes the condition
    assert len(result.documents) == 9 and any("relaxed" in w for w in ctx.warnings)


def test_request_filters_restrict_the_search_stage(run: Runner) -> None:
    result, _ = run([search(final_top_k=5), stage("top", "limit", limit=5)], filters={"category": "finance"})
    assert ids(result) == ["d01", "d04", "d07", "d10", "d13"]
    assert result.stages["search"]["metadata"]["filtered"] is True
