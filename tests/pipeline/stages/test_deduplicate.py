"""deduplicate: key-field and similarity modes, keep first/last, vector loading, metadata, validation, properties."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from siftline.errors import ValidationError
from siftline.models import Collection, Feature
from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.base import PlanContext
from siftline.pipeline.stages.deduplicate import Deduplicate, value_key
from siftline.service import collections
from siftline.service.documents import DocumentService
from siftline.service.namespaces import ensure_namespace
from siftline.storage.sqlite.backend import SQLiteStorage


def make_ctx(cols: list[Collection] | None = None, storage: Any = None) -> ExecutionContext:
    return ExecutionContext(storage=storage, embedder=None, collections=cols or [])  # type: ignore[arg-type]


def stage(**params: Any) -> Deduplicate:
    return Deduplicate("dd", Deduplicate.Params.model_validate(params))


def cand(doc_id: str, score: float = 0.5, vec: list[float] | None = None, **fields: Any) -> Candidate:
    return Candidate(doc_id, "col_a", score, fields, vectors=None if vec is None else {"emb": vec})


def ids(out: list[Candidate]) -> list[str]:
    return [c.document_id for c in out]


DOCS = [
    cand("a", url="x", lang="en"),
    cand("b", url="y", lang="en"),
    cand("c", url="x", lang="en"),
    cand("d", url="x", lang="fr"),
    cand("e", url="X", lang="en"),  # case-sensitive: not a duplicate of x
    cand("f", lang="en"),  # url missing: never a duplicate
    cand("g", lang="en"),
    cand("h", url="y", lang="en"),
]


def test_one_field_keeps_the_first_of_each_value_in_order() -> None:
    ctx = make_ctx()
    out = stage(fields=["url"]).run(ctx, DOCS)
    assert ids(out) == ["a", "b", "e", "f", "g"]
    assert out[0] is DOCS[0]
    assert ctx.metadata == {
        "mode": "fields",
        "keep": "first",
        "input_count": 8,
        "returned": 5,
        "duplicates_dropped": 3,
        "groups": 2,
        "without_key": 2,
    }


def test_keep_last_keeps_the_last_of_each_value_in_input_order() -> None:
    assert ids(stage(fields=["url"], keep="last").run(make_ctx(), DOCS)) == ["d", "e", "f", "g", "h"]


def test_all_fields_must_be_equal() -> None:
    assert ids(stage(fields=["url", "lang"]).run(make_ctx(), DOCS)) == ["a", "b", "d", "e", "f", "g"]


def test_equality_is_json_type_aware() -> None:
    docs = [cand("a", v=1), cand("b", v=1.0), cand("c", v=True), cand("d", v="1"), cand("e", v=None)]
    docs += [cand("f", v=None), cand("g", v=[1, {"k": 2}]), cand("h", v=[1, {"k": 2}]), cand("i", v=False)]
    assert ids(stage(fields=["v"]).run(make_ctx(), docs)) == ["a", "c", "d", "e", "g", "i"]
    assert value_key(float("nan")) is None


def test_dotted_paths_and_view_fields() -> None:
    docs = [cand("a", meta={"src": 1}), cand("b", meta={"src": 1}), cand("a", meta={"src": 2})]
    assert ids(stage(fields=["meta.src"]).run(make_ctx(), docs)) == ["a", "a"]
    assert ids(stage(fields=["document_id"]).run(make_ctx(), docs)) == ["a", "b"]


def test_similarity_drops_candidates_close_to_a_kept_one() -> None:
    docs = [
        cand("a", vec=[1.0, 0.0]),
        cand("b", vec=[0.0, 2.0]),
        cand("c", vec=[0.99, 0.1]),  # cos with a ≈ 0.995
        cand("d", vec=[0.6, 0.8]),  # cos with a 0.6, with b 0.8
        Candidate("e", "col_other", 0.5, {}),  # its collection lacks the feature: kept
        cand("f", vec=[0.0, 0.0]),  # zero vector: kept
    ]
    ctx = make_ctx([_fake_collection()])
    out = stage(feature_uri="emb", threshold=0.8).run(ctx, docs)
    assert ids(out) == ["a", "b", "e", "f"]
    assert ctx.metadata["groups"] == 2 and ctx.metadata["duplicates_dropped"] == 2
    assert ctx.metadata["without_key"] == 2 and ctx.metadata["mode"] == "similarity"
    assert ids(stage(feature_uri="emb", threshold=0.99, keep="last").run(ctx, docs)) == [
        "b",
        "c",
        "d",
        "e",
        "f",
    ]


def test_threshold_is_inclusive() -> None:
    docs = [cand("a", vec=[1.0, 0.0]), cand("b", vec=[0.6, 0.8])]
    ctx = make_ctx([_fake_collection()])
    assert ids(stage(feature_uri="emb", threshold=0.6).run(ctx, docs)) == ["a"]
    assert ids(stage(feature_uri="emb", threshold=0.61).run(ctx, docs)) == ["a", "b"]


def _fake_collection() -> Collection:
    now = datetime.now(UTC)
    feature = Feature("emb", "dense", "vectors", "v1", 2, "cosine")
    return Collection("col_a", "ns", "a", None, None, (feature,), (), {}, now, now)


def test_vectors_are_loaded_from_storage_with_one_call_per_collection(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "siftline.db", tmp_path / "vectors")
    ns = ensure_namespace(storage, "default")
    cfg = [{"name": "emb", "dimension": 2, "metric": "dot_product"}]
    col1 = collections.create(storage, ns, collection_name="one", vector_configs=cfg)
    col2 = collections.create(storage, ns, collection_name="two", vector_configs=cfg)
    service = DocumentService(storage, None, 1000)  # type: ignore[arg-type]
    rows1 = [("a", [1.0, 0.0]), ("b", [0.0, 1.0]), ("c", [3.0, 0.1])]
    service.create_batch(col1, {"documents": [{"document_id": d, "vectors": {"emb": v}} for d, v in rows1]})
    service.create_batch(col2, {"documents": [{"document_id": "z", "vectors": {"emb": [0.1, 1.0]}}]})
    docs = [Candidate(d, col1.collection_id, 0.0, {}) for d in ("a", "b", "c")]
    docs.insert(2, Candidate("z", col2.collection_id, 0.0, {}, vectors={"emb": [0.1, 1.0]}))
    docs.append(Candidate("b", col2.collection_id, 0.0, {}))  # not stored: no vector, kept
    ctx = make_ctx([col1, col2], storage)
    with patch.object(storage, "get_documents", wraps=storage.get_documents) as spy:
        out = stage(feature_uri="mixpeek://vectors@v1/emb", threshold=0.99).run(ctx, docs)
    assert [(c.document_id, c.collection_id) for c in out] == [
        ("a", col1.collection_id),
        ("b", col1.collection_id),
        ("b", col2.collection_id),
    ]
    assert all(c.vectors is None for c in out if c.document_id != "z")
    assert spy.call_count == 2
    assert all(call.kwargs == {"with_vectors": True} for call in spy.call_args_list)
    plan = PlanContext([col1, col2])
    Deduplicate.check(Deduplicate.Params.model_validate({"feature_uri": "emb"}), plan, ["stages", 0])
    with pytest.raises(ValidationError, match="feature_uri"):
        Deduplicate.check(Deduplicate.Params.model_validate({"feature_uri": "nope"}), plan, ["stages", 0])


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"fields": ["url"], "feature_uri": "emb"},
        {"fields": []},
        {"fields": ["a..b"]},
        {"fields": [""]},
        {"feature_uri": "emb", "threshold": 1.5},
        {"feature_uri": "emb", "threshold": -2},
        {"fields": ["url"], "keep": "middle"},
        {"fields": "url"},
        {"fields": ["url"], "unknown": 1},
    ],
)
def test_bad_params_are_rejected(params: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        Deduplicate.Params.model_validate(params)


def test_empty_input() -> None:
    assert stage(fields=["url"]).run(make_ctx(), []) == []


values = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from(["a", "A", "b"]))
docs_strategy = st.lists(
    st.fixed_dictionaries({"k": values, "j": values}, optional={"m": values}), max_size=25
).map(lambda rows: [Candidate(f"d{i}", "col_a", 0.0, row) for i, row in enumerate(rows)])


@given(docs_strategy, st.sampled_from(["first", "last"]), st.sampled_from([["k"], ["k", "j"], ["m"]]))
def test_properties_of_field_dedup(docs: list[Candidate], keep: str, fields: list[str]) -> None:
    dd = stage(fields=fields, keep=keep)
    out = dd.run(make_ctx(), docs)
    keys = [tuple(value_key(c.fields[f]) if f in c.fields else None for f in fields) for c in out]
    present = [k for k in keys if None not in k]
    assert len(present) == len(set(present))  # no two kept documents with equal key fields
    positions = [docs.index(c) for c in out]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)  # ordered subsequence
    assert dd.run(make_ctx(), out) == out  # idempotent
    keyed = [
        tuple(value_key(c.fields[f]) for f in fields) for c in docs if all(f in c.fields for f in fields)
    ]
    assert len(set(keyed)) == len(present)  # one survivor per distinct key


unit = st.floats(-1, 1, allow_nan=False)


@given(
    st.lists(st.tuples(unit, unit, unit), max_size=20),
    st.floats(0.5, 1.0),
    st.sampled_from(["first", "last"]),
)
def test_properties_of_similarity_dedup(
    vecs: list[tuple[float, float, float]], threshold: float, keep: str
) -> None:
    docs = [cand(f"d{i}", vec=list(v)) for i, v in enumerate(vecs)]
    ctx = make_ctx([_fake_collection()])
    dd = stage(feature_uri="emb", threshold=threshold, keep=keep)
    out = dd.run(ctx, docs)
    positions = [docs.index(c) for c in out]
    assert positions == sorted(positions)
    assert dd.run(make_ctx([_fake_collection()]), out) == out
