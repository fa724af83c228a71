"""sort_relevance: direction, deterministic ties, a custom score field and where missing scores go."""

from __future__ import annotations

import random
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from siftline.pipeline.candidates import Candidate, rank_key
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.sort_relevance import SortRelevance


def make_ctx() -> ExecutionContext:
    return ExecutionContext(storage=None, embedder=None, collections=[])  # type: ignore[arg-type]


def cand(doc_id: str, score: float, collection: str = "col_a", **fields: Any) -> Candidate:
    return Candidate(doc_id, collection, score, fields)


def ids(params: dict[str, Any], cands: list[Candidate]) -> list[str]:
    stage = SortRelevance("sr", SortRelevance.Params.model_validate(params))
    return [c.document_id for c in stage.run(make_ctx(), cands)]


DOCS = [cand("c", 0.5), cand("a", 0.9), cand("d", 0.5), cand("b", 0.1), cand("e", 0.9)]


def test_default_is_highest_score_first_with_ties_by_document_id() -> None:
    assert ids({}, DOCS) == ["a", "e", "c", "d", "b"]


def test_ascending_keeps_ties_by_document_id() -> None:
    assert ids({"direction": "asc"}, DOCS) == ["b", "c", "d", "a", "e"]


def test_ties_on_the_same_document_id_fall_back_to_collection_id() -> None:
    docs = [cand("x", 1.0, "col_b"), cand("x", 1.0, "col_a")]
    stage = SortRelevance("sr", SortRelevance.Params.model_validate({}))
    assert [c.collection_id for c in stage.run(make_ctx(), docs)] == ["col_a", "col_b"]


SCORED = [
    cand("a", 0.1, rerank={"score": 0.2}),
    cand("b", 0.2),
    cand("c", 0.3, rerank={"score": 0.9}),
    cand("d", 0.4, rerank={"score": "high"}),
    cand("e", 0.5, rerank={"score": 0.5}),
    cand("f", 0.6, rerank={"score": True}),
]


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("bottom", ["c", "e", "a", "f", "d", "b"]),
        ("top", ["f", "d", "b", "c", "e", "a"]),
        ("preserve", ["c", "b", "e", "d", "a", "f"]),
    ],
)
def test_custom_score_field_and_missing_scores(missing: str, expected: list[str]) -> None:
    # b has no rerank score; d's is a string and f's a boolean: all three count as missing.
    assert ids({"score_field": "rerank.score", "missing_score": missing}, SCORED) == expected


def test_metadata_and_scores_are_untouched() -> None:
    ctx = make_ctx()
    stage = SortRelevance("sr", SortRelevance.Params.model_validate({"score_field": "rerank.score"}))
    out = stage.run(ctx, SCORED)
    assert [c.score for c in out] == [0.3, 0.5, 0.1, 0.6, 0.4, 0.2]
    assert ctx.metadata == {
        "score_field": "rerank.score",
        "direction": "desc",
        "missing_score": "bottom",
        "sorted_count": 3,
        "missing_count": 3,
    }


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"direction": "descending"}, ("direction",)),
        ({"direction": None}, ("direction",)),
        ({"missing_score": "last"}, ("missing_score",)),
        ({"score_field": ""}, ("score_field",)),
        ({"feature_address": "mixpeek://text_extractor@v1/text"}, ("feature_address",)),
        ({"sort_by": "score"}, ("sort_by",)),
    ],
)
def test_bad_params_are_refused(params: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        SortRelevance.Params.model_validate(params)
    assert [e["loc"] for e in info.value.errors()] == [loc]


candidates = st.lists(
    st.builds(
        Candidate,
        document_id=st.sampled_from(["a", "b", "c", "d", "e", "f"]),
        collection_id=st.sampled_from(["c1", "c2"]),
        score=st.sampled_from([0.0, 0.25, 0.5, 1.0, -1.0]),
        fields=st.just({}),
    ),
    max_size=20,
)


@given(candidates, st.randoms())
def test_default_order_is_rank_key_order_whatever_the_input_order(
    docs: list[Candidate], rnd: random.Random
) -> None:
    shuffled = list(docs)
    rnd.shuffle(shuffled)
    stage = SortRelevance("sr", SortRelevance.Params.model_validate({}))
    out = stage.run(make_ctx(), shuffled)
    assert [rank_key(c) for c in out] == sorted(rank_key(c) for c in docs)
    assert sorted(map(id, out)) == sorted(map(id, docs))
