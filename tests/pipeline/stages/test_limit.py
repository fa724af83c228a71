"""limit: the window candidates[offset : offset + limit], its metadata and its validation."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.limit import Limit


def make_ctx() -> ExecutionContext:
    return ExecutionContext(storage=None, embedder=None, collections=[])  # type: ignore[arg-type]


def docs(n: int) -> list[Candidate]:
    # Scores increase with the index: the stage must slice, never re-sort.
    return [Candidate(f"d{i}", "col", float(i), {}) for i in range(n)]


def ids(params: dict[str, Any], cands: list[Candidate]) -> list[str]:
    stage = Limit("lim", Limit.Params.model_validate(params))
    return [c.document_id for c in stage.run(make_ctx(), cands)]


def test_limit_keeps_the_first_documents_in_incoming_order() -> None:
    assert ids({"limit": 3}, docs(5)) == ["d0", "d1", "d2"]


def test_offset_skips_leading_documents() -> None:
    assert ids({"limit": 2, "offset": 1}, docs(5)) == ["d1", "d2"]
    assert ids({"limit": 10, "offset": 3}, docs(5)) == ["d3", "d4"]


def test_offset_past_the_end_is_an_empty_page_not_an_error() -> None:
    assert ids({"limit": 2, "offset": 5}, docs(5)) == []
    assert ids({"limit": 2, "offset": 100}, docs(5)) == []
    assert ids({"limit": 1}, []) == []


def test_numbers_a_template_rendered_are_accepted() -> None:
    assert Limit.Params.model_validate({"limit": "4", "offset": 2.0}).model_dump() == {
        "limit": 4,
        "offset": 2,
    }


def test_metadata() -> None:
    ctx = make_ctx()
    Limit("lim", Limit.Params.model_validate({"limit": 2, "offset": 4})).run(ctx, docs(5))
    assert ctx.metadata == {"limit": 2, "offset": 4, "input_count": 5, "returned": 1, "dropped": 4}


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({}, ("limit",)),
        ({"limit": 0}, ("limit",)),
        ({"limit": -1}, ("limit",)),
        ({"limit": 2.5}, ("limit",)),
        ({"limit": True}, ("limit",)),
        ({"limit": "ten"}, ("limit",)),
        ({"limit": 1, "offset": -1}, ("offset",)),
        ({"limit": 1, "offset": False}, ("offset",)),
        ({"limit": 1, "page": 2}, ("page",)),
    ],
)
def test_bad_params_are_refused(params: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        Limit.Params.model_validate(params)
    assert [e["loc"] for e in info.value.errors()] == [loc]


@given(st.integers(0, 30), st.integers(1, 40), st.integers(0, 40))
def test_output_is_the_slice(n: int, limit: int, offset: int) -> None:
    cands = docs(n)
    out = Limit("lim", Limit.Params.model_validate({"limit": limit, "offset": offset})).run(make_ctx(), cands)
    assert out == cands[offset : offset + limit]
    assert all(a is b for a, b in zip(out, cands[offset:], strict=False))
