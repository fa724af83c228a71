"""mmr: greedy relevance/diversity selection on hand-checked vectors, vector loading, validation, properties."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siftline.errors import ValidationError
from siftline.models import Collection, Feature
from siftline.pipeline.candidates import Candidate, rank_key
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.base import PlanContext
from siftline.pipeline.stages.mmr import Mmr
from siftline.storage.sqlite.backend import SQLiteStorage
from siftline.testing import fresh, make_write, new_collection, new_namespace

EMB = Feature("emb", "dense", "vectors", "v1", 2, "cosine")
OTHER = Feature("other", "dense", "vectors", "v1", 2, "cosine")
NOW = datetime(2024, 1, 1, tzinfo=UTC)


def collection(cid: str = "col", features: tuple[Feature, ...] = (EMB,)) -> Collection:
    return Collection(cid, "ns", cid, None, None, features, (), {}, NOW, NOW)


def make_ctx(*collections: Collection) -> ExecutionContext:
    cols = list(collections or [collection(), collection("bare", ())])
    return ExecutionContext(storage=None, embedder=None, collections=cols)  # type: ignore[arg-type]


def cand(doc_id: str, score: float, vec: list[float] | None, **fields: Any) -> Candidate:
    # no vector: a document of the "bare" collection, which has no dense feature (nothing to load)
    if vec is None:
        return Candidate(doc_id, "bare", score, dict(fields))
    return Candidate(doc_id, "col", score, dict(fields), vectors={"emb": vec})


def run(
    params: dict[str, Any], cands: list[Candidate], ctx: ExecutionContext | None = None
) -> list[Candidate]:
    return Mmr("mmr", Mmr.Params.model_validate(params)).run(ctx or make_ctx(), cands)


def ids(out: list[Candidate]) -> list[str]:
    return [c.document_id for c in out]


# a and b are near-duplicates; c is orthogonal to both and least relevant
ABC = [cand("a", 1.0, [1.0, 0.0]), cand("b", 0.9, [1.0, 0.01]), cand("c", 0.5, [0.0, 1.0])]


def test_diversity_promotes_the_orthogonal_document() -> None:
    # relevance a=1, b=0.8, c=0; step 2: b = 0.4 - 0.5*cos(a,b) ≈ -0.09995 < c = 0 - 0 = 0
    out = run({"lambda": 0.5}, ABC)
    assert ids(out) == ["a", "c", "b"]
    assert out[0].scores["mmr"] == pytest.approx(0.5)
    assert out[1].scores["mmr"] == pytest.approx(0.0)
    assert out[2].scores["mmr"] == pytest.approx(0.4 - 0.5 * (1 / np.hypot(1, 0.01)))
    assert [c.score for c in out] == [1.0, 0.5, 0.9]  # scores unchanged


def test_lambda_one_is_relevance_order_and_top_k_cuts() -> None:
    assert ids(run({"lambda": 1}, ABC)) == ["a", "b", "c"]
    assert ids(run({"lambda_": 0.5, "top_k": 2}, ABC)) == ["a", "c"]
    assert run({"lambda": 0.5}, []) == []


def test_metadata_reports_the_diversity_gain() -> None:
    ctx = make_ctx()
    run({"lambda": 0.5, "top_k": 2}, ABC, ctx)
    md = ctx.metadata
    assert (md["input_count"], md["returned"], md["documents_without_vector"], md["moved"]) == (3, 2, 0, 1)
    assert md["mean_similarity_returned"] == pytest.approx(0.0)
    assert md["mean_similarity_by_relevance"] == pytest.approx(1 / np.hypot(1, 0.01), abs=1e-6)


def test_euclidean_similarity_is_one_over_one_plus_distance() -> None:
    cands = [cand("a", 1.0, [0.0, 0.0]), cand("b", 0.5, [3.0, 4.0]), cand("c", 0.0, [1.0, 0.0])]
    out = run({"lambda": 0.0, "similarity_metric": "euclidean"}, cands)
    assert ids(out) == ["a", "b", "c"]  # b is 5 away from a, c only 1
    assert out[1].scores["mmr"] == pytest.approx(-1 / 6)
    assert out[2].scores["mmr"] == pytest.approx(-1 / 2)  # max(1/(1+1), 1/(1+sqrt(20)))


def test_dot_similarity_uses_raw_lengths() -> None:
    cands = [cand("a", 1.0, [1.0, 0.0]), cand("b", 0.5, [0.1, 0.0]), cand("c", 0.0, [5.0, 5.0])]
    assert ids(run({"lambda": 0.0, "similarity_metric": "dot"}, cands))[1] == "b"  # dot 0.1 < 5
    assert ids(run({"lambda": 0.0, "similarity_metric": "cosine"}, cands))[1] == "c"  # cos 0.707 < 1


def test_documents_without_vectors_rank_by_relevance_alone() -> None:
    cands = [cand("a", 1.0, [1.0, 0.0]), cand("b", 0.9, [1.0, 0.0]), cand("n", 0.2, None)]
    ctx = make_ctx()
    out = run({"lambda": 0.5}, cands, ctx)
    assert ids(out) == ["a", "n", "b"]
    assert ctx.metadata["documents_without_vector"] == 1 and not ctx.warnings
    ctx = make_ctx()
    assert ids(run({"lambda": 0.1}, [cand("x", 0.1, None), cand("y", 0.9, None)], ctx)) == ["y", "x"]
    assert ctx.warnings and "relevance only" in ctx.warnings[0]


def test_score_field_and_field_target() -> None:
    cands = [cand("a", 0.0, [1.0, 0.0], rel=1), cand("b", 1.0, [0.0, 1.0], rel=5)]
    out = run({"lambda": 1.0, "score_field": "rel", "mmr_score_field": "meta.mmr"}, cands)
    assert ids(out) == ["b", "a"]
    assert out[0].fields["meta"] == {"mmr": 1.0} and "mmr" not in out[0].scores
    assert "mmr" not in run({"mmr_score_field": None}, ABC)[0].scores


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[SQLiteStorage]:
    st_ = SQLiteStorage(tmp_path / "siftline.db", tmp_path / "vectors")
    yield st_
    st_.close()


def test_vectors_are_loaded_once_per_collection(storage: SQLiteStorage) -> None:
    ns = new_namespace(storage, "default")
    cols = []
    for name, rows in (("one", {"a": [1, 0], "b": [1, 0.01]}), ("two", {"c": [0, 1]})):
        col = new_collection(storage, ns, name, (EMB,), ())
        writes = [
            make_write(col, d, vectors={"emb": np.asarray(v, dtype=np.float32)}) for d, v in rows.items()
        ]
        storage.put_documents(col, writes, replace=False)
        cols.append(fresh(storage, col))
    calls: list[int] = []
    original = storage.get_documents

    def counting(col: Collection, doc_ids: Any, *, with_vectors: bool = False) -> Any:
        calls.append(len(doc_ids))
        assert with_vectors
        return original(col, doc_ids, with_vectors=with_vectors)

    storage.get_documents = counting  # type: ignore[method-assign, assignment]
    cands = [Candidate("a", cols[0].collection_id, 1.0, {}), Candidate("b", cols[0].collection_id, 0.9, {})]
    cands.append(Candidate("c", cols[1].collection_id, 0.5, {}))
    ctx = ExecutionContext(storage=storage, embedder=None, collections=cols)  # type: ignore[arg-type]
    out = Mmr("mmr", Mmr.Params.model_validate({"lambda": 0.5, "diversity_feature_uri": EMB.uri})).run(
        ctx, cands
    )
    assert ids(out) == ["a", "c", "b"]
    assert sorted(calls) == [1, 2] and ctx.metadata["vectors_loaded"] == 3


def test_check_names_the_feature() -> None:
    plan = PlanContext([collection()])
    Mmr.check(Mmr.Params.model_validate({}), plan, ["stages", 0, "parameters"])
    Mmr.check(Mmr.Params.model_validate({"diversity_feature_uri": "emb"}), plan, [])
    with pytest.raises(ValidationError, match="no collection"):
        Mmr.check(Mmr.Params.model_validate({"diversity_feature_uri": "nope"}), plan, [])
    with pytest.raises(ValidationError, match="several dense"):
        Mmr.check(Mmr.Params.model_validate({}), PlanContext([collection(features=(EMB, OTHER))]), [])


@pytest.mark.parametrize(
    "params",
    [
        {"lambda": 1.5},
        {"lambda": -0.1},
        {"top_k": 0},
        {"top_k": 501},
        {"similarity_metric": "manhattan"},
        {"mmr_score_field": "score"},
        {"mmr_score_field": "scores"},
        {"diversity_fields": ["category"]},
    ],
)
def test_bad_params(params: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        Mmr.Params.model_validate(params)


vec = st.lists(st.integers(-3, 3).map(float), min_size=2, max_size=2)
cand_lists = st.lists(
    st.tuples(st.sampled_from([0.0, 0.5, 1.0, 2.0]), st.one_of(vec, st.none())), min_size=0, max_size=8
).map(lambda rows: [cand(f"d{i}", s, v) for i, (s, v) in enumerate(rows)])
metrics = st.sampled_from(["cosine", "dot", "euclidean"])


@settings(max_examples=150, deadline=None)
@given(cand_lists, metrics, st.integers(1, 10))
def test_lambda_one_is_rank_key_order(cands: list[Candidate], metric: str, top_k: int) -> None:
    out = run({"lambda": 1.0, "similarity_metric": metric, "top_k": top_k}, cands)
    assert ids(out) == ids(sorted(cands, key=rank_key))[:top_k]


@settings(max_examples=150, deadline=None)
@given(cand_lists, metrics, st.floats(0, 1), st.integers(1, 10))
def test_output_is_a_permutation_prefix(cands: list[Candidate], metric: str, lam: float, top_k: int) -> None:
    out = ids(run({"lambda": lam, "similarity_metric": metric, "top_k": top_k}, cands))
    assert len(out) == len(set(out)) == min(top_k, len(cands))
    assert set(out) <= set(ids(cands))


def _sim(metric: str, a: list[float] | None, b: list[float] | None) -> float:
    if a is None or b is None:
        return 0.0
    x, y = np.asarray(a), np.asarray(b)
    if metric == "euclidean":
        return float(1 / (1 + np.linalg.norm(x - y)))
    if metric == "cosine":
        nx, ny = np.linalg.norm(x), np.linalg.norm(y)
        return float(x @ y / (nx * ny)) if nx and ny else 0.0
    return float(x @ y)


@settings(max_examples=150, deadline=None)
@given(cand_lists.filter(lambda c: len(c) >= 2), metrics)
def test_lambda_zero_second_pick_is_least_similar_to_first(cands: list[Candidate], metric: str) -> None:
    out = run({"lambda": 0.0, "similarity_metric": metric}, cands)
    ordered = sorted(cands, key=rank_key)
    first = ordered[0]
    assert out[0].document_id == first.document_id
    vec_of = {c.document_id: (c.vectors or {}).get("emb") for c in cands}
    sims = {
        c.document_id: _sim(metric, vec_of[first.document_id], vec_of[c.document_id]) for c in ordered[1:]
    }
    # the least similar (equal similarities, up to rounding, may go either way)
    assert sims[out[1].document_id] <= min(sims.values()) + 1e-9
