"""Retrieval-evaluation metrics: per query, means over queries, and a paired comparison of two systems.

Pure functions, no I/O. One query is a ranked list of document ids, best first, and its judgements,
``relevance``: document id → grade (the SDK's ``GroundTruthQuery.relevance_scores``, 0-5; a dataset
without grades gives every relevant document grade 1). A document is *relevant* when its grade is
> 0; judged documents with grade ≤ 0 and unjudged documents are not. The ranked list is
de-duplicated first: a document listed again after its first occurrence is dropped (it neither
scores nor takes a rank). Ranks ``i`` are 1-based over that de-duplicated list; ``d_i`` is the
document at rank ``i``, ``top_k`` the first ``k`` of them (fewer when fewer were retrieved),
``rel(d)`` is 1 for a relevant document and 0 otherwise, ``g(d)`` its grade (0 if unjudged),
``R`` the number of relevant documents and ``hits@k = Σ_{i ≤ k} rel(d_i)``. Ties are whatever order
the list has: nothing is re-sorted (as in ``benchmarks/beir.py``).

* ``precision@k = hits@k / k`` (always over ``k``, even when fewer than ``k`` were retrieved, as
  trec_eval's ``P_k``).
* ``recall@k = hits@k / R``.
* ``f1@k = 2·P·Rc / (P + Rc)`` and ``f2@k = 5·P·Rc / (4·P + Rc)`` (F-beta, beta = 2, recall weighted)
  from ``P = precision@k`` and ``Rc = recall@k``; 0 when ``P + Rc = 0``.
* ``map@k`` (average precision of the query; MAP is its mean over queries):
  ``Σ_{i ≤ k} rel(d_i) · precision@i / min(R, k)``.
* ``mrr@k`` (reciprocal rank; MRR is its mean): ``1 / i`` for the smallest ``i ≤ k`` with
  ``rel(d_i) = 1``, 0 if there is none.
* ``ndcg@k``: exactly ``benchmarks/beir.py``'s ``ndcg_at_k`` (trec_eval's ``ndcg_cut``, as BEIR
  reports it), the same floating-point operations in the same order, so the figures agree to the
  last bit: linear gains, ``DCG@k = Σ_{i ≤ k} g(d_i) / log2(i + 1)``; ``IDCG@k`` is the same sum
  over the positive grades sorted in decreasing order, the first ``k`` of them; ``nDCG@k =
  DCG@k / IDCG@k``. The gain is the grade itself, so a judged negative grade (the SDK's scale is
  0-5, but BEIR-format qrels may hold one) lowers the DCG exactly as it does in beir.py.

Queries without a relevant document (``R = 0``): ``nDCG = 0`` as in beir.py, and every other
metric is 0 too (recall and AP have no denominator; precision, F and RR have no hit). ``aggregate``
averages over the queries it is given, such queries included, as ``beir.mean_ndcg`` averages over
every judged query, 0 for a query with no run: pass a query that returned nothing with an empty
ranked list rather than leaving it out.

``paired_test(a, b)``: ``d_j = a_j - b_j`` over the same queries, ``n`` of them (n ≥ 2).

* ``mean_diff = Σ d_j / n``.
* 95 % confidence interval of the mean difference (the paired t-interval):
  ``mean_diff ± t_{0.975, n-1} · s / √n``, ``s`` the sample standard deviation of ``d`` (n - 1 in
  the denominator), ``t_{0.975, n-1}`` the Student t quantile (computed here, from the exact
  finite series of the t distribution for integer degrees of freedom, Abramowitz & Stegun 26.7.3-4,
  inverted by bisection: scipy is not a dependency).
* Two-sided p-value from a sign-flip permutation test of the paired differences (the permutation
  form of the paired t-test, without its normality assumption; its statistic ``|Σ s_j d_j|`` over sign vectors ``s ∈ {±1}^n``
  orders the sign flips exactly as the paired t statistic does, since ``Σ (s_j d_j)²`` does not
  depend on ``s``): ``p = #{s : |Σ s_j d_j| ≥ |Σ d_j|} / 2^m`` over all flips of the ``m`` non-zero
  differences when ``m ≤ 16`` (exact), otherwise ``(1 + #hits) / (1 + 20 000)`` over 20 000 random
  flips drawn with a fixed seed (so the same inputs always give the same p). ``p = 1`` when every
  difference is 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

METRICS = ("precision", "recall", "f1", "f2", "map", "ndcg", "mrr")
DEFAULT_K = (1, 5, 10, 20)

CONFIDENCE = 0.95
EXACT_MAX = 16  # non-zero differences up to which the sign-flip test enumerates all 2^m flips
PERMUTATIONS = 20_000  # random sign flips beyond that
SEED = 20_240_611
_CHUNK_CELLS = 4_000_000  # sign matrix cells per step of the random test (32 MB of float64)


def _check(k_values: Sequence[int], metrics: Sequence[str]) -> None:
    for k in k_values:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(
            f"unknown metric(s) {', '.join(map(repr, unknown))}; available: {', '.join(METRICS)}"
        )


def _unique(ranked: Sequence[str], depth: int) -> list[str]:
    """The first ``depth`` distinct ids of ``ranked``, in order."""
    seen: set[str] = set()
    top: list[str] = []
    for doc_id in ranked:
        if len(top) >= depth:
            break
        if doc_id not in seen:
            seen.add(doc_id)
            top.append(doc_id)
    return top


def _f_beta(precision: float, recall: float, beta: float) -> float:
    b2 = beta * beta
    denominator = b2 * precision + recall
    return (1 + b2) * precision * recall / denominator if denominator > 0 else 0.0


def query_metrics(
    ranked: Sequence[str],
    relevance: Mapping[str, int],
    k_values: Sequence[int] = DEFAULT_K,
    metrics: Sequence[str] = METRICS,
) -> dict[int, dict[str, float]]:
    """``{k: {metric: value}}`` for one query (formulas in the module docstring).

    ``ranked``: document ids, best first (repeats after the first occurrence are ignored);
    ``relevance``: judged grades, > 0 relevant. Keys follow the order of ``k_values`` and ``metrics``.
    Raises ``ValueError`` for a k < 1 or an unknown metric name.
    """
    _check(k_values, metrics)
    if not k_values:
        return {}
    top = _unique(ranked, max(k_values))
    positive = sorted((g for g in relevance.values() if g > 0), reverse=True)
    n_relevant = len(positive)

    # Running sums after each rank i (index i - 1): hits, Σ precision@i at relevant ranks, DCG.
    hits: list[int] = []
    ap_sums: list[float] = []
    dcgs: list[float] = []
    first_hit = 0  # rank of the first relevant document, 0 if none yet
    n_hits, ap_sum, dcg = 0, 0.0, 0.0
    for rank, doc_id in enumerate(top, start=1):
        grade = relevance.get(doc_id, 0)
        if grade > 0:
            n_hits += 1
            ap_sum += n_hits / rank
            if not first_hit:
                first_hit = rank
        dcg += grade / math.log2(rank + 1)  # beir.ndcg_at_k's expression and summation order
        hits.append(n_hits)
        ap_sums.append(ap_sum)
        dcgs.append(dcg)

    result: dict[int, dict[str, float]] = {}
    for k in k_values:
        last = min(k, len(top)) - 1  # index of the last rank within k, -1 when nothing was retrieved
        h = hits[last] if last >= 0 else 0
        precision = h / k
        recall = h / n_relevant if n_relevant else 0.0
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(positive[:k]))  # as beir.ndcg_at_k
        values = {
            "precision": precision,
            "recall": recall,
            "f1": _f_beta(precision, recall, 1.0),
            "f2": _f_beta(precision, recall, 2.0),
            "map": (ap_sums[last] if last >= 0 else 0.0) / min(n_relevant, k) if n_relevant else 0.0,
            "ndcg": (dcgs[last] if last >= 0 else 0.0) / idcg if idcg > 0 else 0.0,
            "mrr": 1.0 / first_hit if first_hit and first_hit <= k else 0.0,
        }
        result[k] = {m: values[m] for m in metrics}
    return result


def aggregate(per_query: Sequence[dict[int, dict[str, float]]]) -> dict[int, dict[str, float]]:
    """The mean of each ``(k, metric)`` over the queries (``math.fsum``, so independent of their order).

    Every query must carry the same ks and metrics (``ValueError`` otherwise); no queries gives ``{}``.
    """
    if not per_query:
        return {}
    shape = {k: list(values) for k, values in per_query[0].items()}
    for query in per_query[1:]:
        if {k: list(values) for k, values in query.items()} != shape:
            raise ValueError("every query must have the same k values and metrics")
    n = len(per_query)
    return {k: {m: math.fsum(q[k][m] for q in per_query) / n for m in names} for k, names in shape.items()}


def _t_within(t: float, df: int) -> float:
    """``P(|T| ≤ t)`` for Student's t with ``df`` degrees of freedom, ``t ≥ 0`` (A&S 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    if df % 2 == 0:
        term = total = 1.0
        for j in range(1, (df - 2) // 2 + 1):
            term *= (2 * j - 1) / (2 * j) * cos2
            total += term
        return math.sin(theta) * total
    if df == 1:
        return 2 * theta / math.pi
    term = total = math.cos(theta)
    for j in range(1, (df - 3) // 2 + 1):
        term *= (2 * j) / (2 * j + 1) * cos2
        total += term
    return 2 / math.pi * (theta + math.sin(theta) * total)


def _t_critical(df: int, confidence: float = CONFIDENCE) -> float:
    """The t with ``P(|T| ≤ t) = confidence``: ``t_{(1 + confidence) / 2, df}``, by bisection."""
    lo, hi = 0.0, 1.0
    while _t_within(hi, df) < confidence:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if _t_within(mid, df) < confidence:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _sign_flip_p(diffs: np.ndarray) -> float:
    """Two-sided p-value of the sign-flip test of ``Σ d_j`` (exact up to ``EXACT_MAX`` non-zero ``d``)."""
    d = diffs[diffs != 0]
    m = len(d)
    if m == 0:
        return 1.0
    observed = abs(math.fsum(d.tolist()))
    threshold = observed - 1e-9 * math.fsum(np.abs(d).tolist())  # sums in another order may differ by ulps
    if m <= EXACT_MAX:
        bits = (np.arange(2**m, dtype=np.int64)[:, None] >> np.arange(m, dtype=np.int64)) & 1
        sums = (1 - 2 * bits).astype(np.float64) @ d
        return float(np.count_nonzero(np.abs(sums) >= threshold)) / 2**m
    rng = np.random.default_rng(SEED)
    rows = max(1, _CHUNK_CELLS // m)
    count = 0
    done = 0
    while done < PERMUTATIONS:
        step = min(rows, PERMUTATIONS - done)
        signs = 1.0 - 2.0 * rng.integers(0, 2, size=(step, m))
        count += int(np.count_nonzero(np.abs(signs @ d) >= threshold))
        done += step
    return (1 + count) / (1 + PERMUTATIONS)


def paired_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Compare two systems' per-query scores on the same queries, in the same order.

    Returns ``n``, ``mean_diff`` (mean of ``a - b``), ``ci_low`` / ``ci_high`` (95 % paired
    t-interval of the mean difference) and ``p_value`` (two-sided sign-flip permutation test);
    formulas in the module docstring. Raises ``ValueError`` for lengths that differ, fewer than two
    queries or a non-finite score.
    """
    if len(a) != len(b):
        raise ValueError(f"paired scores need the same queries: {len(a)} against {len(b)}")
    n = len(a)
    if n < 2:
        raise ValueError("a paired test needs at least two queries")
    diffs = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    if not all(math.isfinite(x) for x in diffs):
        raise ValueError("scores must be finite numbers")
    mean = math.fsum(diffs) / n
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in diffs) / (n - 1))
    half = _t_critical(n - 1) * sd / math.sqrt(n)
    return {
        "n": float(n),
        "mean_diff": mean,
        "ci_low": mean - half,
        "ci_high": mean + half,
        "p_value": _sign_flip_p(np.asarray(diffs, dtype=np.float64)),
    }
