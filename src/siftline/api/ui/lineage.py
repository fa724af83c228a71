"""A document's score lineage (recorded with ``explain: true``) as bars: how each search leg contributed to
the fused score, then how each later stage changed it.

The record's form (``document["lineage"]``)::

    {"origin": {"stage_name", "stage_id", "fusion", "rrf_k", "score"},
     "legs": [{"index", "feature_uri", "kind", "rank", "raw_score", "normalized", "weight", "contribution"}],
     "steps": [{"stage_name", "stage_id", "score_before", "score_after", "change", "rank_before", "rank_after"}],
     "score": ...}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from siftline.api.ui.render import as_dict, as_list

FUSIONS = {
    "rrf": "reciprocal rank fusion",
    "weighted": "weighted sum",
    "dbsf": "distribution-based score fusion",
    "max": "maximum",
    "learned": "learned weights",
}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _width(value: float | None, scale: float) -> float:
    """A bar's width in % of ``scale``: at least a sliver when not zero, never past the track."""
    if value is None or scale <= 0 or value == 0:
        return 0.0
    return round(min(100.0, max(0.8, abs(value) / scale * 100)), 2)


def feature_label(uri: Any) -> str:
    """mixpeek://text_extractor@v1/text_embedding → text_embedding (the whole URI goes in a tooltip)."""
    text = str(uri or "")
    return text.rsplit("/", 1)[-1] or text


@dataclass(frozen=True)
class LegBar:
    index: int
    feature_uri: str
    label: str
    kind: str
    rank: int | None  # None: this leg did not find the document
    raw_score: float | None
    normalized: float | None
    weight: float | None
    contribution: float
    share: float  # of the fused score
    width: float  # % of the track


@dataclass(frozen=True)
class StepBar:
    stage_name: str
    stage_id: str
    before: float | None
    after: float | None
    change: float | None
    rank_before: int | None
    rank_after: int | None
    before_width: float
    after_width: float
    direction: str  # up | down | same
    negative: bool


@dataclass(frozen=True)
class LineageView:
    origin_stage: str
    origin_stage_id: str
    fusion: str  # a label: "RRF (k = 60)", "single search", …
    fusion_title: str
    origin_score: float | None
    score: float | None
    legs: list[LegBar] = field(default_factory=list)
    steps: list[StepBar] = field(default_factory=list)


def _fusion(origin: dict[str, Any], legs: int) -> tuple[str, str]:
    fusion = origin.get("fusion")
    if not fusion:
        return ("single search" if legs <= 1 else "no fusion", "one search leg: its score is the document's")
    label = str(fusion).upper() if fusion in ("rrf", "dbsf") else str(fusion)
    if fusion == "rrf" and origin.get("rrf_k") is not None:
        label += f" (k = {origin['rrf_k']})"
    return label, FUSIONS.get(str(fusion), str(fusion))


def _legs(raw: list[Any], origin_score: float | None) -> list[LegBar]:
    legs = [leg for leg in raw if isinstance(leg, dict)]
    contributions = [_number(leg.get("contribution")) or 0.0 for leg in legs]
    total = sum(c for c in contributions if c > 0)
    scale = max([total, abs(origin_score or 0.0), *(abs(c) for c in contributions)])
    out = []
    for i, (leg, contribution) in enumerate(zip(legs, contributions, strict=True)):
        rank = leg.get("rank")
        out.append(
            LegBar(
                index=int(leg.get("index", i)),
                feature_uri=str(leg.get("feature_uri") or ""),
                label=feature_label(leg.get("feature_uri")),
                kind=str(leg.get("kind") or ""),
                rank=rank if isinstance(rank, int) and not isinstance(rank, bool) else None,
                raw_score=_number(leg.get("raw_score")),
                normalized=_number(leg.get("normalized")),
                weight=_number(leg.get("weight")),
                contribution=contribution,
                share=round(contribution / total, 4) if total > 0 else 0.0,
                width=_width(contribution, scale),
            )
        )
    return out


def _steps(raw: list[Any], scale: float) -> list[StepBar]:
    out = []
    for step in (s for s in raw if isinstance(s, dict)):
        before, after = _number(step.get("score_before")), _number(step.get("score_after"))
        change = _number(step.get("change"))
        if change is None and before is not None and after is not None:
            change = after - before
        direction = "same" if not change else ("up" if change > 0 else "down")
        out.append(
            StepBar(
                stage_name=str(step.get("stage_name") or ""),
                stage_id=str(step.get("stage_id") or ""),
                before=before,
                after=after,
                change=change,
                rank_before=step.get("rank_before"),
                rank_after=step.get("rank_after"),
                before_width=_width(before, scale),
                after_width=_width(after, scale),
                direction=direction,
                negative=(after or 0) < 0,
            )
        )
    return out


def lineage_view(lineage: Any) -> LineageView | None:
    """The bars of one document's lineage; None when the document has none (run with explain: true)."""
    if not isinstance(lineage, dict):
        return None
    origin = as_dict(lineage.get("origin"))
    raw_legs = as_list(lineage.get("legs"))
    raw_steps = as_list(lineage.get("steps"))
    origin_score = _number(origin.get("score"))
    final = _number(lineage.get("score"))
    scores = [origin_score, final] + [
        _number(s.get(k)) for s in raw_steps if isinstance(s, dict) for k in ("score_before", "score_after")
    ]
    scale = max((abs(s) for s in scores if s is not None), default=0.0)
    label, title = _fusion(origin, len(raw_legs))
    return LineageView(
        origin_stage=str(origin.get("stage_name") or ""),
        origin_stage_id=str(origin.get("stage_id") or ""),
        fusion=label,
        fusion_title=title,
        origin_score=origin_score,
        score=final,
        legs=_legs(raw_legs, origin_score),
        steps=_steps(raw_steps, scale),
    )
