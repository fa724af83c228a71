"""``sort_relevance``: order the candidates by relevance score, deterministically.

By default the candidate's ``score`` orders, best first; ties fall back to ``rank_key`` order
(document id, then collection id) so the same input always gives the same output. ``score_field``
(a dotted path, as in Mixpeek's ``StageParamsSortRelevance``) sorts by another numeric field such as
``rerank_score`` instead; documents whose field is absent, null or not a finite number are
"missing" and go to the bottom or the top (among themselves in ``rank_key`` order), or stay at
their incoming positions (``missing_score: preserve``). The stage
only reorders: it adds, drops and rescores nothing. The SDK's deprecated ``feature_address`` (it has
no effect there either) is not accepted.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from siftline.filters import get_path
from siftline.pipeline.candidates import Candidate, rank_key
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.base import Stage, StageParams


class SortRelevanceParams(StageParams):
    """Which score orders, in which direction, and where documents without one go."""

    SDK_IGNORED: ClassVar[frozenset[str]] = frozenset({"feature_address"})
    score_field: str = Field(
        default="score", min_length=1, description="Dotted path of the numeric score to sort by."
    )
    direction: Literal["asc", "desc"] = Field(default="desc", description="'desc': highest score first.")
    missing_score: Literal["bottom", "top", "preserve"] = Field(
        default="bottom",
        description="Documents without a numeric score_field: at the end, at the start, or in place.",
    )

    @model_validator(mode="before")
    @classmethod
    def _sdk_unset_only(cls, data: Any) -> Any:
        """The SDK always sends feature_address 'null' (unset): ignored; a value is refused."""
        if isinstance(data, dict):
            for key in ("feature_address",):
                if data.get(key, "null") not in ("null", None):
                    kind = PydanticCustomError("extra_forbidden", "Extra inputs are not permitted")
                    details = [InitErrorDetails(type=kind, loc=(key,), input=data[key])]
                    raise PydanticValidationError.from_exception_data(cls.__name__, details)
        return data


def _score_of(candidate: Candidate, path: str) -> float | None:
    """The sort score, or ``None`` when the field is absent, null, boolean or not a finite number."""
    value: Any = candidate.score if path == "score" else get_path(candidate.view(), path)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


class SortRelevance(Stage[SortRelevanceParams]):
    """Reorder by score; ties by document id, then collection id."""

    stage_id: ClassVar[str] = "sort_relevance"
    category: ClassVar[str] = "sort"
    description: ClassVar[str] = (
        "Order the documents by relevance score (or another numeric field), highest first by default; "
        "ties are broken by document id."
    )
    Params: ClassVar[type[SortRelevanceParams]] = SortRelevanceParams

    def run(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        params = self.params
        sign = -1.0 if params.direction == "desc" else 1.0
        scored: list[tuple[float, Candidate]] = []
        missing: list[tuple[int, Candidate]] = []
        for index, cand in enumerate(candidates):
            score = _score_of(cand, params.score_field)
            if score is None:
                missing.append((index, cand))
            else:
                scored.append((score, cand))
        scored.sort(key=lambda sc: (sign * sc[0], sc[1].document_id, sc[1].collection_id))
        ordered = [cand for _, cand in scored]
        out = self._place_missing(ordered, missing, len(candidates))
        ctx.metadata.update(
            {
                "score_field": params.score_field,
                "direction": params.direction,
                "missing_score": params.missing_score,
                "sorted_count": len(ordered),
                "missing_count": len(missing),
            }
        )
        return out

    def _place_missing(
        self, ordered: list[Candidate], missing: list[tuple[int, Candidate]], total: int
    ) -> list[Candidate]:
        """Put the documents without a score where ``missing_score`` says (``rank_key`` order among them)."""
        rest = sorted((cand for _, cand in missing), key=rank_key)
        if self.params.missing_score == "bottom":
            return ordered + rest
        if self.params.missing_score == "top":
            return rest + ordered
        out: list[Candidate] = []
        fixed = dict(missing)
        sorted_iter = iter(ordered)
        for index in range(total):
            out.append(fixed[index] if index in fixed else next(sorted_iter))
        return out
