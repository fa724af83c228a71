"""Retrieval-evaluation metrics: hand-computed examples for every metric, properties over random runs,
nDCG identical to ``benchmarks/beir.py`` (the quality benchmark's), and the paired test.

Pure functions: no server, no network, no embedding model.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import random
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siftline.service.metrics import DEFAULT_K, METRICS, aggregate, paired_test, query_metrics

ROOT = Path(__file__).resolve().parents[2]


def _load_beir() -> ModuleType:
    """``benchmarks/beir.py`` by path (the benchmarks import it as ``beir`` from their own folder)."""
    spec = importlib.util.spec_from_file_location("siftline_bench_beir", ROOT / "benchmarks" / "beir.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


beir = _load_beir()
KS = (1, 2, 3, 5, 10, 20)


def log2(x: float) -> float:
    return math.log2(x)


# -- hand-computed examples --------------------------------------------------------------------

# Relevant: b (grade 2), d (1), x (3, never retrieved); c is judged non-relevant (grade 0). R = 3.
RANKED = ["a", "b", "c", "d", "e"]
GRADES = {"b": 2, "d": 1, "x": 3, "c": 0}
IDCG_3 = 3 / log2(2) + 2 / log2(3) + 1 / log2(4)  # the three positive grades, sorted: 3, 2, 1


def test_constants() -> None:
    assert METRICS == ("precision", "recall", "f1", "f2", "map", "ndcg", "mrr")
    assert DEFAULT_K == (1, 5, 10, 20)
    result = query_metrics(RANKED, GRADES)
    assert list(result) == [1, 5, 10, 20]
    assert all(list(values) == list(METRICS) for values in result.values())


def test_nothing_relevant_in_the_top_one() -> None:
    assert query_metrics(RANKED, GRADES, [1], METRICS) == {1: dict.fromkeys(METRICS, 0.0)}


def test_every_metric_at_5() -> None:
    # Hits b (rank 2), d (rank 4). P = 2/5, recall = 2/3.
    # F1 = 2 (2/5)(2/3) / (2/5 + 2/3) = (8/15) / (16/15) = 1/2.
    # F2 = 5 (2/5)(2/3) / (4 (2/5) + 2/3) = (4/3) / (34/15) = 10/17.
    # AP = (1/2 + 2/4) / min(3, 5) = 1/3.  RR = 1/2.
    # DCG = 2 / log2(3) + 1 / log2(5); IDCG = 3 + 2 / log2(3) + 1 / log2(4).
    got = query_metrics(RANKED, GRADES, [5], METRICS)[5]
    assert got == {
        "precision": pytest.approx(2 / 5),
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(1 / 2),
        "f2": pytest.approx(10 / 17),
        "map": pytest.approx(1 / 3),
        "ndcg": pytest.approx((2 / log2(3) + 1 / log2(5)) / IDCG_3),
        "mrr": pytest.approx(1 / 2),
    }
    assert got["ndcg"] == pytest.approx(0.3554360)  # 1.69254 / 4.76186


def test_k_beyond_the_list_divides_precision_by_k() -> None:
    # Only five documents: at k = 10 and 20 the hits stay 2 but precision keeps dividing by k.
    got = query_metrics(RANKED, GRADES, [10, 20], METRICS)
    for k in (10, 20):
        p, r = 2 / k, 2 / 3
        assert got[k] == {
            "precision": pytest.approx(p),
            "recall": pytest.approx(r),
            "f1": pytest.approx(2 * p * r / (p + r)),
            "f2": pytest.approx(5 * p * r / (4 * p + r)),
            "map": pytest.approx(1 / 3),
            "ndcg": pytest.approx((2 / log2(3) + 1 / log2(5)) / IDCG_3),
            "mrr": pytest.approx(1 / 2),
        }
    assert got[10]["f1"] == pytest.approx(2 * 0.2 * (2 / 3) / (0.2 + 2 / 3))  # 0.3077


def test_map_divides_by_min_of_relevant_and_k() -> None:
    ranked = ["r1", "n1", "r2", "n2", "r3"]
    grades = {"r1": 1, "r2": 1, "r3": 1, "r4": 1}  # R = 4
    got = query_metrics(ranked, grades, [1, 2, 3, 5, 10], ["map"])
    assert got[1]["map"] == 1.0  # 1 / min(4, 1)
    assert got[2]["map"] == pytest.approx(1 / 2)  # 1 / min(4, 2)
    assert got[3]["map"] == pytest.approx((1 + 2 / 3) / 3)
    assert got[5]["map"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 4)
    assert got[10]["map"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 4)  # r4 never retrieved


def test_mrr_only_within_k() -> None:
    ranked = ["n1", "n2", "n3", "r"]
    got = query_metrics(ranked, {"r": 5}, [1, 3, 4, 10], ["mrr"])
    assert [got[k]["mrr"] for k in (1, 3, 4, 10)] == [0.0, 0.0, 0.25, 0.25]


def test_ndcg_graded_gains_and_log2_discount() -> None:
    # Linear gains (not 2^g - 1): ranks 1..3 hold grades 1, 0 (unjudged), 3; ideal 3, 2, 1.
    ranked = ["low", "unjudged", "top", "mid"]
    grades = {"top": 3, "mid": 2, "low": 1}
    got = query_metrics(ranked, grades, [1, 3, 4], ["ndcg"])
    assert got[1]["ndcg"] == pytest.approx(1 / 3)
    assert got[3]["ndcg"] == pytest.approx((1 + 3 / log2(4)) / (3 + 2 / log2(3) + 1 / log2(4)))
    assert got[4]["ndcg"] == pytest.approx((1 + 3 / 2 + 2 / log2(5)) / (3 + 2 / log2(3) + 1 / 2))


def test_duplicates_count_once_and_take_no_rank() -> None:
    plain = query_metrics(["a", "b", "c", "d"], {"c": 1, "d": 2}, KS, METRICS)
    repeated = query_metrics(["a", "a", "b", "a", "c", "b", "d"], {"c": 1, "d": 2}, KS, METRICS)
    assert repeated == plain
    assert plain[3]["precision"] == pytest.approx(1 / 3)  # a, b, c: the repeated a did not take rank 2


def test_queries_without_relevant_documents_score_zero() -> None:
    for grades in ({}, {"a": 0, "b": 0}):
        got = query_metrics(["a", "b", "c"], grades, KS, METRICS)
        assert got == {k: dict.fromkeys(METRICS, 0.0) for k in KS}
        assert beir.ndcg_at_k(["a", "b", "c"], grades, 10) == 0.0


def test_empty_run_scores_zero() -> None:
    assert query_metrics([], {"a": 1}, KS, METRICS) == {k: dict.fromkeys(METRICS, 0.0) for k in KS}


def test_perfect_single_relevant_document() -> None:
    got = query_metrics(["r", "x", "y"], {"r": 1}, [1, 5], METRICS)
    assert got[1] == dict.fromkeys(METRICS, 1.0)
    assert got[5] == {
        "precision": 0.2,
        "recall": 1.0,
        "f1": pytest.approx(2 * 0.2 / 1.2),
        "f2": pytest.approx(5 * 0.2 / (4 * 0.2 + 1)),
        "map": 1.0,
        "ndcg": 1.0,
        "mrr": 1.0,
    }


def test_selected_metrics_and_k_values_in_the_order_asked() -> None:
    got = query_metrics(RANKED, GRADES, [5, 1], ["mrr", "precision"])
    assert list(got) == [5, 1]
    assert list(got[5]) == ["mrr", "precision"]
    assert query_metrics(RANKED, GRADES, [], METRICS) == {}


@pytest.mark.parametrize(
    ("k_values", "metrics"),
    [([0], ["ndcg"]), ([-1], ["ndcg"]), ([True], ["ndcg"]), ([10], ["ndcg", "hits"]), ([10], ["NDCG"])],
)
def test_bad_arguments_are_rejected(k_values: list[int], metrics: list[str]) -> None:
    with pytest.raises(ValueError):
        query_metrics(RANKED, GRADES, k_values, metrics)


def test_aggregate_means_per_k_and_metric() -> None:
    q1 = query_metrics(["a", "b"], {"a": 1}, [1, 2], ["precision", "mrr"])  # P@1 1, P@2 .5, RR 1
    q2 = query_metrics(["b", "a"], {"a": 1}, [1, 2], ["precision", "mrr"])  # P@1 0, P@2 .5, RR@2 .5
    q3 = query_metrics(["c"], {}, [1, 2], ["precision", "mrr"])  # no relevant document: zeros, counted
    assert aggregate([q1, q2, q3]) == {
        1: {"precision": pytest.approx(1 / 3), "mrr": pytest.approx(1 / 3)},
        2: {"precision": pytest.approx(1 / 3), "mrr": pytest.approx(1.5 / 3)},
    }
    assert aggregate([]) == {}
    with pytest.raises(ValueError):
        aggregate([q1, query_metrics(["a"], {"a": 1}, [1], ["precision", "mrr"])])
    with pytest.raises(ValueError):
        aggregate([q1, query_metrics(["a"], {"a": 1}, [1, 2], ["precision"])])


# -- properties --------------------------------------------------------------------------------

DOCS = [f"d{i}" for i in range(14)]
doc_ids = st.sampled_from(DOCS)
runs = st.lists(doc_ids, max_size=30)  # repeats allowed
grades = st.dictionaries(doc_ids, st.integers(0, 5), max_size=10)
k_lists = st.lists(st.integers(1, 25), min_size=1, max_size=6, unique=True)


def unique(ranked: list[str]) -> list[str]:
    return list(dict.fromkeys(ranked))


@given(runs, grades, k_lists)
def test_values_lie_in_unit_interval(ranked: list[str], judged: dict[str, int], ks: list[int]) -> None:
    for values in query_metrics(ranked, judged, ks, METRICS).values():
        assert set(values) == set(METRICS)
        assert all(0.0 <= v <= 1.0 for v in values.values()), values


@given(grades.filter(lambda g: any(v > 0 for v in g.values())), st.randoms(use_true_random=False), k_lists)
def test_perfect_ranking(judged: dict[str, int], rnd: random.Random, ks: list[int]) -> None:
    """Relevant documents first, by grade descending (equal grades in any order), then the rest."""
    relevant = [d for d in judged if judged[d] > 0]
    rnd.shuffle(relevant)
    relevant.sort(key=lambda d: -judged[d])
    rest = [d for d in DOCS if d not in relevant]
    rnd.shuffle(rest)
    got = query_metrics(relevant + rest, judged, ks, METRICS)
    n_relevant = len(relevant)
    for k in ks:
        assert got[k]["ndcg"] == pytest.approx(1.0)
        assert got[k]["map"] == pytest.approx(1.0)
        assert got[k]["mrr"] == 1.0
        if k >= n_relevant:
            assert got[k]["recall"] == 1.0
        if k <= n_relevant:
            assert got[k]["precision"] == 1.0
            assert got[k]["f1"] == pytest.approx(2 * got[k]["recall"] / (1 + got[k]["recall"]))


@given(runs, grades, st.integers(1, 20), st.randoms(use_true_random=False))
def test_order_inside_and_below_the_cutoff(
    ranked: list[str], judged: dict[str, int], k: int, rnd: random.Random
) -> None:
    """Shuffling the top k keeps the set metrics at k; shuffling below k keeps every metric at k."""
    docs = unique(ranked)
    top, below = docs[:k], docs[k:]
    base = query_metrics(docs, judged, [k], METRICS)[k]
    shuffled_top = top[:]
    rnd.shuffle(shuffled_top)
    inside = query_metrics(shuffled_top + below, judged, [k], METRICS)[k]
    for name in ("precision", "recall", "f1", "f2"):
        assert inside[name] == pytest.approx(base[name])
    shuffled_below = below[:]
    rnd.shuffle(shuffled_below)
    assert query_metrics(top + shuffled_below, judged, [k], METRICS)[k] == base


@given(runs, grades, k_lists, st.randoms(use_true_random=False))
def test_invariant_under_renaming_and_judgement_order(
    ranked: list[str], judged: dict[str, int], ks: list[int], rnd: random.Random
) -> None:
    names = DOCS[:]
    rnd.shuffle(names)
    rename = dict(zip(DOCS, (f"x{n}" for n in names), strict=True))
    items = list(judged.items())
    rnd.shuffle(items)
    renamed = query_metrics([rename[d] for d in ranked], {rename[d]: g for d, g in items}, ks, METRICS)
    assert renamed == query_metrics(ranked, judged, ks, METRICS)


@given(runs, grades, k_lists, st.randoms(use_true_random=False))
def test_repeats_are_ignored(
    ranked: list[str], judged: dict[str, int], ks: list[int], rnd: random.Random
) -> None:
    with_repeats = ranked[:]
    for _ in range(rnd.randint(0, 10)):
        if ranked:
            at = rnd.randint(0, len(with_repeats))
            earlier = with_repeats[:at]
            if earlier:
                with_repeats.insert(at, rnd.choice(earlier))
    assert query_metrics(with_repeats, judged, ks, METRICS) == query_metrics(
        unique(ranked), judged, ks, METRICS
    )


@given(runs, grades)
def test_against_textbook_formulas(ranked: list[str], judged: dict[str, int]) -> None:
    """Recall, precision, AP and RR recomputed from the ranks of the relevant documents."""
    docs = unique(ranked)
    relevant = {d for d, g in judged.items() if g > 0}
    ranks = [i for i, d in enumerate(docs, start=1) if d in relevant]
    got = query_metrics(ranked, judged, KS, METRICS)
    for k in KS:
        within = [r for r in ranks if r <= k]
        assert got[k]["precision"] == pytest.approx(len(within) / k)
        assert got[k]["recall"] == pytest.approx(len(within) / len(relevant) if relevant else 0.0)
        ap = sum(j / r for j, r in enumerate(within, start=1)) / min(len(relevant), k) if relevant else 0.0
        assert got[k]["map"] == pytest.approx(ap)
        assert got[k]["mrr"] == (1 / within[0] if within else 0.0)


@given(runs, grades)
def test_monotone_in_k(ranked: list[str], judged: dict[str, int]) -> None:
    got = query_metrics(ranked, judged, list(range(1, 26)), METRICS)
    for k in range(1, 25):
        assert got[k]["recall"] <= got[k + 1]["recall"]
        assert got[k]["mrr"] <= got[k + 1]["mrr"]


@given(runs, grades, st.integers(2, 5), k_lists)
def test_ndcg_ignores_the_scale_of_grades(
    ranked: list[str], judged: dict[str, int], factor: int, ks: list[int]
) -> None:
    scaled = {d: g * factor for d, g in judged.items()}
    a = query_metrics(ranked, judged, ks, ["ndcg"])
    b = query_metrics(ranked, scaled, ks, ["ndcg"])
    assert all(b[k]["ndcg"] == pytest.approx(a[k]["ndcg"]) for k in ks)


@given(runs, grades, st.integers(0, 28), k_lists)
def test_promoting_a_better_document_never_lowers_ndcg(
    ranked: list[str], judged: dict[str, int], at: int, ks: list[int]
) -> None:
    docs = unique(ranked)
    if at + 1 >= len(docs) or judged.get(docs[at], 0) >= judged.get(docs[at + 1], 0):
        return
    swapped = [*docs[:at], docs[at + 1], docs[at], *docs[at + 2 :]]
    before = query_metrics(docs, judged, ks, ["ndcg", "map", "mrr"])
    after = query_metrics(swapped, judged, ks, ["ndcg", "map", "mrr"])
    for k in ks:
        assert after[k]["ndcg"] >= before[k]["ndcg"] - 1e-12
        if judged.get(docs[at], 0) <= 0:  # a relevant document moves above a non-relevant one
            assert after[k]["map"] >= before[k]["map"] - 1e-12
            assert after[k]["mrr"] >= before[k]["mrr"]


@given(st.lists(st.tuples(runs, grades), min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_aggregate_is_a_mean_independent_of_query_order(
    queries: list[tuple[list[str], dict[str, int]]], rnd: random.Random
) -> None:
    per_query = [query_metrics(r, g, KS, METRICS) for r, g in queries]
    overall = aggregate(per_query)
    shuffled = per_query[:]
    rnd.shuffle(shuffled)
    assert aggregate(shuffled) == overall
    for k in KS:
        for name in METRICS:
            column = [q[k][name] for q in per_query]
            assert min(column) - 1e-15 <= overall[k][name] <= max(column) + 1e-15
            assert overall[k][name] == pytest.approx(sum(column) / len(column))


# -- nDCG identical to benchmarks/beir.py ------------------------------------------------------


@settings(max_examples=300)
@given(runs, st.dictionaries(doc_ids, st.integers(-1, 5), max_size=10), st.integers(1, 25))
def test_ndcg_is_beir_ndcg(ranked: list[str], judged: dict[str, int], k: int) -> None:
    """Grades -1..5 (beir.py keeps a negative grade as a negative gain), repeats, unjudged documents."""
    got = query_metrics(ranked, judged, sorted({k, 10}), ["ndcg"])
    assert abs(got[10]["ndcg"] - beir.ndcg_at_k(ranked, judged, 10)) <= 1e-12
    assert got[k]["ndcg"] == beir.ndcg_at_k(ranked, judged, k)  # the same operations: bit for bit


def test_ndcg_at_10_and_mean_match_beir_on_random_runs() -> None:
    """500 random queries over a 200-document corpus, graded qrels (0-3, as TREC), some without a run,
    some without a relevant document; per query and the benchmark's mean nDCG@10."""
    rnd = random.Random(11)
    corpus = [f"doc{i}" for i in range(200)]
    runs_by_query: dict[str, list[str]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for number in range(500):
        qid = f"q{number}"
        qrels[qid] = {d: rnd.choice([0, 1, 1, 2, 3]) for d in rnd.sample(corpus, rnd.randint(1, 12))}
        if rnd.random() < 0.9:
            pool = list(qrels[qid]) + rnd.sample(corpus, 30)
            run = rnd.sample(pool, rnd.randint(0, min(40, len(pool))))
            runs_by_query[qid] = run + rnd.choices(run, k=3) if run else run
    qids = list(qrels)
    per_query = [query_metrics(runs_by_query.get(q, []), qrels[q], DEFAULT_K, METRICS) for q in qids]
    for q, got in zip(qids, per_query, strict=True):
        assert abs(got[10]["ndcg"] - beir.ndcg_at_k(runs_by_query.get(q, ()), qrels[q], 10)) <= 1e-12
    overall = aggregate(per_query)
    assert abs(overall[10]["ndcg"] - beir.mean_ndcg(runs_by_query, qrels, qids, 10)) <= 1e-12
    assert 0.0 < overall[10]["ndcg"] < 1.0


# -- paired test -------------------------------------------------------------------------------


def test_paired_test_hand_example() -> None:
    # d = a - b = (.2, .1, .3, -.1): mean .125, s = sqrt(.0875 / 3) = .170783, t(.975, 3) = 3.182446,
    # half width 3.182446 * .170783 / 2 = .271753. Sign flips of (.2, .1, .3, .1) with |sum| >= .5:
    # all alike (sum .7, 2 ways) and one .1 flipped (.5, 4 ways): 6 of 16.
    got = paired_test([0.5, 0.7, 0.9, 0.4], [0.3, 0.6, 0.6, 0.5])
    half = 3.182446305284263 * math.sqrt(0.0875 / 3) / 2
    assert got == {
        "n": 4.0,
        "mean_diff": pytest.approx(0.125),
        "ci_low": pytest.approx(0.125 - half, abs=1e-12),
        "ci_high": pytest.approx(0.125 + half, abs=1e-12),
        "p_value": 6 / 16,
    }
    assert got["ci_low"] == pytest.approx(-0.1467531, abs=1e-7)  # scipy.stats.ttest_rel's interval


@pytest.mark.parametrize(
    ("n", "t"),
    [
        (2, 12.706204736174707),
        (3, 4.302652729749464),
        (5, 2.7764451051977987),
        (10, 2.2621571627982053),
        (30, 2.045229642132703),
        (100, 1.9842169515864165),
        (1001, 1.9623390808264074),
    ],
)
def test_confidence_interval_uses_student_t(n: int, t: float) -> None:
    """Half width / (s / sqrt(n)) is the Student t quantile t(.975, n - 1) (values from scipy)."""
    rnd = random.Random(n)
    a = [rnd.random() for _ in range(n)]
    b = [rnd.random() for _ in range(n)]
    got = paired_test(a, b)
    d = [x - y for x, y in zip(a, b, strict=True)]
    mean = sum(d) / n
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1) / n)
    assert got["mean_diff"] == pytest.approx(mean, abs=1e-12)
    assert (got["ci_high"] - got["ci_low"]) / 2 / se == pytest.approx(t, rel=1e-9)


def test_exact_sign_flip_p_values() -> None:
    assert paired_test([1.0] * 6, [0.0] * 6)["p_value"] == 2 / 64  # only all-plus and all-minus
    assert paired_test([0.3, 0.2], [0.2, 0.3])["p_value"] == 1.0  # d = (.1, -.1): |sum| 0
    same = paired_test([0.1, 0.5, 0.9], [0.1, 0.5, 0.9])
    assert same == {"n": 3.0, "mean_diff": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0}
    # zero differences change nothing: the same 6 non-zero differences among 10 queries
    assert paired_test([1.0] * 6 + [0.4] * 4, [0.0] * 6 + [0.4] * 4)["p_value"] == 2 / 64


def brute_force_p(d: list[float]) -> float:
    d_arr = np.asarray(d)
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    return float(np.mean(np.abs(signs @ d_arr) >= abs(d_arr.sum()) - 1e-9))


def test_exact_p_agrees_with_brute_force() -> None:
    rnd = random.Random(3)
    for n in (3, 8, 12, 16):
        a = [rnd.random() for _ in range(n)]
        b = [x + rnd.gauss(0.08, 0.2) for x in a]
        assert paired_test(a, b)["p_value"] == pytest.approx(
            brute_force_p([x - y for x, y in zip(a, b, strict=True)])
        )


def test_random_sign_flips_approach_the_exact_p_and_are_reproducible() -> None:
    rnd = random.Random(5)
    a = [rnd.random() for _ in range(18)]  # 18 > 16 non-zero differences: the random test
    b = [x + rnd.gauss(0.05, 0.2) for x in a]
    exact = brute_force_p([x - y for x, y in zip(a, b, strict=True)])
    got = paired_test(a, b)
    assert 0.02 < exact < 0.98
    assert got["p_value"] == pytest.approx(exact, abs=0.015)  # 20,000 flips: standard error <= .0036
    assert paired_test(a, b) == got  # fixed seed
    swapped = paired_test(b, a)
    assert swapped["p_value"] == got["p_value"]
    assert swapped["mean_diff"] == pytest.approx(-got["mean_diff"])
    assert (swapped["ci_low"], swapped["ci_high"]) == pytest.approx((-got["ci_high"], -got["ci_low"]))


def test_clear_difference_is_significant_and_its_interval_excludes_zero() -> None:
    rnd = random.Random(7)
    a = [rnd.random() for _ in range(300)]
    b = [x - 0.05 + rnd.gauss(0, 0.05) for x in a]
    got = paired_test(a, b)
    assert got["p_value"] == pytest.approx(1 / 20_001)  # no random flip reaches the observed sum
    assert 0 < got["ci_low"] < got["mean_diff"] < got["ci_high"]
    assert got["mean_diff"] == pytest.approx(0.05, abs=0.01)


@pytest.mark.parametrize(
    ("a", "b"),
    [([0.1, 0.2], [0.1]), ([0.5], [0.4]), ([], []), ([0.1, math.nan], [0.1, 0.2]), ([math.inf, 0], [0, 0])],
)
def test_paired_test_rejects_bad_input(a: list[float], b: list[float]) -> None:
    with pytest.raises(ValueError):
        paired_test(a, b)
