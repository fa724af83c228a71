"""sort_attribute: direction, null placement, mixed types, deterministic ties, validation, properties."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from siftline.filters import get_path
from siftline.pipeline.candidates import Candidate, rank_key
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.sort_attribute import SortAttribute, sort_key


def make_ctx() -> ExecutionContext:
    return ExecutionContext(storage=None, embedder=None, collections=[])  # type: ignore[arg-type]


def stage(**params: Any) -> SortAttribute:
    return SortAttribute("sa", SortAttribute.Params.model_validate(params))


def ids(params: dict[str, Any], cands: list[Candidate]) -> list[str]:
    return [c.document_id for c in stage(**params).run(make_ctx(), cands)]


def cand(doc_id: str, score: float = 0.0, **fields: Any) -> Candidate:
    return Candidate(doc_id, "col_a", score, fields)


PRICES = [
    cand("a", 0.1, price=20),
    cand("b", 0.2),
    cand("c", 0.3, price=5.5),
    cand("d", 0.4, price=None),
    cand("e", 0.5, price=100),
]


def test_desc_is_the_default_and_nulls_go_last() -> None:
    assert ids({"field": "price"}, PRICES) == ["e", "a", "c", "d", "b"]


def test_asc_also_puts_nulls_last() -> None:
    assert ids({"field": "price", "direction": "asc"}, PRICES) == ["c", "a", "e", "d", "b"]


def test_nulls_last_false_sorts_nulls_as_the_smallest_value() -> None:
    assert ids({"field": "price", "direction": "asc", "nulls_last": False}, PRICES) == [
        "d",
        "b",
        "c",
        "a",
        "e",
    ]
    assert ids({"field": "price", "direction": "desc", "nulls_last": False}, PRICES) == [
        "e",
        "a",
        "c",
        "d",
        "b",
    ]


def test_nested_and_system_paths() -> None:
    docs = [
        Candidate(
            "x", "col", 0.0, {"metadata": {"year": 2020}}, internal={"created_at": "2024-03-01T00:00:00Z"}
        ),
        Candidate(
            "y", "col", 0.0, {"metadata": {"year": 2022}}, internal={"created_at": "2024-01-01T00:00:00Z"}
        ),
    ]
    assert ids({"field": "metadata.year"}, docs) == ["y", "x"]
    assert ids({"field": "_internal.created_at", "direction": "asc"}, docs) == ["y", "x"]
    assert ids({"field": "document_id", "direction": "asc"}, list(reversed(docs))) == ["x", "y"]


def test_strings_sort_case_insensitively_then_exactly() -> None:
    docs = [
        cand("1", title="banana"),
        cand("2", title="Banana"),
        cand("3", title="apple"),
        cand("4", title="Cherry"),
    ]
    assert ids({"field": "title", "direction": "asc"}, docs) == ["3", "2", "1", "4"]
    assert ids({"field": "title", "direction": "desc"}, docs) == ["4", "1", "2", "3"]


def test_mixed_types_order_numbers_strings_booleans_objects() -> None:
    docs = [
        cand("s", v="10"),
        cand("o", v={"k": 1}),
        cand("t", v=True),
        cand("n", v=3),
        cand("l", v=[1, 2]),
        cand("f", v=False),
        cand("m"),
        cand("g", v=2.5),
    ]
    # Objects and lists compare by canonical JSON text: '[1, 2]' < '{"k": 1}'.
    assert ids({"field": "v", "direction": "asc"}, docs) == ["g", "n", "s", "f", "t", "l", "o", "m"]
    assert ids({"field": "v", "direction": "desc"}, docs) == ["o", "l", "t", "f", "s", "n", "g", "m"]


def test_ties_break_by_score_desc_then_document_id_in_both_directions() -> None:
    docs = [cand("b", 0.5, k=1), cand("a", 0.5, k=1.0), cand("c", 0.9, k=1), cand("z", 0.0, k=0)]
    assert ids({"field": "k", "direction": "asc"}, docs) == ["z", "c", "a", "b"]
    assert ids({"field": "k", "direction": "desc"}, docs) == ["c", "a", "b", "z"]


def test_metadata() -> None:
    ctx = make_ctx()
    stage(field="price", direction="asc").run(ctx, [*PRICES, cand("s", price="n/a")])
    assert ctx.metadata == {
        "field": "price",
        "direction": "asc",
        "nulls_last": True,
        "null_count": 2,
        "value_types": ["number", "string"],
    }


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({}, ("field",)),
        ({"field": ""}, ("field",)),
        ({"field": "price", "direction": "up"}, ("direction",)),
        ({"field": "price", "direction": "ASC"}, ("direction",)),
        ({"field": "price", "nulls_last": "sometimes"}, ("nulls_last",)),
        ({"field": "price", "sort_order": "asc"}, ("sort_order",)),
    ],
)
def test_bad_params_are_refused(params: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        SortAttribute.Params.model_validate(params)
    assert [e["loc"] for e in info.value.errors()] == [loc]


values = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.floats(-3, 3),
    st.just(float("nan")),
    st.sampled_from(["a", "B", "b", "10"]),
    st.booleans(),
    st.lists(st.integers(0, 2), max_size=2),
)


@st.composite
def documents(draw: st.DrawFn) -> list[Candidate]:
    out = []
    for i in range(draw(st.integers(0, 15))):
        fields = {"v": draw(values)} if draw(st.booleans()) else {}
        out.append(Candidate(f"doc_{i:02d}", "col", draw(st.sampled_from([0.0, 0.5, 1.0])), fields))
    return out


@given(documents(), st.sampled_from(["asc", "desc"]), st.booleans(), st.randoms())
def test_output_is_a_sorted_permutation_independent_of_input_order(
    docs: list[Candidate], direction: str, nulls_last: bool, rnd: random.Random
) -> None:
    s = stage(field="v", direction=direction, nulls_last=nulls_last)
    out = s.run(make_ctx(), docs)
    assert sorted(c.document_id for c in out) == sorted(c.document_id for c in docs)
    shuffled = list(docs)
    rnd.shuffle(shuffled)
    assert [c.document_id for c in s.run(make_ctx(), shuffled)] == [c.document_id for c in out]

    keys = [sort_key(get_path(c.view(), "v")) for c in out]
    present = [(k, rank_key(c)) for k, c in zip(keys, out, strict=True) if k is not None]
    nulls = [rank_key(c) for k, c in zip(keys, out, strict=True) if k is None]
    nulls_first = not nulls_last and direction == "asc"
    flags = [k is None for k in keys]
    assert flags == sorted(flags, reverse=nulls_first)  # nulls form one block at the right end
    assert nulls == sorted(nulls)
    for (k1, r1), (k2, r2) in itertools.pairwise(present):
        assert (k1 < k2 if direction == "asc" else k1 > k2) or (k1 == k2 and r1 < r2)
