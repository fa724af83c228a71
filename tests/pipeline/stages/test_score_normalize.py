"""score_normalize: each method on hand-checked scores, constant scores, targets, validation, properties."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.score_normalize import ScoreNormalize


def make_ctx() -> ExecutionContext:
    return ExecutionContext(storage=None, embedder=None, collections=[])  # type: ignore[arg-type]


def docs(scores: list[float]) -> list[Candidate]:
    return [Candidate(f"d{i}", "col", s, {"title": f"t{i}"}) for i, s in enumerate(scores)]


def run(params: dict[str, Any], scores: list[float], ctx: ExecutionContext | None = None) -> list[Candidate]:
    stage = ScoreNormalize("norm", ScoreNormalize.Params.model_validate(params))
    return stage.run(ctx or make_ctx(), docs(scores))


def norm(params: dict[str, Any], scores: list[float]) -> list[float]:
    return [c.score for c in run(params, scores)]


def test_min_max() -> None:
    assert norm({}, [4.0, 2.0, 0.0, 1.0]) == [1.0, 0.5, 0.0, 0.25]
    assert norm({"method": "min_max"}, [-3.0, -1.0]) == [0.0, 1.0]  # order kept, not re-sorted


def test_z_score() -> None:
    # mean 2, population std sqrt(2/3)
    out = norm({"method": "z_score"}, [3.0, 2.0, 1.0])
    assert out == pytest.approx([math.sqrt(1.5), 0.0, -math.sqrt(1.5)])


def test_softmax_and_temperature() -> None:
    out = norm({"method": "softmax"}, [math.log(3), 0.0])
    assert out == pytest.approx([0.75, 0.25])
    hot = norm({"method": "softmax", "temperature": 2.0}, [math.log(9), 0.0])  # exp(log(9)/2) = 3
    assert hot == pytest.approx([0.75, 0.25])


def test_l2() -> None:
    assert norm({"method": "l2"}, [3.0, -4.0]) == pytest.approx([0.6, -0.8])


@pytest.mark.parametrize(
    ("method", "expected"), [("min_max", 1.0), ("z_score", 0.0), ("softmax", 1 / 3), ("l2", 1 / math.sqrt(3))]
)
def test_constant_scores_do_not_divide_by_zero(method: str, expected: float) -> None:
    assert norm({"method": method}, [2.0, 2.0, 2.0]) == pytest.approx([expected] * 3)


def test_zero_scores_and_single_and_empty() -> None:
    assert norm({"method": "l2"}, [0.0, 0.0]) == [0.0, 0.0]
    assert norm({"method": "min_max"}, [7.0]) == [1.0]
    assert norm({"method": "z_score"}, [7.0]) == [0.0]
    assert norm({"method": "softmax"}, []) == []


def test_huge_scores_do_not_overflow() -> None:
    assert norm({"method": "min_max"}, [1e308, -1e308, 0.0]) == pytest.approx([1.0, 0.0, 0.5])
    assert norm({"method": "l2"}, [1e308, 1e308]) == pytest.approx([1 / math.sqrt(2)] * 2)


def test_non_finite_scores() -> None:
    assert norm({"method": "min_max"}, [math.inf, 1.0, 0.0, -math.inf, math.nan]) == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert norm({"method": "softmax"}, [math.inf, 1.0, -math.inf]) == [1.0, 0.0, 0.0]


def test_output_field_keeps_score() -> None:
    out = run({"method": "min_max", "output_field": "scores.norm"}, [2.0, 0.0])
    assert [c.score for c in out] == [2.0, 0.0] and [c.scores["norm"] for c in out] == [1.0, 0.0]
    out = run({"output_field": "meta.norm"}, [2.0, 1.0])
    assert out[1].fields == {"title": "t1", "meta": {"norm": 0.0}} and out[1].score == 1.0


def test_metadata() -> None:
    ctx = make_ctx()
    run({"method": "softmax", "temperature": 0.5}, [1.0, 1.0], ctx)
    assert ctx.metadata == {
        "method": "softmax",
        "output_field": "score",
        "input_count": 2,
        "input_min": 1.0,
        "input_max": 1.0,
        "output_min": 0.5,
        "output_max": 0.5,
        "constant_scores": True,
        "non_finite_scores": 0,
        "temperature": 0.5,
    }


@pytest.mark.parametrize(
    "params",
    [
        {"method": "rank"},
        {"temperature": 0},
        {"temperature": -1.0},
        {"output_field": "score"},
        {"output_field": "scores"},
        {"output_field": "a..b"},
        {"field": "score"},
    ],
)
def test_bad_params(params: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        ScoreNormalize.Params.model_validate(params)


scores = st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=30)


def assert_order_kept(raw: list[float], out: list[float]) -> None:
    for i in range(len(raw)):
        for j in range(len(raw)):
            if raw[i] > raw[j]:
                assert out[i] >= out[j]


@settings(max_examples=200)
@given(scores)
def test_min_max_lands_in_unit_interval_and_keeps_order(raw: list[float]) -> None:
    out = norm({"method": "min_max"}, raw)
    assert all(0.0 <= v <= 1.0 for v in out)
    assert_order_kept(raw, out)
    if len(set(raw)) > 1:
        assert max(out) == 1.0 and min(out) == 0.0


@settings(max_examples=200)
@given(scores, st.floats(0.01, 100))
def test_softmax_sums_to_one_and_keeps_order(raw: list[float], temperature: float) -> None:
    out = norm({"method": "softmax", "temperature": temperature}, raw)
    assert sum(out) == pytest.approx(1.0) and all(v >= 0 for v in out)
    assert_order_kept(raw, out)


@settings(max_examples=200)
@given(scores)
def test_z_score_has_mean_zero_and_unit_std(raw: list[float]) -> None:
    out = np.asarray(norm({"method": "z_score"}, raw))
    assert float(out.mean()) == pytest.approx(0.0, abs=1e-9)
    if len(set(raw)) > 1:
        assert float(out.std()) == pytest.approx(1.0)
    assert_order_kept(raw, out.tolist())


@settings(max_examples=200)
@given(scores)
def test_l2_has_unit_norm(raw: list[float]) -> None:
    out = norm({"method": "l2"}, raw)
    if any(raw):
        assert float(np.linalg.norm(out)) == pytest.approx(1.0)
    else:
        assert out == [0.0] * len(raw)
    assert_order_kept(raw, out)
