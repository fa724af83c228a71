"""sample: the three strategies, seeds, preserve_top_k, stratum minimums, metadata, validation, properties."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.sample import Sample


def make_ctx() -> ExecutionContext:
    return ExecutionContext(storage=None, embedder=None, collections=[])  # type: ignore[arg-type]


def stage(**params: Any) -> Sample:
    return Sample("s", Sample.Params.model_validate(params))


def docs(n: int, cats: str = "") -> list[Candidate]:
    out = []
    for i in range(n):
        fields = {"meta": {"cat": cats[i % len(cats)]}} if cats else {}
        out.append(Candidate(f"d{i:03d}", "col_a", 1.0 - i / 1000, fields))
    return out


def ids(out: list[Candidate]) -> list[str]:
    return [c.document_id for c in out]


def cats(out: list[Candidate]) -> Counter[str]:
    return Counter(c.fields.get("meta", {}).get("cat") for c in out)


@pytest.mark.parametrize("strategy", ["random", "reservoir"])
def test_samples_count_documents_in_input_order(strategy: str) -> None:
    data = docs(50)
    ctx = make_ctx()
    out = stage(count=10, strategy=strategy, seed=7).run(ctx, data)
    assert len(out) == 10 and len(set(ids(out))) == 10
    assert ids(out) == sorted(ids(out))  # relative order kept
    assert all(c in data for c in out)
    assert ctx.metadata == {
        "strategy": strategy,
        "seed": 7,
        "count": 10,
        "input_count": 50,
        "returned": 10,
        "dropped": 40,
        "preserved": 0,
    }


def test_same_seed_same_output_different_seeds_differ() -> None:
    data = docs(50)
    first = ids(stage(count=10, seed=1).run(make_ctx(), data))
    assert ids(stage(count=10, seed=1).run(make_ctx(), data)) == first
    assert ids(stage(count=10, seed=2).run(make_ctx(), data)) != first
    assert ids(stage(count=10, seed=1, strategy="reservoir").run(make_ctx(), data)) != first


def test_count_above_the_input_returns_everything_unchanged() -> None:
    data = docs(5)
    assert stage(count=10).run(make_ctx(), data) == data
    assert stage(count=3).run(make_ctx(), []) == []


def test_preserve_top_k_keeps_the_first_documents() -> None:
    data = docs(30)
    ctx = make_ctx()
    out = stage(count=6, preserve_top_k=4, seed=3).run(ctx, data)
    assert ids(out)[:4] == ["d000", "d001", "d002", "d003"] and len(out) == 6
    assert ctx.metadata["preserved"] == 4
    assert ids(stage(count=4, preserve_top_k=4).run(make_ctx(), data)) == ids(data[:4])


def test_stratified_is_proportional_and_honours_minimums() -> None:
    # 40 documents: 30 a, 8 b, 2 c (every 20: 15 a, 4 b, 1 c).
    data = docs(40, "aaabaaabaaabaaabaaac")
    assert cats(data) == {"a": 30, "b": 8, "c": 2}
    ctx = make_ctx()
    out = stage(count=10, strategy="stratified", stratify_by="meta.cat", seed=5).run(ctx, data)
    # minimums 1 each, then 7 slots over 29/7/1 remaining: 7*29/37 = 5.49, 1.32, 0.19 → 5+1, 1, 0
    assert cats(out) == {"a": 7, "b": 2, "c": 1}
    assert ids(out) == sorted(ids(out))
    assert (ctx.metadata["strata"], ctx.metadata["strata_below_minimum"]) == (3, 0)
    out = stage(count=10, strategy="stratified", stratify_by="meta.cat", min_per_stratum=4).run(
        make_ctx(), data
    )
    assert cats(out)["b"] >= 4 and cats(out)["c"] == 2 and len(out) == 10


def test_stratified_missing_and_null_form_one_stratum_and_preserved_count() -> None:
    data = [Candidate("p", "c", 1.0, {"k": "x"}), *docs(6), Candidate("n", "c", 0.0, {"k": None})]
    data += [Candidate(f"x{i}", "c", 0.0, {"k": "x"}) for i in range(5)]
    out = stage(
        count=3, strategy="stratified", stratify_by="k", min_per_stratum=1, preserve_top_k=1, seed=0
    ).run(make_ctx(), data)
    assert ids(out)[0] == "p" and len(out) == 3
    # strata: x (6 docs, "p" preserved counts for it), null (7 docs): the null stratum gets its minimum
    assert sum(1 for c in out if c.fields.get("k") is None) >= 1


def test_stratified_count_is_a_cap_and_shortfall_is_reported() -> None:
    data = docs(6, "abc")
    ctx = make_ctx()
    out = stage(count=2, strategy="stratified", stratify_by="meta.cat", min_per_stratum=1, seed=9).run(
        ctx, data
    )
    assert cats(out) == {"a": 1, "b": 1}  # strata served in order of their first document
    assert ctx.metadata["strata_below_minimum"] == 1 and ctx.warnings


@pytest.mark.parametrize(
    "params",
    [
        {"count": 0},
        {"count": 1001},
        {"count": True},
        {"strategy": "systematic"},
        {"strategy": "stratified"},
        {"strategy": "stratified", "stratify_by": ""},
        {"min_per_stratum": -1},
        {"preserve_top_k": -1},
        {"count": 3, "preserve_top_k": 4},
        {"seed": "abc"},
        {"seed": False},
        {"fraction": 0.5},
    ],
)
def test_bad_params_are_rejected(params: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        Sample.Params.model_validate(params)


def test_defaults_follow_the_sdk() -> None:
    p = Sample.Params.model_validate({})
    assert (p.count, p.strategy, p.stratify_by, p.min_per_stratum, p.seed, p.preserve_top_k) == (
        10,
        "random",
        None,
        1,
        None,
        0,
    )


def _preserve_within_count(p: dict[str, Any]) -> bool:
    return bool(p["preserve_top_k"] <= p["count"])


params_strategy: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "count": st.integers(1, 30),
        "strategy": st.sampled_from(["random", "stratified", "reservoir"]),
        "seed": st.integers(0, 2**32),
        "min_per_stratum": st.integers(0, 4),
        "preserve_top_k": st.integers(0, 5),
    }
).filter(_preserve_within_count)


@given(st.integers(0, 40), st.text("abcd", min_size=1, max_size=6), params_strategy)
def test_properties(n: int, pattern: str, params: dict[str, Any]) -> None:
    data = docs(n, pattern)
    s = stage(stratify_by="meta.cat", **params)
    out = s.run(make_ctx(), data)
    assert ids(stage(stratify_by="meta.cat", **params).run(make_ctx(), data)) == ids(out)  # same seed
    assert len(out) == min(params["count"], n)  # size as requested, bounded by input
    positions = [data.index(c) for c in out]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)  # ordered subset
    assert ids(data[: min(params["preserve_top_k"], n)]) == ids(out)[: min(params["preserve_top_k"], n)]
    sizes, got, m = cats(data), cats(out), params["min_per_stratum"]
    if params["strategy"] == "stratified" and params["count"] - params["preserve_top_k"] >= len(sizes) * m:
        assert all(got[k] >= m for k, size in sizes.items() if size >= m)  # minimums honoured


def test_different_seeds_usually_differ() -> None:
    data = docs(100, "abcde")
    for strategy in ("random", "stratified", "reservoir"):
        outs = {
            tuple(
                ids(
                    stage(count=10, strategy=strategy, stratify_by="meta.cat", seed=seed).run(
                        make_ctx(), data
                    )
                )
            )
            for seed in range(5)
        }
        assert len(outs) == 5
