"""``score_normalize`` (sort): rescale the candidates' scores so they can be compared or combined.

Methods, over the scores of all the incoming candidates (``s``):

* ``min_max``: ``(s - min) / (max - min)``, in [0, 1]; the best is 1, the worst 0.
* ``z_score``: ``(s - mean) / std`` with the population standard deviation (ddof 0): mean 0,
  standard deviation 1.
* ``softmax``: ``exp((s - max) / temperature)`` divided by the sum: positive, summing to 1. A lower
  temperature sharpens the distribution, a higher one flattens it.
* ``l2``: ``s / ||s||``: the score vector gets unit Euclidean norm; signs are kept.

Constant scores (and a single candidate) never divide by zero: ``min_max`` gives every candidate
1.0, ``z_score`` 0.0, ``softmax`` ``1 / n``; ``l2`` of all-zero scores leaves them 0.0 (there is no
unit vector to scale to). Scores are first divided by their largest magnitude, so huge scores do not
overflow (every method but ``softmax`` is scale-free; ``softmax`` uses the raw scores). A
non-finite score (NaN, ±inf) is left out of the statistics: NaN becomes 0.0 in the output (the lowest
value for min_max/softmax), +inf and -inf the best and worst values of the method's range (softmax:
the +inf scores share the whole mass, every other score gets 0).

All methods are monotone, so the order of the candidates is kept: the stage does not reorder, and a
ranked list stays ranked. The result replaces ``score`` unless ``output_field`` is set: then it is
written there (``scores.<name>`` keeps it with the per-stage scores, another dotted path writes a
document field) and ``score`` is left unchanged.

Mixpeek's SDK has no parameter model for this stage; the names follow the other sort stages.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.base import Stage, StageParams

Method = Literal["min_max", "z_score", "softmax", "l2"]


class ScoreNormalizeParams(StageParams):
    """The method, the softmax temperature and where the normalised score goes."""

    method: Method = Field(default="min_max", description="min_max | z_score | softmax | l2.")
    temperature: float = Field(
        default=1.0, gt=0.0, le=1e6, description="softmax only: divides the scores before exp."
    )
    output_field: str | None = Field(
        default=None,
        description="null replaces 'score'; 'scores.<name>' or a dotted field path stores the "
        "normalised score there and keeps 'score'.",
    )

    @field_validator("output_field")
    @classmethod
    def _target(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if (
            any(not part for part in value.split("."))
            or value == "scores"
            or value.split(".")[0] in ("score", "document_id", "collection_id", "_internal")
        ):
            raise ValueError(
                f"output_field cannot be {value!r}: omit it to replace 'score', or use 'scores.<name>' "
                "or a field path of your own"
            )
        return value


def normalize(scores: np.ndarray, method: str, temperature: float = 1.0) -> np.ndarray:
    """The normalised scores (see the module docstring for each method and the constant case)."""
    s = np.asarray(scores, dtype=np.float64)
    out = np.zeros(len(s))
    finite = np.isfinite(s)
    x = s[finite]
    if x.size:
        if method == "softmax":
            with np.errstate(over="ignore"):  # a huge gap overflows to -inf: exp gives 0, as it should
                z = np.exp((x - x.max()) / temperature)
            out[finite] = z / z.sum()
        else:
            scale = float(np.abs(x).max())
            y = x / scale if scale > 0 else x
            if method == "min_max":
                span = y.max() - y.min()
                out[finite] = np.clip((y - y.min()) / span, 0.0, 1.0) if span > 0 else 1.0
            elif method == "z_score":
                centred = y - y.mean()
                std = float(np.sqrt(np.mean(centred**2)))
                out[finite] = centred / std if std > 0 else 0.0
            else:
                norm = float(np.linalg.norm(y))
                out[finite] = y / norm if norm > 0 else 0.0
    if method == "softmax" and np.isposinf(s).any():
        return np.where(np.isposinf(s), 1.0 / int(np.isposinf(s).sum()), 0.0)
    if not finite.all():
        top, bottom = _range(method, out[finite])
        out[np.isposinf(s)] = top
        out[np.isneginf(s)] = bottom
    return out


def _range(method: str, values: np.ndarray) -> tuple[float, float]:
    """Where +inf and -inf land: the ends of the method's range (or of the finite outputs)."""
    if method in ("min_max", "softmax"):
        return (1.0, 0.0)
    if values.size == 0:
        return (0.0, 0.0)
    return (float(values.max()), float(values.min()))


class ScoreNormalize(Stage[ScoreNormalizeParams]):
    """min_max, z_score, softmax or l2 over the candidates' scores; order kept."""

    stage_id: ClassVar[str] = "score_normalize"
    category: ClassVar[str] = "sort"
    description: ClassVar[str] = (
        "Rescale the scores: min_max (to [0, 1]), z_score (mean 0, std 1), softmax (sums to 1, with a "
        "temperature) or l2 (unit norm). Order kept; replaces score unless output_field is set."
    )
    Params: ClassVar[type[ScoreNormalizeParams]] = ScoreNormalizeParams

    def run(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        p = self.params
        raw = np.asarray([c.score for c in candidates], dtype=np.float64)
        values = normalize(raw, p.method, p.temperature)
        finite = raw[np.isfinite(raw)]
        ctx.metadata.update(
            {
                "method": p.method,
                "output_field": p.output_field or "score",
                "input_count": len(candidates),
                "input_min": float(finite.min()) if finite.size else None,
                "input_max": float(finite.max()) if finite.size else None,
                "output_min": float(values.min()) if values.size else None,
                "output_max": float(values.max()) if values.size else None,
                "constant_scores": bool(finite.size) and float(finite.min()) == float(finite.max()),
                "non_finite_scores": int(len(raw) - finite.size),
            }
        )
        if p.method == "softmax":
            ctx.metadata["temperature"] = p.temperature
        return [self._with(c, float(v)) for c, v in zip(candidates, values.tolist(), strict=True)]

    def _with(self, cand: Candidate, value: float) -> Candidate:
        return cand.with_value(self.params.output_field or "score", value)
