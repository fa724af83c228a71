"""Score fusion for feature_search: several ranked lists ("legs") in, one ranked list out.

Pure functions, no I/O. A leg is a sequence of ``(key, score)`` pairs, conventionally best first; the
key is any hashable (in practice ``(collection_id, document_id)``) and the score is a finite number
on any scale, higher better (negated distances are fine). Each leg has a weight ``w_i >= 0``
(default 1.0). The legs' scales are unrelated, so every method first maps each leg's scores to a
common scale, ``norm_i(d)``, and then combines them:

* ``rrf`` (reciprocal rank fusion): ``norm_i(d) = 1 / (rrf_k + rank_i(d))`` and
  ``fused(d) = Σ_i w_i · norm_i(d)`` over the legs that contain ``d``. ``rank_i`` is 1-based and
  computed from the scores (competition ranking, "1224": equal scores share the best rank), so RRF
  depends only on each leg's order: any strictly increasing transform of a leg's scores leaves it
  unchanged.
* ``weighted``: min-max normalisation, ``norm_i(d) = (s - min_i) / (max_i - min_i)`` in [0, 1] (a
  leg whose scores are all equal gives every document 1.0), ``fused(d) = Σ_i w_i · norm_i(d)``; a
  leg without ``d`` contributes 0.
* ``dbsf`` (distribution-based score fusion, as in Qdrant): ``norm_i(d) = (s - mean_i) / (6 std_i) + 1/2``,
  i.e. ``[mean - 3 std, mean + 3 std]`` mapped onto [0, 1], clipped to [0, 1]; ``std`` is the
  *population* standard deviation (Qdrant's client uses the sample one). A leg whose scores are all
  equal (``std = 0``) gives every document 0.5, the image of the mean. ``fused(d) = Σ_i w_i · norm_i(d)``.
* ``max``: min-max normalisation as for ``weighted``, ``fused(d) = max_i w_i · norm_i(d)``.

Order and ties: the result is sorted by fused score, descending; equal fused scores are ordered by

1. (``dbsf`` only) the same sum computed *without* clipping, so that outliers clipped to 1.0 (or 0.0)
   keep their order;
2. coverage, ``Σ w_i`` over the legs containing the document, descending: a leg's worst document
   normalises to 0, like a document the leg does not contain, and should still rank above it;
3. the key's natural order, ascending (keys must be mutually orderable, as tuples of strings are).

Consequences, relied on by feature_search and checked by the tests: with one leg (weight > 0) every
method keeps that leg's order, ties by key; with weights ``(1, 0, ...)`` ``weighted`` ranks leg 0's
documents in leg 0's order, before the documents that only other legs found; permuting the legs
together with their weights changes nothing (sums use ``math.fsum``, which is exactly rounded and
so independent of the order of its terms); scaling all weights by a power of two scales the fused
scores exactly and keeps the order (any other positive factor keeps it up to float rounding of
near-ties).

A key listed twice in one leg keeps its best score there. Empty legs are allowed; no documents at
all gives ``[]``. A weight-0 leg contributes no score (its documents still appear, ranked by the
other legs, then by key).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Final, TypeVar

K = TypeVar("K", bound=Hashable)

METHODS: Final = ("rrf", "weighted", "dbsf", "max")
DBSF_SIGMAS: Final = 3.0  # dbsf maps [mean - 3 std, mean + 3 std] onto [0, 1]

# A normalised leg: key -> (score used for fusion, tie-break score before clipping).
Normalised = dict[K, tuple[float, float]]
# One fused row: (key, fused score, unclipped tie-break score, coverage).
Row = tuple[K, float, float, float]


def fuse(
    method: str,
    legs: Sequence[Sequence[tuple[K, float]]],
    weights: Sequence[float] | None = None,
    *,
    rrf_k: int = 60,
) -> list[tuple[K, float]]:
    """Fuse ranked legs into one list of ``(key, fused_score)``, best first, keys unique.

    See the module docstring for each method's formula and the tie-breaking rules. Raises
    ValueError for an unknown method, a weight count that does not match the legs, a negative or
    non-finite weight, a non-finite score or a negative ``rrf_k`` (callers validate earlier; this
    guards the arithmetic).
    """
    if method not in METHODS:
        raise ValueError(f"unknown fusion method {method!r}; expected one of {', '.join(METHODS)}")
    if rrf_k < 0:
        raise ValueError(f"rrf_k must be >= 0, got {rrf_k}")
    leg_weights = _check_weights(weights, len(legs))
    tables = [_normalise(method, _best_scores(leg), rrf_k) for leg in legs]
    combine = _maximum if method == "max" else math.fsum
    return _rank(_combine(tables, leg_weights, combine))


def _check_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """One finite, non-negative weight per leg; None means 1.0 each."""
    if weights is None:
        return [1.0] * count
    if len(weights) != count:
        raise ValueError(f"{len(weights)} weights for {count} legs")
    out = [float(w) for w in weights]
    for w in out:
        if not (math.isfinite(w) and w >= 0):
            raise ValueError(f"weights must be finite and >= 0, got {w}")
    return out


def _best_scores(leg: Iterable[tuple[K, float]]) -> dict[K, float]:
    """The leg as key -> score; a repeated key keeps its best score, so input order never matters."""
    best: dict[K, float] = {}
    for key, score in leg:
        value = float(score)
        if not math.isfinite(value):
            raise ValueError(f"score {score!r} of {key!r} is not a finite number")
        if key not in best or value > best[key]:
            best[key] = value
    return best


def _normalise(method: str, scores: dict[K, float], rrf_k: int) -> Normalised[K]:
    """Map one leg's scores onto the method's common scale."""
    if not scores:
        return {}
    if method == "rrf":
        return _rrf(scores, rrf_k)
    if method == "dbsf":
        return _dbsf(scores)
    return _min_max(scores)


def _rrf(scores: dict[K, float], rrf_k: int) -> Normalised[K]:
    """``1 / (rrf_k + rank)`` with competition ranks: equal scores share the best position."""
    out: Normalised[K] = {}
    for key, rank in _competition_ranks(scores).items():
        value = 1.0 / (rrf_k + rank)
        out[key] = (value, value)
    return out


def _min_max(scores: dict[K, float]) -> Normalised[K]:
    """``(s - min) / (max - min)`` in [0, 1]; all-equal scores give 1.0 (each is the leg's best)."""
    lo, hi = min(scores.values()), max(scores.values())
    if lo == hi:
        return {key: (1.0, 1.0) for key in scores}
    # Halve everything when the span overflows (e.g. scores near ±1e308); the ratio is unchanged.
    half = 0.5 if math.isinf(hi - lo) else 1.0
    span = hi * half - lo * half
    out: Normalised[K] = {}
    for key, score in scores.items():
        value = (score * half - lo * half) / span
        out[key] = (value, value)
    return out


def _dbsf(scores: dict[K, float]) -> Normalised[K]:
    """``(s - mean) / (6 std) + 0.5`` clipped to [0, 1]; the unclipped value is kept for ties."""
    values = list(scores.values())
    if min(values) == max(values):
        return {key: (0.5, 0.5) for key in scores}
    mean = math.fsum(values) / len(values)
    std = math.sqrt(math.fsum((v - mean) * (v - mean) for v in values) / len(values))
    width = 2 * DBSF_SIGMAS * std
    out: Normalised[K] = {}
    for key, score in scores.items():
        raw = (score - mean) / width + 0.5
        out[key] = (min(max(raw, 0.0), 1.0), raw)
    return out


def _maximum(values: Iterable[float]) -> float:
    return max(values)


def _combine(
    tables: Sequence[Normalised[K]], weights: Sequence[float], combine: Callable[[Iterable[float]], float]
) -> list[Row[K]]:
    """Per key: combined weighted scores, combined unclipped scores and coverage (Σ weights)."""
    parts: dict[K, list[tuple[float, float, float]]] = {}
    for table, weight in zip(tables, weights, strict=True):
        for key, (value, raw) in table.items():
            parts.setdefault(key, []).append((weight * value, weight * raw, weight))
    return [
        (key, combine(p[0] for p in ps), combine(p[1] for p in ps), math.fsum(p[2] for p in ps))
        for key, ps in parts.items()
    ]


def _rank(rows: list[Row[K]]) -> list[tuple[K, float]]:
    """Best first: fused score, then unclipped score, then coverage, all descending; then key."""
    rows.sort(key=lambda row: (-row[1], -row[2], -row[3], row[0]))
    return [(row[0], row[1]) for row in rows]


def contributions(
    method: str,
    legs: Sequence[Sequence[tuple[K, float]]],
    weights: Sequence[float] | None = None,
    keys: Iterable[K] = (),
    *,
    rrf_k: int = 60,
) -> dict[K, list[dict[str, float | int | None]]]:
    """Where each key's fused score came from, per leg: ``rank`` (competition rank in the leg, None when
    the leg does not hold the key), ``raw_score``, ``normalized`` (``norm_i``, clipped for dbsf),
    ``weight`` and ``contribution``.

    The contributions are the very terms ``fuse`` combines: for the summing methods their ``math.fsum``
    *is* the fused score (fsum is exactly rounded, so the order of terms does not matter); for ``max``
    only the leg that attains the maximum (the first, on ties) contributes, the others show 0.
    """
    if method not in METHODS:
        raise ValueError(f"unknown fusion method {method!r}; expected one of {', '.join(METHODS)}")
    leg_weights = _check_weights(weights, len(legs))
    raw = [_best_scores(leg) for leg in legs]
    tables = [_normalise(method, scores, rrf_k) for scores in raw]
    ranks = [_competition_ranks(scores) for scores in raw]
    out: dict[K, list[dict[str, float | int | None]]] = {}
    for key in keys:
        parts: list[dict[str, float | int | None]] = []
        for i, weight in enumerate(leg_weights):
            held = key in raw[i]
            value = tables[i][key][0] if held else None
            parts.append(
                {
                    "rank": ranks[i][key] if held else None,
                    "raw_score": raw[i][key] if held else None,
                    "normalized": value,
                    "weight": weight,
                    "contribution": weight * value if value is not None else 0.0,
                }
            )
        if method == "max":
            present = [p for p in parts if p["rank"] is not None]
            best = max(present, key=lambda p: float(p["contribution"] or 0.0), default=None)
            for p in parts:
                if p is not best:
                    p["contribution"] = 0.0
        out[key] = parts
    return out


def _competition_ranks(scores: dict[K, float]) -> dict[K, int]:
    """1-based ranks by score, equal scores sharing the best ("1224"), as rrf ranks them."""
    first_position: dict[float, int] = {}
    for position, score in enumerate(sorted(scores.values(), reverse=True), start=1):
        first_position.setdefault(score, position)
    return {key: first_position[score] for key, score in scores.items()}
