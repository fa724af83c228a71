"""``sort_attribute``: order the candidates by a document field (dates, prices, titles...).

The field is a dotted path into the document as filters see it (``Candidate.view()``), so user
fields, ``score``, ``document_id`` and ``_internal.created_at`` all work. The order is total and
deterministic whatever the values are:

* Values of one JSON type compare naturally: numbers numerically (``1 == 1.0``), strings by
  ``casefold`` and then exactly (so "apple" < "Banana" < "banana"), ``false`` < ``true``, lists and
  objects by their canonical JSON text.
* Mixed types order by type in ascending order: numbers, strings, booleans, lists/objects;
  ``desc`` is the exact reverse of ``asc``.
* Absent, null and NaN values are "null": last in both directions by default (``nulls_last``); with
  ``nulls_last: false`` they sort as the smallest value (first for asc, last for desc).
* Ties, and the nulls among themselves, keep ``rank_key`` order: score descending, then document id,
  then collection id — the same in both directions.

Parameters follow Mixpeek's ``StageParamsSortAttribute``; ``field`` is required here (the SDK
defaults it to the hosted ``metadata.created_at``, which a local collection need not have).
"""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar, Literal

from pydantic import Field

from siftline.filters import MISSING, get_path
from siftline.pipeline.candidates import Candidate, rank_key
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.base import Stage, StageParams

_TYPE_NAMES = ("number", "string", "boolean", "object")


class SortAttributeParams(StageParams):
    """The field to sort by, the direction, and where null/missing values go."""

    field: str = Field(min_length=1, description="Dotted path of the field to sort by, e.g. 'metadata.year'.")
    direction: Literal["asc", "desc"] = Field(default="desc", description="'desc': highest/latest first.")
    nulls_last: bool = Field(
        default=True, description="Null or missing values last in both directions (else as the smallest)."
    )


def sort_key(value: Any) -> tuple[int, Any] | None:
    """A key ordering any JSON value (type rank first), or ``None`` for a null, missing or NaN value."""
    if value is MISSING or value is None:
        return None
    if isinstance(value, bool):
        return (2, value)
    if isinstance(value, int | float):
        return None if isinstance(value, float) and math.isnan(value) else (0, value)
    if isinstance(value, str):
        return (1, (value.casefold(), value))
    return (3, json.dumps(value, sort_keys=True, default=str))


class SortAttribute(Stage[SortAttributeParams]):
    """Stable, deterministic sort by one field; nulls placed by ``nulls_last``."""

    stage_id: ClassVar[str] = "sort_attribute"
    category: ClassVar[str] = "sort"
    description: ClassVar[str] = (
        "Order the documents by a field (numbers, strings, dates as ISO strings, booleans), descending by "
        "default; null or missing values last, ties by score then document id."
    )
    Params: ClassVar[type[SortAttributeParams]] = SortAttributeParams

    def run(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        params = self.params
        present: list[tuple[tuple[int, Any], Candidate]] = []
        nulls: list[Candidate] = []
        for cand in candidates:
            key = sort_key(get_path(cand.view(), params.field))
            if key is None:
                nulls.append(cand)
            else:
                present.append((key, cand))
        descending = params.direction == "desc"
        present.sort(key=lambda kc: rank_key(kc[1]))  # the tie order, kept by the stable sort below
        present.sort(key=lambda kc: kc[0], reverse=descending)
        nulls.sort(key=rank_key)
        ordered = [cand for _, cand in present]
        out = ordered + nulls if params.nulls_last or descending else nulls + ordered
        types = sorted({key[0] for key, _ in present})
        ctx.metadata.update(
            {
                "field": params.field,
                "direction": params.direction,
                "nulls_last": params.nulls_last,
                "null_count": len(nulls),
                "value_types": [_TYPE_NAMES[t] for t in types],
            }
        )
        return out
