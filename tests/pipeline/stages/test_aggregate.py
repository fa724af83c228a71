"""aggregate: functions, groups, ids, sort/limit, include_documents, metadata, validation, properties."""

from __future__ import annotations

import json
import math
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.aggregate import Aggregate


def make_ctx() -> ExecutionContext:
    return ExecutionContext(storage=None, embedder=None, collections=[])  # type: ignore[arg-type]


def stage(**params: Any) -> Aggregate:
    return Aggregate("agg", Aggregate.Params.model_validate(params))


def cand(doc_id: str, score: float, collection: str = "col_a", **fields: Any) -> Candidate:
    return Candidate(doc_id, collection, score, fields)


# books: cat x = {a .9 price 10, c .5 price "n/a", e .3 price 4.5}; cat y = {b .8 price 7}; null = {d .1}
DOCS = [
    cand("e", 0.3, meta={"cat": "x", "price": 4.5}, author="ann"),
    cand("b", 0.8, meta={"cat": "y", "price": 7}, author="bob"),
    cand("d", 0.1, meta={"price": True}),
    cand("c", 0.5, meta={"cat": "x", "price": "n/a"}, author="ann"),
    cand("a", 0.9, meta={"cat": "x", "price": 10}, author="cid"),
]
ALL_FUNCS = [
    {"function": "count", "alias": "n"},
    {"function": "count", "field": "author", "alias": "n_author"},
    {"function": "count_distinct", "field": "author", "alias": "authors"},
    {"function": "sum", "field": "meta.price", "alias": "total"},
    {"function": "avg", "field": "meta.price", "alias": "mean"},
    {"function": "min", "field": "meta.price", "alias": "lo"},
    {"function": "max", "field": "meta.price", "alias": "hi"},
    {"function": "first", "field": "author", "alias": "top_author"},
    {"function": "last", "field": "author", "alias": "low_author"},
    {"function": "collect", "field": "author", "alias": "all_authors"},
    {"function": "collect_distinct", "field": "author", "alias": "distinct_authors"},
]


def test_global_aggregation_computes_every_function() -> None:
    ctx = make_ctx()
    (out,) = stage(aggregations=ALL_FUNCS).run(ctx, DOCS)
    assert out.fields == {
        "n": 5,
        "n_author": 4,
        "authors": 3,
        "total": 21.5,  # 10 + 7 + 4.5; "n/a" and true skipped
        "mean": 21.5 / 3,
        "lo": 4.5,
        "hi": 10,
        "top_author": "cid",
        "low_author": "ann",
        "all_authors": ["cid", "bob", "ann", "ann"],
        "distinct_authors": ["cid", "bob", "ann"],
    }
    assert (out.document_id, out.collection_id, out.score) == ("group:[]", "col_a", 0.9)
    assert ctx.metadata["skipped_values"] == {"total": 2, "mean": 2, "lo": 2, "hi": 2}
    assert ctx.metadata["groups"] == 1 and ctx.metadata["documents_in"] == 5


def test_global_group_of_no_documents() -> None:
    (out,) = stage(aggregations=ALL_FUNCS[:6]).run(make_ctx(), [])
    assert out.fields == {"n": 0, "n_author": 0, "authors": 0, "total": 0, "mean": None, "lo": None}
    assert (out.document_id, out.collection_id, out.score) == ("group:[]", "", 0.0)


def test_groups_by_key_with_alias_default_and_null_group() -> None:
    aggs = [{"function": "count", "alias": "n"}, {"function": "sum", "field": "meta.price", "alias": "s"}]
    out = stage(aggregations=aggs, group_by=[{"field": "meta.cat"}]).run(make_ctx(), DOCS)
    # Default order: by best member (a .9 → x, b .8 → y, d .1 → null).
    assert [c.fields for c in out] == [
        {"cat": "x", "n": 3, "s": 14.5},
        {"cat": "y", "n": 1, "s": 7},
        {"cat": None, "n": 1, "s": 0},
    ]
    assert [c.document_id for c in out] == ['group:["x"]', 'group:["y"]', "group:[null]"]
    assert [c.score for c in out] == [0.9, 0.8, 0.1]


def test_composite_keys_and_numeric_key_equality() -> None:
    docs = [cand("a", 0.5, y=2020, k="p"), cand("b", 0.4, y=2020.0, k="p"), cand("c", 0.3, y=2020, k="q")]
    aggs = [{"function": "collect", "field": "document_id", "alias": "ids"}]
    out = stage(aggregations=aggs, group_by=[{"field": "y", "alias": "year"}, {"field": "k"}]).run(
        make_ctx(), docs
    )
    assert [c.fields for c in out] == [
        {"year": 2020, "k": "p", "ids": ["a", "b"]},
        {"year": 2020, "k": "q", "ids": ["c"]},
    ]
    assert out[0].document_id == 'group:[2020,"p"]'


def test_sort_by_alias_both_directions_nulls_last_and_limit() -> None:
    aggs = [{"function": "count", "alias": "n"}, {"function": "min", "field": "meta.price", "alias": "lo"}]
    gb = [{"field": "meta.cat", "alias": "cat"}]
    asc = stage(aggregations=aggs, group_by=gb, sort_by="lo", sort_order="asc").run(make_ctx(), DOCS)
    assert [c.fields["cat"] for c in asc] == ["x", "y", None]  # lo: 4.5, 7, null (last)
    desc = stage(aggregations=aggs, group_by=gb, sort_by="lo").run(make_ctx(), DOCS)
    assert [c.fields["cat"] for c in desc] == ["y", "x", None]
    by_key = stage(aggregations=aggs, group_by=gb, sort_by="cat", sort_order="asc", limit=2)
    ctx = make_ctx()
    assert [c.fields["cat"] for c in by_key.run(ctx, DOCS)] == ["x", "y"]
    assert ctx.metadata["groups"] == 3 and ctx.metadata["groups_returned"] == 2


def test_sort_ties_keep_default_order() -> None:
    aggs = [{"function": "count", "alias": "n"}]
    out = stage(aggregations=aggs, group_by=[{"field": "author"}], sort_by="n").run(make_ctx(), DOCS)
    assert [c.fields["author"] for c in out] == ["ann", "cid", "bob", None]


def test_include_documents_lists_members_best_first() -> None:
    aggs = [{"function": "count", "alias": "n"}]
    out = stage(aggregations=aggs, group_by=[{"field": "meta.cat"}], include_documents=True).run(
        make_ctx(), DOCS
    )
    assert [d["document_id"] for d in out[0].fields["documents"]] == ["a", "c", "e"]
    assert out[0].fields["documents"][0]["meta"] == {"cat": "x", "price": 10}


def test_mixed_collections_are_joined() -> None:
    docs = [cand("a", 0.5, "col_b", k=1), cand("b", 0.4, "col_a", k=1)]
    (out,) = stage(aggregations=[{"function": "count", "alias": "n"}]).run(make_ctx(), docs)
    assert out.collection_id == "col_a,col_b"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"aggregations": []},
        {"aggregations": [{"function": "sum", "alias": "s"}]},  # no field
        {"aggregations": [{"function": "median", "field": "x", "alias": "s"}]},
        {"aggregations": [{"function": "count"}]},  # no alias
        {"aggregations": [{"function": "count", "alias": "n"}, {"function": "count", "alias": "n"}]},
        {"aggregations": [{"function": "count", "alias": "k"}], "group_by": [{"field": "a.k"}]},
        {"aggregations": [{"function": "count", "alias": "score"}]},
        {"aggregations": [{"function": "count", "alias": "documents"}], "include_documents": True},
        {"aggregations": [{"function": "count", "alias": "n"}], "sort_by": "m"},
        {"aggregations": [{"function": "count", "alias": "n"}], "sort_order": "up"},
        {"aggregations": [{"function": "count", "alias": "n"}], "limit": 0},
        {"aggregations": [{"function": "count", "alias": "n"}], "limit": True},
        {"aggregations": [{"function": "count", "alias": "n", "top_k": 3}]},
        {"aggregations": [{"function": "count", "alias": "n"}], "having": []},
    ],
)
def test_bad_params_are_rejected(params: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        Aggregate.Params.model_validate(params)


VALUES = st.one_of(st.none(), st.integers(-50, 50), st.floats(-1e6, 1e6), st.sampled_from(["a", "b", True]))
DOC = st.fixed_dictionaries(
    {"k": st.sampled_from(["p", "q", "r", None]), "j": st.integers(0, 2), "v": VALUES},
)


@given(st.lists(DOC, max_size=30))
def test_sums_and_counts_match_a_plain_python_reference(rows: list[dict[str, Any]]) -> None:
    docs = [cand(f"d{i}", 1.0 / (i + 1), **row) for i, row in enumerate(rows)]
    aggs = [
        {"function": "count", "alias": "n"},
        {"function": "sum", "field": "v", "alias": "s"},
        {"function": "count", "field": "v", "alias": "nv"},
    ]
    out = stage(aggregations=aggs, group_by=[{"field": "k"}, {"field": "j"}]).run(make_ctx(), docs)
    ref: dict[tuple[Any, int], list[Any]] = {}
    for row in rows:
        ref.setdefault((row["k"], row["j"]), []).append(row["v"])
    assert len(out) == len(ref)
    assert len({c.document_id for c in out}) == len(out)
    for c in out:
        values = ref[(c.fields["k"], c.fields["j"])]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        assert c.fields["n"] == len(values)
        assert c.fields["nv"] == sum(v is not None for v in values)
        assert math.isclose(c.fields["s"], sum(numbers), abs_tol=1e-6)
        assert json.loads(c.document_id.removeprefix("group:")) == [c.fields["k"], c.fields["j"]]
