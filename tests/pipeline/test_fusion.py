"""Score fusion: hand-checked examples for every method, then properties over random legs."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from siftline.pipeline.fusion import METHODS, fuse

Key = tuple[str, str]
Leg = list[tuple[Key, float]]


def k(doc: str, col: str = "c1") -> Key:
    return (col, doc)


def keys(fused: list[tuple[Key, float]]) -> list[Key]:
    return [key for key, _ in fused]


def leg_order(leg: Leg) -> list[Key]:
    """A leg's own order: best score per key, descending, ties by key."""
    best: dict[Key, float] = {}
    for key, score in leg:
        best[key] = max(score, best.get(key, -math.inf))
    return sorted(best, key=lambda key: (-best[key], key))


# -- hand-checked examples ----------------------------------------------------------------------

A: Leg = [(k("a"), 3.0), (k("b"), 2.0), (k("c"), 1.0)]
B: Leg = [(k("c"), 0.9), (k("a"), 0.5)]


def test_rrf_sums_reciprocal_ranks() -> None:
    # a: ranks 1 and 2; c: ranks 3 and 1; b: rank 2 in A only.
    assert fuse("rrf", [A, B]) == [
        (k("a"), pytest.approx(1 / 61 + 1 / 62)),
        (k("c"), pytest.approx(1 / 63 + 1 / 61)),
        (k("b"), pytest.approx(1 / 62)),
    ]


def test_rrf_weights_and_k() -> None:
    # weights (2, 1): a = 2/61 + 1/62 = .04892, c = 2/63 + 1/61 = .04814, b = 2/62 = .03226
    assert fuse("rrf", [A, B], [2.0, 1.0]) == [
        (k("a"), pytest.approx(2 / 61 + 1 / 62)),
        (k("c"), pytest.approx(2 / 63 + 1 / 61)),
        (k("b"), pytest.approx(2 / 62)),
    ]
    assert fuse("rrf", [[(k("a"), 1.0), (k("b"), 0.0)]], rrf_k=0) == [(k("a"), 1.0), (k("b"), 0.5)]


def test_rrf_equal_scores_share_a_rank() -> None:
    leg = [(k("b"), 5.0), (k("a"), 5.0), (k("c"), 1.0)]
    assert fuse("rrf", [leg]) == [(k("a"), 1 / 61), (k("b"), 1 / 61), (k("c"), 1 / 63)]


def test_weighted_min_max_and_coverage_ties() -> None:
    leg0 = [(k("a"), 10.0), (k("b"), 5.0), (k("c"), 0.0)]  # a 1, b .5, c 0
    leg1 = [(k("b"), -1.0), (k("d"), -3.0)]  # b 1, d 0
    # weights (1, 2): b = .5 + 2 = 2.5, a = 1; c and d tie at 0, d's coverage (2) beats c's (1).
    assert fuse("weighted", [leg0, leg1], [1.0, 2.0]) == [
        (k("b"), 2.5),
        (k("a"), 1.0),
        (k("d"), 0.0),
        (k("c"), 0.0),
    ]


def test_weighted_all_equal_leg_scores_one() -> None:
    flat = [(k("x"), 7.0), (k("y"), 7.0)]
    other = [(k("y"), 1.0), (k("z"), 0.0)]
    assert fuse("weighted", [flat, other]) == [(k("y"), 2.0), (k("x"), 1.0), (k("z"), 0.0)]


def test_dbsf_mean_three_std() -> None:
    # leg0: mean 2, population std sqrt(2/3) = .816497; a = 1 / (6 * .816497) + .5 = .7041241.
    # leg1: all equal (std 0) -> .5 each. c = .2958759 + .5; b and d tie at .5 -> by key.
    leg0 = [(k("a"), 3.0), (k("b"), 2.0), (k("c"), 1.0)]
    leg1 = [(k("c"), 10.0), (k("d"), 10.0)]
    assert fuse("dbsf", [leg0, leg1]) == [
        (k("c"), pytest.approx(0.7958759)),
        (k("a"), pytest.approx(0.7041241)),
        (k("b"), 0.5),
        (k("d"), 0.5),
    ]


def test_dbsf_clips_and_keeps_clipped_outliers_in_order() -> None:
    # 38 zeros, 100 and 90: mean 4.75, std sqrt(17197.5 / 40) = 20.735, mean + 3 std = 66.95, so both
    # outliers clip to 1.0; their unclipped values (1.264, 1.184) keep 100 before 90 although the
    # keys sort the other way. Zeros: -4.75 / (6 * 20.735) + .5 = .46182.
    leg = [(k("z"), 100.0), (k("a"), 90.0)] + [(k(f"d{i:02d}"), 0.0) for i in range(38)]
    fused = fuse("dbsf", [leg])
    assert fused[:3] == [(k("z"), 1.0), (k("a"), 1.0), (k("d00"), pytest.approx(0.46182, abs=1e-5))]
    assert keys(fused) == leg_order(leg)


def test_dbsf_single_value_is_half() -> None:
    assert fuse("dbsf", [[(k("a"), -4.0)]], [2.0]) == [(k("a"), 1.0)]


def test_max_takes_best_weighted_norm() -> None:
    leg0 = [(k("a"), 10.0), (k("b"), 0.0)]
    leg1 = [(k("b"), 4.0), (k("c"), 2.0), (k("d"), 0.0)]
    # a = 1; b = max(0, .5 * 1); c = .5 * .5; d = 0
    assert fuse("max", [leg0, leg1], [1.0, 0.5]) == [
        (k("a"), 1.0),
        (k("b"), 0.5),
        (k("c"), 0.25),
        (k("d"), 0.0),
    ]


@pytest.mark.parametrize("method", METHODS)
def test_empty_legs(method: str) -> None:
    assert fuse(method, []) == []
    assert fuse(method, [[], []]) == []
    assert keys(fuse(method, [[], [(k("a"), 1.0)]])) == [k("a")]


@pytest.mark.parametrize("method", METHODS)
def test_repeated_key_keeps_its_best_score(method: str) -> None:
    leg = [(k("a"), 1.0), (k("b"), 3.0), (k("a"), 5.0)]
    assert keys(fuse(method, [leg])) == [k("a"), k("b")]


def test_scores_at_the_edge_of_the_float_range() -> None:
    leg = [(k("a"), 1e308), (k("c"), 0.0), (k("b"), -1e308)]
    assert fuse("weighted", [leg]) == [(k("a"), 1.0), (k("c"), 0.5), (k("b"), 0.0)]


def test_any_orderable_key() -> None:
    assert fuse("rrf", [[(2, 1.0), (1, 1.0)], [(3, 5.0)]]) == [(1, 1 / 61), (2, 1 / 61), (3, 1 / 61)]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("borda", [A]), {}, "unknown fusion method"),
        (("rrf", [A, B], [1.0]), {}, "1 weights for 2 legs"),
        (("rrf", [A], [-1.0]), {}, "finite and >= 0"),
        (("weighted", [A], [math.nan]), {}, "finite and >= 0"),
        (("weighted", [[(k("a"), math.nan)]]), {}, "not a finite number"),
        (("dbsf", [[(k("a"), math.inf)]]), {}, "not a finite number"),
        (("rrf", [A]), {"rrf_k": -1}, "rrf_k"),
    ],
)
def test_bad_arguments(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fuse(*args, **kwargs)


# -- properties ---------------------------------------------------------------------------------

# Scores are multiples of 1/16 in [-1000, 1000]: exact, with many ties, and far enough apart that
# normalisation never merges two distinct scores (which float rounding could do for near-equal ones).
SCORES = st.integers(-16_000, 16_000).map(lambda i: i / 16)
KEYS = st.tuples(st.sampled_from(["c1", "c2"]), st.integers(0, 12).map(lambda i: f"d{i:02d}"))
LEG = st.lists(st.tuples(KEYS, SCORES), max_size=12)
WEIGHTS = st.one_of(st.just(0.0), st.just(1.0), st.floats(1e-3, 10.0))
METHOD = st.sampled_from(METHODS)


@st.composite
def legs_and_weights(draw: st.DrawFn, min_legs: int = 1) -> tuple[list[Leg], list[float]]:
    legs = draw(st.lists(LEG, min_size=min_legs, max_size=4))
    return legs, draw(st.lists(WEIGHTS, min_size=len(legs), max_size=len(legs)))


TRANSFORMS: list[Callable[[float], float]] = [
    lambda s: s,
    lambda s: 3.5 * s - 20.0,
    lambda s: 0.01 * s + 1e3,
    lambda s: math.exp(s / 1000),
    lambda s: s**3,
    math.atan,
]


@given(legs_and_weights(), st.lists(st.sampled_from(TRANSFORMS), min_size=4, max_size=4))
def test_rrf_depends_only_on_ranks(lw: tuple[list[Leg], list[float]], transforms: list) -> None:
    legs, weights = lw
    moved = [[(key, f(s)) for key, s in leg] for leg, f in zip(legs, transforms, strict=False)]
    for leg, new in zip(legs, moved, strict=True):  # the transform stayed strictly increasing in floats
        pairs = sorted(zip((s for _, s in leg), (s for _, s in new), strict=True))
        assume(all((a[0] < b[0]) == (a[1] < b[1]) for a, b in itertools.pairwise(pairs)))
    assert fuse("rrf", moved, weights) == fuse("rrf", legs, weights)


@given(legs_and_weights(min_legs=2))
def test_weighted_with_weights_one_zero_follows_leg_0(lw: tuple[list[Leg], list[float]]) -> None:
    legs, _ = lw
    weights = [1.0] + [0.0] * (len(legs) - 1)
    first = leg_order(legs[0])
    rest = sorted({key for leg in legs[1:] for key, _ in leg} - set(first))
    assert keys(fuse("weighted", legs, weights)) == first + rest


@given(METHOD, st.lists(st.tuples(KEYS, SCORES), max_size=40), st.floats(1e-3, 10.0))
def test_one_leg_keeps_its_order(method: str, leg: Leg, weight: float) -> None:
    assert keys(fuse(method, [leg], [weight])) == leg_order(leg)


@given(METHOD, legs_and_weights())
def test_unique_keys_covering_the_union_best_first(method: str, lw: tuple[list[Leg], list[float]]) -> None:
    legs, weights = lw
    fused = fuse(method, legs, weights)
    assert len(keys(fused)) == len(set(keys(fused)))
    assert set(keys(fused)) == {key for leg in legs for key, _ in leg}
    scores = [score for _, score in fused]
    assert all(a >= b for a, b in itertools.pairwise(scores))


@given(METHOD, legs_and_weights(), st.randoms(use_true_random=False))
def test_permuting_legs_with_their_weights_changes_nothing(
    method: str, lw: tuple[list[Leg], list[float]], rnd: random.Random
) -> None:
    legs, weights = lw
    order = list(range(len(legs)))
    rnd.shuffle(order)
    permuted = fuse(method, [legs[i] for i in order], [weights[i] for i in order])
    assert permuted == fuse(method, legs, weights)


@given(METHOD, legs_and_weights(), st.integers(-8, 8))
def test_power_of_two_weight_scaling_is_exact(
    method: str, lw: tuple[list[Leg], list[float]], exp: int
) -> None:
    legs, weights = lw
    c = 2.0**exp
    base = fuse(method, legs, weights)
    scaled = fuse(method, legs, [c * w for w in weights])
    assert scaled == [(key, c * score) for key, score in base]


@given(METHOD, legs_and_weights(), st.floats(0.01, 100.0))
def test_any_positive_weight_scaling_keeps_the_order(
    method: str, lw: tuple[list[Leg], list[float]], c: float
) -> None:
    legs, weights = lw
    base = dict(fuse(method, legs, weights))
    scaled = fuse(method, legs, [c * w for w in weights])
    assert [s for _, s in scaled] == pytest.approx([c * base[key] for key, _ in scaled], rel=1e-9, abs=1e-12)
    # Successive keys are in the unscaled order, except where the unscaled scores are a near-tie.
    for (k1, _), (k2, _) in itertools.pairwise(scaled):
        assert base[k1] >= base[k2] - 1e-9 * max(abs(base[k1]), 1e-3)
