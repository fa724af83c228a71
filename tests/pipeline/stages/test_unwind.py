"""unwind: splitting, ids, preserve_null_and_empty, index field, nested paths, metadata, validation, properties."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.group_by import GroupBy
from siftline.pipeline.stages.unwind import Unwind


def make_ctx() -> ExecutionContext:
    return ExecutionContext(storage=None, embedder=None, collections=[])  # type: ignore[arg-type]


def stage(**params: Any) -> Unwind:
    return Unwind("uw", Unwind.Params.model_validate(params))


def cand(doc_id: str, score: float, **fields: Any) -> Candidate:
    return Candidate(doc_id, "col_a", score, fields, internal={"created_at": "t"}, vectors={"emb": [0.1]})


DOCS = [
    cand("a", 0.9, tags=["x", "y"], title="A"),
    cand("b", 0.8, tags=[]),
    cand("c", 0.7),
    cand("d", 0.6, tags=None),
    cand("e", 0.5, tags="solo"),
    cand("f", 0.4, tags=[{"k": 1}]),
]


def test_one_candidate_per_element_with_suffixed_ids_and_source_id() -> None:
    ctx = make_ctx()
    out = stage(field="tags").run(ctx, DOCS)
    assert [c.document_id for c in out] == ["a#0", "a#1", "e", "f#0"]
    assert [c.fields["tags"] for c in out] == ["x", "y", "solo", {"k": 1}]
    assert [c.fields["source_document_id"] for c in out] == ["a", "a", "e", "f"]
    assert out[0].fields["title"] == "A" and out[1].score == 0.9
    assert out[0].vectors == {"emb": [0.1]} and out[0].internal == {"created_at": "t"}
    assert "array_index" not in out[0].fields
    assert DOCS[0].fields["tags"] == ["x", "y"]  # the input is not modified
    assert ctx.metadata == {
        "field": "tags",
        "documents_in": 6,
        "documents_out": 4,
        "arrays_unwound": 2,
        "elements": 3,
        "preserved": 0,
        "dropped": 3,
        "non_array": 1,
    }


def test_preserve_null_and_empty_keeps_them_once_with_their_id() -> None:
    ctx = make_ctx()
    out = stage(field="tags", preserve_null_and_empty=True, include_array_index=True).run(ctx, DOCS)
    assert [c.document_id for c in out] == ["a#0", "a#1", "b", "c", "d", "e", "f#0"]
    assert [c.fields.get("tags", "absent") for c in out] == ["x", "y", None, "absent", None, "solo", {"k": 1}]
    assert [c.fields["array_index"] for c in out] == [0, 1, None, None, None, None, 0]
    assert ctx.metadata["preserved"] == 3 and ctx.metadata["dropped"] == 0


def test_nested_path_and_custom_index_field() -> None:
    doc = cand("a", 1.0, meta={"authors": ["p", "q"], "year": 2020})
    out = stage(field="meta.authors", include_array_index=True, index_field="pos").run(make_ctx(), [doc])
    assert [c.fields["meta"] for c in out] == [{"authors": "p", "year": 2020}, {"authors": "q", "year": 2020}]
    assert [c.fields["pos"] for c in out] == [0, 1]
    assert doc.fields["meta"]["authors"] == ["p", "q"]


def test_path_through_a_list_is_absent() -> None:
    out = stage(field="tags.k").run(make_ctx(), [cand("a", 1.0, tags=[{"k": [1, 2]}])])
    assert out == []


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"field": ""},
        {"field": "a..b"},
        {"field": "score"},
        {"field": "_internal.tags"},
        {"field": "tags", "include_array_index": True, "index_field": "tags"},
        {"field": "tags", "include_array_index": True, "index_field": "source_document_id"},
        {"field": "tags", "include_array_index": True, "index_field": ""},
        {"field": "tags", "preserve_null_and_empty": "maybe"},
        {"field": "tags", "path": "tags"},
    ],
)
def test_bad_params_are_rejected(params: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        Unwind.Params.model_validate(params)


ARRAYS = st.one_of(st.none(), st.lists(st.one_of(st.integers(), st.text(max_size=3), st.none()), max_size=6))


@given(st.lists(ARRAYS, max_size=15), st.booleans())
def test_regrouping_restores_array_lengths_and_indexes_enumerate(arrays: list[Any], preserve: bool) -> None:
    docs = [cand(f"d{i}", 1.0, **({} if a is None and i % 2 else {"arr": a})) for i, a in enumerate(arrays)]
    out = stage(field="arr", include_array_index=True, preserve_null_and_empty=preserve).run(make_ctx(), docs)
    assert len({c.document_id for c in out}) == len(out)
    split = [c for c in out if c.fields["array_index"] is not None]
    counts = Counter(c.fields["source_document_id"] for c in split)
    expected = {d.document_id: len(d.fields["arr"]) for d in docs if d.fields.get("arr")}
    assert counts == expected
    for doc in docs:
        parts = [c for c in split if c.fields["source_document_id"] == doc.document_id]
        assert [c.fields["array_index"] for c in parts] == list(range(len(parts)))
        assert [c.fields["arr"] for c in parts] == (doc.fields.get("arr") or [])
    assert len(out) - len(split) == (sum(not d.fields.get("arr") for d in docs) if preserve else 0)


@given(st.lists(st.lists(st.integers(), min_size=1, max_size=6), min_size=1, max_size=10))
def test_unwind_then_the_group_by_stage_restores_each_documents_element_count(
    arrays: list[list[int]],
) -> None:
    """The catalogue's own group_by stage, grouping the unwound documents by their source, counts back
    each array's length (and the index field enumerates it)."""
    docs = [cand(f"d{i}", 1.0 - i / 100, arr=a) for i, a in enumerate(arrays)]
    ctx = make_ctx()
    unwound = stage(field="arr", include_array_index=True).run(ctx, docs)
    grouping = GroupBy.Params.model_validate(
        {"group_by_field": "source_document_id", "max_per_group": 1000, "output_mode": "all"}
    )
    groups = GroupBy("regroup", grouping).run(ctx, unwound)
    counts = {g.fields["group_key"]: g.fields["group_count"] for g in groups}
    assert counts == {d.document_id: len(d.fields["arr"]) for d in docs}
    for g in groups:
        assert sorted(m["array_index"] for m in g.fields["group_documents"]) == list(
            range(g.fields["group_count"])
        )
