"""Score lineage (``explain: true``): where each returned document's score came from.

A document's lineage has three parts, kept on its candidate and returned with it:

* ``origin``: the stage that produced the candidate and the score it gave it. For feature_search:
  the fusion method (``None`` for a single search, whose raw score is the score; ``"learned"`` with
  ``applied`` naming what the drawn weights fused with), ``rrf_k`` and the fused ``score``.
* ``legs``: one row per search that ran, in the stage's order: ``index`` (the search's position in
  ``searches``), ``feature_uri``, ``kind``, ``rank`` (1-based competition rank in that search; None
  when it did not find the document), ``raw_score``, ``normalized``, ``weight`` and ``contribution``.
  The contributions are the terms the fusion combined (``pipeline/fusion.py`` ``contributions``):
  their sum is the origin's score (for ``max``, the one leg that attained it).
* ``steps``: each later stage that changed the document's score or rank: ``score_before``,
  ``score_after``, ``change`` (after - before) and ``rank_before``/``rank_after`` (1-based positions
  in that stage's input and output). A stage that leaves both alone (a filter above which nothing
  was removed, a limit) adds no step. The steps chain: each ``score_before`` is the previous
  ``score_after`` (the origin's score for the first), and the last ``score_after`` is the score.

The returned ``lineage.score`` is the document's final score.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from siftline.pipeline.candidates import Candidate
from siftline.pipeline.fusion import contributions

Key = tuple[str, str]


@dataclasses.dataclass(frozen=True)
class Leg:
    """A search that ran: its position in ``searches``, feature and kind, and its hits."""

    index: int
    feature_uri: str
    kind: str
    hits: list[tuple[Key, float]]


def attach_search(
    out: list[Candidate],
    stage_name: str,
    fusion: str | None,
    applied: str | None,
    legs: Sequence[Leg],
    weights: Sequence[float],
    rrf_k: int,
) -> None:
    """Set the lineage of a feature_search's fresh output candidates (made by the stage, not shared)."""
    origin: dict[str, Any] = {"stage_name": stage_name, "stage_id": "feature_search", "fusion": fusion}
    if fusion is not None:
        origin["rrf_k"] = rrf_k
    if fusion == "learned":
        origin["applied"] = applied
    keys = {c.key for c in out}
    if applied is None:  # one search: its raw score is the score
        only = legs[0]
        ranked = contributions("weighted", [only.hits], [1.0], keys)
        parts = {
            k: [{**p[0], "normalized": p[0]["raw_score"], "contribution": p[0]["raw_score"]}]
            for k, p in ranked.items()
        }
    else:
        parts = contributions(applied, [leg.hits for leg in legs], weights, keys, rrf_k=rrf_k)
    for cand in out:
        rows = [
            {"index": leg.index, "feature_uri": leg.feature_uri, "kind": leg.kind, **part}
            for leg, part in zip(legs, parts[cand.key], strict=True)
        ]
        cand.lineage = {"origin": {**origin, "score": cand.score}, "legs": rows, "steps": []}


def attach_scan(out: list[Candidate], stage_name: str) -> None:
    """A filter-only scan: every document scores 1.0, no search made it."""
    for cand in out:
        cand.lineage = _origin(stage_name, "feature_search", cand.score, fusion="scan")


def _origin(stage_name: str, stage_id: str, score: float, fusion: str | None = None) -> dict[str, Any]:
    return {
        "origin": {"stage_name": stage_name, "stage_id": stage_id, "fusion": fusion, "score": score},
        "legs": [],
        "steps": [],
    }


def trace(stage_name: str, stage_id: str, before: list[Candidate], after: list[Candidate]) -> list[Candidate]:
    """The stage's output with a step added to the lineage of each document whose score or rank it
    changed; a document it made itself (no lineage yet) starts its lineage here."""
    prior: dict[Key, tuple[int, float]] = {}
    for position, cand in enumerate(before, start=1):
        prior.setdefault(cand.key, (position, cand.score))
    out: list[Candidate] = []
    for position, cand in enumerate(after, start=1):
        lineage = cand.lineage
        if lineage is None:
            out.append(dataclasses.replace(cand, lineage=_origin(stage_name, stage_id, cand.score)))
            continue
        was = prior.get(cand.key)
        fresh = lineage["origin"]["stage_name"] == stage_name and not lineage["steps"]
        if was is None or fresh or (was[0] == position and was[1] == cand.score):
            out.append(cand)
            continue
        rank_before, score_before = was
        step = {
            "stage_name": stage_name,
            "stage_id": stage_id,
            "score_before": score_before,
            "score_after": cand.score,
            "change": cand.score - score_before,
            "rank_before": rank_before,
            "rank_after": position,
        }
        out.append(dataclasses.replace(cand, lineage={**lineage, "steps": [*lineage["steps"], step]}))
    return out
