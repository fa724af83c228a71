"""group_by: grouping, ordering, the null group, the three output modes, metadata, validation, properties."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from siftline.filters import get_path
from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.group_by import GroupBy, group_key


def make_ctx(return_vectors: bool = False) -> ExecutionContext:
    return ExecutionContext(storage=None, embedder=None, collections=[], return_vectors=return_vectors)  # type: ignore[arg-type]


def stage(**params: Any) -> GroupBy:
    return GroupBy("gb", GroupBy.Params.model_validate(params))


def cand(doc_id: str, score: float, **fields: Any) -> Candidate:
    return Candidate(doc_id, "col_a", score, fields, vectors={"emb": [0.1, 0.2]})


# Groups: video v1 = {a .9, c .5, f .2}; v2 = {b .8, e .8}; null group = {d .7 (absent), g .1 (null)}.
DOCS = [
    cand("f", 0.2, video="v1"),
    cand("e", 0.8, video="v2"),
    cand("d", 0.7),
    cand("c", 0.5, video="v1"),
    cand("b", 0.8, video="v2"),
    cand("a", 0.9, video="v1"),
    cand("g", 0.1, video=None),
]


def ids(out: list[Candidate]) -> list[str]:
    return [c.document_id for c in out]


def test_first_keeps_the_best_document_of_each_group_in_group_order() -> None:
    out = stage(group_by_field="video", output_mode="first").run(make_ctx(), DOCS)
    assert ids(out) == ["a", "b", "d"]
    assert out[0] is DOCS[5]  # the documents themselves, no group fields added


def test_flatten_lists_groups_one_after_another_best_first_capped() -> None:
    out = stage(group_by_field="video", output_mode="flatten", max_per_group=2).run(make_ctx(), DOCS)
    assert ids(out) == ["a", "c", "b", "e", "d", "g"]
    assert all("group_key" not in c.fields for c in out)


def test_all_returns_one_document_per_group_listing_its_members() -> None:
    ctx = make_ctx()
    out = stage(group_by_field="video", max_per_group=2).run(ctx, DOCS)
    assert ids(out) == ["a", "b", "d"]
    first, second, nulls = out
    assert (first.score, first.fields["video"], first.fields["group_key"], first.fields["group_count"]) == (
        0.9,
        "v1",
        "v1",
        2,
    )
    assert [m["document_id"] for m in first.fields["group_documents"]] == ["a", "c"]
    assert [m["document_id"] for m in second.fields["group_documents"]] == ["b", "e"]
    assert (nulls.fields["group_key"], [m["document_id"] for m in nulls.fields["group_documents"]]) == (
        None,
        ["d", "g"],
    )
    member = first.fields["group_documents"][1]
    assert member == {
        "document_id": "c",
        "collection_id": "col_a",
        "video": "v1",
        "score": 0.5,
        "_internal": {},
    }
    assert "group_key" not in DOCS[5].fields  # the input candidates are not modified


def test_all_members_carry_vectors_only_when_asked() -> None:
    out = stage(group_by_field="video").run(make_ctx(return_vectors=True), DOCS)
    assert out[0].fields["group_documents"][0]["vectors"] == {"emb": [0.1, 0.2]}


def test_metadata() -> None:
    ctx = make_ctx()
    stage(group_by_field="video", max_per_group=2, output_mode="all").run(ctx, DOCS)
    assert ctx.metadata == {
        "group_by_field": "video",
        "output_mode": "all",
        "groups": 3,
        "largest_group": 3,
        "null_group_size": 2,
        "documents_dropped": 1,
    }
    ctx = make_ctx()
    stage(group_by_field="video", output_mode="first").run(ctx, DOCS)
    assert ctx.metadata["documents_dropped"] == 4


def test_value_equality_follows_json_types() -> None:
    docs = [
        cand("i", 0.9, k=1),
        cand("f", 0.8, k=1.0),
        cand("t", 0.7, k=True),
        cand("u", 0.6, k="A"),
        cand("l", 0.5, k="a"),
        cand("x", 0.4, k=[1, 2]),
        cand("y", 0.3, k=[1, 2]),
        cand("z", 0.2, k={"b": 1, "a": 2}),
        cand("w", 0.1, k={"a": 2, "b": 1}),
    ]
    out = stage(group_by_field="k", output_mode="first").run(make_ctx(), docs)
    assert ids(out) == ["i", "t", "u", "l", "x", "z"]
    assert group_key(float("nan")) == group_key(None) == ("null", None)


def test_nested_field_and_score_ties_by_document_id() -> None:
    docs = [
        cand("q", 0.5, meta={"cat": "x"}),
        cand("p", 0.5, meta={"cat": "x"}),
        cand("r", 0.5, meta={"cat": "y"}),
    ]
    out = stage(group_by_field="meta.cat", output_mode="first").run(make_ctx(), docs)
    assert ids(out) == ["p", "r"]


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({}, ("group_by_field",)),
        ({"group_by_field": ""}, ("group_by_field",)),
        ({"group_by_field": "v", "max_per_group": 0}, ("max_per_group",)),
        ({"group_by_field": "v", "max_per_group": -3}, ("max_per_group",)),
        ({"group_by_field": "v", "max_per_group": 1001}, ("max_per_group",)),
        ({"group_by_field": "v", "max_per_group": True}, ("max_per_group",)),
        ({"group_by_field": "v", "output_mode": "groups"}, ("output_mode",)),
        ({"group_by_field": "v", "max_groups": 5}, ("max_groups",)),
    ],
)
def test_bad_params_are_refused(params: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        GroupBy.Params.model_validate(params)
    assert [e["loc"] for e in info.value.errors()] == [loc]


def test_sdk_defaults() -> None:
    params = GroupBy.Params.model_validate({"group_by_field": "video"})
    assert (params.max_per_group, params.output_mode) == (10, "all")


@st.composite
def documents(draw: st.DrawFn) -> list[Candidate]:
    out = []
    for i in range(draw(st.integers(0, 20))):
        fields = {"g": draw(st.sampled_from(["a", "b", "c", 1, 1.0, None]))} if draw(st.booleans()) else {}
        out.append(Candidate(f"doc_{i:02d}", "col", draw(st.sampled_from([0.0, 0.5, 1.0])), fields))
    return out


def key_of(c: Candidate) -> tuple[str, Any]:
    return group_key(get_path(c.view(), "g"))


@given(documents(), st.integers(1, 4), st.randoms())
def test_no_group_keeps_more_than_max_per_group(docs: list[Candidate], cap: int, rnd: random.Random) -> None:
    flat = stage(group_by_field="g", max_per_group=cap, output_mode="flatten").run(make_ctx(), docs)
    counts = Counter(key_of(c) for c in flat)
    assert all(n <= cap for n in counts.values())
    assert all(counts[k] == min(n, cap) for k, n in Counter(key_of(c) for c in docs).items())
    grouped = stage(group_by_field="g", max_per_group=cap).run(make_ctx(), docs)
    assert all(1 <= len(g.fields["group_documents"]) == g.fields["group_count"] <= cap for g in grouped)
    shuffled = list(docs)
    rnd.shuffle(shuffled)
    again = stage(group_by_field="g", max_per_group=cap, output_mode="flatten").run(make_ctx(), shuffled)
    assert ids(again) == ids(flat)


@given(documents())
def test_first_yields_unique_group_values_each_the_groups_best(docs: list[Candidate]) -> None:
    out = stage(group_by_field="g", output_mode="first").run(make_ctx(), docs)
    keys = [key_of(c) for c in out]
    assert len(keys) == len(set(keys)) == len({key_of(c) for c in docs})
    for c in out:
        assert c.score == max(d.score for d in docs if key_of(d) == key_of(c))
    assert [c.score for c in out] == sorted((c.score for c in out), reverse=True)
