"""``limit``: keep a window of the candidates, ``candidates[offset : offset + limit]``.

The window is taken in the order the candidates arrive, so a limit after a sort keeps the top of
that sort. An offset past the end yields no candidates (not an error): paging past the last page
is a normal thing to do. Neither the SDK nor the spec gives this stage a default window, so
``limit`` is required and ``offset`` defaults to 0. Counts accept integers (and integral numbers or
numeric strings a template rendered) but never booleans, which pydantic would otherwise read as 0/1.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field

from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.base import Stage, StageParams


def _not_bool(value: Any) -> Any:
    """Refuse ``true``/``false`` where a count is expected."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    return value


Count = Annotated[int, BeforeValidator(_not_bool)]


class LimitParams(StageParams):
    """How many candidates to keep, after skipping how many."""

    limit: Count = Field(ge=1, description="Maximum number of documents to keep (at least 1).")
    offset: Count = Field(default=0, ge=0, description="Number of leading documents to skip.")


class Limit(Stage[LimitParams]):
    """Slice the candidate list; order is untouched."""

    stage_id: ClassVar[str] = "limit"
    category: ClassVar[str] = "reduce"
    description: ClassVar[str] = "Keep at most `limit` documents after skipping the first `offset`."
    Params: ClassVar[type[LimitParams]] = LimitParams

    def run(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        start = self.params.offset
        kept = candidates[start : start + self.params.limit]
        ctx.metadata.update(
            {
                "limit": self.params.limit,
                "offset": start,
                "input_count": len(candidates),
                "returned": len(kept),
                "dropped": len(candidates) - len(kept),
            }
        )
        return kept
