"""attribute_filter: simple and boolean modes, case handling, dynamic inputs, validation, a reference property."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic_core import ErrorDetails

from siftline.errors import ValidationError
from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.attribute_filter import AttributeFilter, AttributeFilterParams
from siftline.pipeline.stages.base import PlanContext


def make_ctx(inputs: dict[str, Any] | None = None) -> ExecutionContext:
    return ExecutionContext(storage=None, embedder=None, collections=[], inputs=inputs or {})  # type: ignore[arg-type]


def cand(doc_id: str, score: float = 0.0, **fields: Any) -> Candidate:
    return Candidate(doc_id, "col_a", score, fields, internal={"created_at": f"2024-01-0{doc_id[-1]}"})


def stage(**params: Any) -> AttributeFilter:
    return AttributeFilter("af", AttributeFilter.Params.model_validate(params))


def run(params: dict[str, Any], cands: list[Candidate], inputs: dict[str, Any] | None = None) -> list[str]:
    return [c.document_id for c in stage(**params).run(make_ctx(inputs), cands)]


DOCS = [
    cand("d1", 0.9, status="active", metadata={"year": 2021, "tags": ["news", "sport"]}),
    cand("d2", 0.8, status="Active", metadata={"year": 2019, "tags": ["news"]}),
    cand("d3", 0.7, status="archived", metadata={"year": 2023}),
    cand("d4", 0.6, metadata={"year": None}),
]


# ---------------------------------------------------------------------------------------------- semantics


def dyn(path: str) -> dict[str, str]:
    return {"type": "dynamic", "field": path}


OR_TREE = {
    "OR": [{"status": "archived"}, {"field": "metadata.tags", "operator": "contains", "value": "sport"}]
}
CS_TREE = {"AND": [{"field": "status", "value": "Active"}], "case_sensitive": True}


@pytest.mark.parametrize(
    ("params", "inputs", "expected"),
    [
        # simple mode: case-sensitive unless case_insensitive (the SDK's default); operator defaults to eq
        ({"field": "status", "operator": "eq", "value": "active"}, {}, ["d1"]),
        ({"field": "status", "value": "active", "case_insensitive": True}, {}, ["d1", "d2"]),
        ({"field": "metadata.year", "value": 2019}, {}, ["d2"]),
        ({"field": "metadata.year", "operator": "gte", "value": 2021}, {}, ["d1", "d3"]),
        ({"field": "metadata.tags", "operator": "contains", "value": "sport"}, {}, ["d1"]),
        ({"field": "metadata.year", "operator": "is_null", "value": True}, {}, ["d4"]),
        ({"field": "status", "operator": "ne", "value": "archived"}, {}, ["d1", "d2", "d4"]),
        # score, ids and system fields are part of the filtered view
        ({"field": "score", "operator": "gt", "value": 0.75}, {}, ["d1", "d2"]),
        ({"field": "document_id", "operator": "in", "value": ["d4", "d2"]}, {}, ["d2", "d4"]),
        ({"field": "_internal.created_at", "operator": "lt", "value": "2024-01-03"}, {}, ["d1", "d2"]),
        # trees: nested AND/OR/NOT, the filter language's case rules, case_insensitive overriding them
        (
            {"conditions": {"AND": [{"field": "metadata.year", "operator": "gte", "value": 2019}, OR_TREE]}},
            {},
            ["d1", "d3"],
        ),
        ({"conditions": {"NOT": [{"field": "status", "operator": "exists", "value": True}]}}, {}, ["d4"]),
        ({"conditions": {"AND": [{"field": "status", "value": "ACTIVE"}]}}, {}, ["d1", "d2"]),
        ({"conditions": CS_TREE}, {}, ["d2"]),
        ({"conditions": CS_TREE, "case_insensitive": True}, {}, ["d1", "d2"]),
        ({"conditions": {}}, {}, ["d1", "d2", "d3", "d4"]),
        # dynamic values: bound from the inputs; an absent or null input relaxes its condition
        (
            {"field": "metadata.year", "operator": "gte", "value": dyn("inputs.min_year")},
            {"min_year": 2020},
            ["d1", "d3"],
        ),
        ({"conditions": {"AND": [{"field": "status", "value": dyn("INPUT.s")}]}}, {"s": "archived"}, ["d3"]),
        ({"field": "status", "value": dyn("inputs.s")}, {"s": None}, ["d1", "d2", "d3", "d4"]),
    ],
)
def test_semantics(params: dict[str, Any], inputs: dict[str, Any], expected: list[str]) -> None:
    assert run(params, DOCS, inputs) == expected


def test_incoming_order_is_preserved() -> None:
    docs = list(reversed(DOCS))
    assert run({"field": "metadata.year", "operator": "exists", "value": True}, docs) == ["d3", "d2", "d1"]


def test_metadata_counts_and_fields() -> None:
    ctx = make_ctx()
    tree = {"OR": [{"status": "archived"}, {"field": "metadata.year", "operator": "lt", "value": 2020}]}
    out = stage(conditions=tree).run(ctx, DOCS)
    assert [c.document_id for c in out] == ["d2", "d3"]
    assert ctx.metadata == {
        "mode": "conditions",
        "input_count": 4,
        "matched": 2,
        "dropped": 2,
        "fields": ["metadata.year", "status"],
        "relaxed_conditions": [],
    }
    assert ctx.warnings == []


def test_dynamic_values_are_bound_from_inputs() -> None:
    dyn = {"type": "dynamic", "field": "inputs.min_year"}
    assert run({"field": "metadata.year", "operator": "gte", "value": dyn}, DOCS, {"min_year": 2020}) == [
        "d1",
        "d3",
    ]
    tree = {"AND": [{"field": "status", "value": {"type": "dynamic", "field": "INPUT.s"}}]}
    assert run({"conditions": tree}, DOCS, {"s": "archived"}) == ["d3"]


def test_absent_dynamic_input_relaxes_its_condition_and_says_so() -> None:
    ctx = make_ctx({})
    year = {"field": "metadata.year", "operator": "gte", "value": dyn("inputs.min_year")}
    tree = {"AND": [year, {"field": "status", "operator": "ne", "value": "archived"}]}
    out = stage(conditions=tree).run(ctx, DOCS)
    assert [c.document_id for c in out] == ["d1", "d2", "d4"]
    assert ctx.metadata["relaxed_conditions"] == [
        {"field": "metadata.year", "operator": "gte", "input": "inputs.min_year"}
    ]
    assert ctx.warnings == [
        "Stage 'af' (attribute_filter): filter condition on 'metadata.year' (gte) was relaxed: "
        "input 'inputs.min_year' was not provided."
    ]


def test_dynamic_input_of_the_wrong_type_is_a_validation_error_at_run_time() -> None:
    params = {"field": "metadata.year", "operator": "in", "value": dyn("inputs.years")}
    with pytest.raises(ValidationError) as info:
        run(params, DOCS, {"years": 2020})
    assert info.value.errors[0]["loc"] == ["inputs", "years"]


def test_check_refuses_dynamic_values_reading_undeclared_inputs() -> None:
    params = AttributeFilter.Params.model_validate(
        {"conditions": {"AND": [{"field": "status", "value": dyn("inputs.status")}]}}
    )
    loc: list[str | int] = ["stages", 0, "config", "parameters"]
    AttributeFilter.check(params, PlanContext(collections=[], input_names={"status"}), loc)
    with pytest.raises(ValidationError) as info:
        AttributeFilter.check(params, PlanContext(collections=[], input_names={"query"}), loc)
    assert info.value.errors[0]["loc"] == [*loc, "conditions"]
    assert "'status'" in info.value.errors[0]["msg"]


# ---------------------------------------------------------------------------------------------- validation


def errors_of(params: dict[str, Any]) -> list[ErrorDetails]:
    with pytest.raises(pydantic.ValidationError) as info:
        AttributeFilter.Params.model_validate(params)
    return info.value.errors()


@pytest.mark.parametrize(
    ("params", "loc", "needle"),
    [
        ({"field": "status", "value": "a", "natural_language": "x"}, ("natural_language",), "need an LLM"),
        ({"field": "status", "value": "a", "colour": 1}, ("colour",), "Extra inputs"),
        ({"field": "title", "operator": "words", "value": "x"}, ("operator",), "'eq'"),
        ({}, ("field",), "conditions"),
        ({"field": "status"}, ("value",), "needs a 'value'"),
        ({"field": "status", "operator": "in", "value": "a"}, ("value",), "list"),
        ({"field": "a..b", "value": 1}, ("field",), "empty path segment"),
        ({"field": "status", "value": "a", "conditions": {"AND": []}}, ("field",), "simple mode"),
        ({"field": "status", "operator": "regex", "value": "("}, ("value",), "regular expression"),
    ],
)
def test_bad_params_are_refused_at_the_right_place(
    params: dict[str, Any], loc: tuple[Any, ...], needle: str
) -> None:
    errors = errors_of(params)
    assert len(errors) == 1
    assert errors[0]["loc"] == loc
    assert needle in errors[0]["msg"]


@pytest.mark.parametrize(
    ("conditions", "loc"),
    [
        (
            {"AND": [{"status": "a"}, {"field": "x", "operator": "nope", "value": 1}]},
            ("conditions", "AND", 1, "operator"),
        ),
        ({"OR": {"field": "x", "value": 1}}, ("conditions", "OR")),
        (
            {"AND": [{"OR": [{"field": "x", "operator": "in", "value": 3}]}]},
            ("conditions", "AND", 0, "OR", 0, "value"),
        ),
        ({"AND": [{"field": "x", "value": 1, "extra": 2}]}, ("conditions", "AND", 0, "extra")),
        ({"AND": ["status"]}, ("conditions", "AND", 0)),
        ({"NOT": [{"field": "x", "value": {"type": "static"}}]}, ("conditions", "NOT", 0, "value")),
        ("status = 1", ("conditions",)),
    ],
)
def test_malformed_tree_is_a_validation_error_naming_the_location(
    conditions: Any, loc: tuple[Any, ...]
) -> None:
    errors = errors_of({"conditions": conditions})
    assert [e["loc"] for e in errors] == [loc]


def test_too_deep_tree_is_refused() -> None:
    tree: dict[str, Any] = {"field": "x", "value": 1}
    for _ in range(17):
        tree = {"AND": [tree]}
    errors = errors_of({"conditions": tree})
    assert "16" in errors[0]["msg"]


def test_error_nests_under_an_enclosing_model() -> None:
    class Outer(pydantic.BaseModel):
        parameters: AttributeFilterParams

    with pytest.raises(pydantic.ValidationError) as info:
        Outer.model_validate(
            {"parameters": {"conditions": {"AND": [{"field": "x", "operator": "bad", "value": 1}]}}}
        )
    assert info.value.errors()[0]["loc"] == ("parameters", "conditions", "AND", 0, "operator")


# ---------------------------------------------------------------------------------------------- property

Pred = Callable[[dict[str, Any]], bool]
MISSING = object()
YEARS = st.one_of(st.none(), st.integers(2018, 2024))
TAGS = st.sampled_from(["news", "sport", "tech"])


def _ref_condition(field: str, op: str, value: Any) -> Pred:
    """An independent reference for the few operators the property uses."""

    def test(doc: dict[str, Any]) -> bool:
        v = doc.get(field, MISSING)
        present = v is not MISSING and v is not None
        if op == "exists":
            return present is value
        if op in ("eq", "ne"):
            return (present and v == value) is (op == "eq")
        if op == "in":
            return present and v in value
        ordered = {"gt": v > value, "gte": v >= value, "lt": v < value, "lte": v <= value} if present else {}
        return ordered.get(op, False)

    return test


@st.composite
def conditions(draw: st.DrawFn) -> tuple[dict[str, Any], Pred]:
    field = draw(st.sampled_from(["year", "tag"]))
    values = st.integers(2017, 2025) if field == "year" else TAGS
    op = draw(st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "in", "exists"]))
    if op == "exists":
        value: Any = draw(st.booleans())
    elif op == "in":
        value = draw(st.lists(values, max_size=3))
    else:
        value = draw(values)
    return {"field": field, "operator": op, "value": value}, _ref_condition(field, op, value)


def _combine(
    children: st.SearchStrategy[tuple[dict[str, Any], Pred]],
) -> st.SearchStrategy[tuple[dict[str, Any], Pred]]:
    def build(key: str, items: list[tuple[dict[str, Any], Pred]]) -> tuple[dict[str, Any], Pred]:
        preds = [p for _, p in items]
        fn: Pred
        if key == "AND":
            fn = lambda d: all(p(d) for p in preds)  # noqa: E731
        elif key == "OR":
            fn = lambda d: any(p(d) for p in preds)  # noqa: E731
        else:
            fn = lambda d: not any(p(d) for p in preds)  # noqa: E731
        return {key: [j for j, _ in items]}, fn

    return st.builds(build, st.sampled_from(["AND", "OR", "NOT"]), st.lists(children, max_size=3))


@st.composite
def documents(draw: st.DrawFn) -> list[Candidate]:
    out = []
    for i in range(draw(st.integers(0, 12))):
        fields: dict[str, Any] = {}
        if draw(st.booleans()):
            fields["year"] = draw(YEARS)
        if draw(st.booleans()):
            fields["tag"] = draw(TAGS)
        out.append(Candidate(f"doc_{i}", "col", draw(st.floats(0, 1)), fields))
    return out


@given(documents(), st.recursive(conditions(), _combine, max_leaves=6))
def test_output_is_the_input_filtered_by_a_reference_predicate(
    docs: list[Candidate], tree: tuple[dict[str, Any], Pred]
) -> None:
    raw, reference = tree
    params = {"conditions": raw} if "field" not in raw else raw
    out = stage(**params).run(make_ctx(), docs)
    assert out == [c for c in docs if reference(c.fields)]
