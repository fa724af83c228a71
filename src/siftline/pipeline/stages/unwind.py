"""``unwind``: turn an array field into one candidate per element (MongoDB's ``$unwind``).

For each candidate, the value at ``field`` (a dotted path into the user fields, read as filters read
it) decides what comes out, in input order and array order:

* a non-empty list: one candidate per element, the element replacing the list at ``field``. Its
  ``document_id`` is ``<original id>#<index>`` (0-based), unique within the collection as long as
  original ids don't themselves end in ``#<digits>``; score, collection, vectors, ``_internal`` and
  per-search scores are the original's.
* absent, null or an empty list: dropped, unless ``preserve_null_and_empty``, which keeps the
  candidate once with its id unchanged (an empty list becomes null; absent stays absent).
* any other value (a string, number, object...): not an array, so it passes through once unchanged,
  id included (as ``$unwind`` treats a non-array operand as a one-element array).

Every output carries ``source_document_id`` (the original id), so results can be regrouped; with
``include_array_index`` also ``index_field`` (default ``array_index``): the element's index, null
for a candidate that was not split. Both replace user fields of the same names. No Mixpeek SDK
stage model exists for unwind (only the aggregation API's ``unwind: <field>``), so the names follow
``$unwind``: ``preserveNullAndEmptyArrays`` and ``includeArrayIndex`` in snake case.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from pydantic import Field, model_validator

from siftline.filters import MISSING, get_path
from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.base import Stage, StageParams

SOURCE_FIELD = "source_document_id"
RESERVED = ("document_id", "collection_id", "score", "_internal", SOURCE_FIELD)


class UnwindParams(StageParams):
    """The array field, whether to keep documents without elements, and the index field."""

    field: str = Field(min_length=1, description="Dotted path of the array field to unwind, e.g. 'tags'.")
    preserve_null_and_empty: bool = Field(
        default=False, description="Keep documents whose field is absent, null or empty (once each)."
    )
    include_array_index: bool = Field(default=False, description="Add each element's index in index_field.")
    index_field: str = Field(default="array_index", min_length=1, description="Name of the index field.")

    @model_validator(mode="after")
    def _names(self) -> UnwindParams:
        if any(not part for part in self.field.split(".")):
            raise ValueError(f"field '{self.field}' has an empty path segment")
        if self.field.split(".")[0] in RESERVED:
            raise ValueError(f"field '{self.field}' is a system field; unwind a user field")
        if self.include_array_index and (self.index_field in RESERVED or self.index_field == self.field):
            raise ValueError(f"index_field '{self.index_field}' is reserved or is the unwound field")
        return self


def set_path(fields: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of ``fields`` with ``value`` at the (existing) dotted path; nested dicts copied on the way."""
    head, _, rest = dotted.partition(".")
    out = dict(fields)
    out[head] = set_path(out[head], rest, value) if rest else value
    return out


class Unwind(Stage[UnwindParams]):
    """One candidate per element of an array field; ids ``<id>#<index>``, original id kept."""

    stage_id: ClassVar[str] = "unwind"
    category: ClassVar[str] = "apply"
    description: ClassVar[str] = (
        "Turn an array field into one document per element (the element replaces the array); documents "
        "with an absent, null or empty array are dropped unless preserve_null_and_empty."
    )
    Params: ClassVar[type[UnwindParams]] = UnwindParams

    def run(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        params = self.params
        out: list[Candidate] = []
        counts = {"arrays_unwound": 0, "elements": 0, "preserved": 0, "dropped": 0, "non_array": 0}
        for cand in candidates:
            value = get_path(cand.view(), params.field)
            if isinstance(value, list) and value:
                counts["arrays_unwound"] += 1
                counts["elements"] += len(value)
                for index, element in enumerate(value):
                    fields = set_path(cand.fields, params.field, element)
                    out.append(self._emit(cand, f"{cand.document_id}#{index}", fields, index))
            elif value is MISSING or value is None or value == []:
                if not params.preserve_null_and_empty:
                    counts["dropped"] += 1
                    continue
                counts["preserved"] += 1
                fields = cand.fields if value is MISSING else set_path(cand.fields, params.field, None)
                out.append(self._emit(cand, cand.document_id, fields, None))
            else:
                counts["non_array"] += 1
                out.append(self._emit(cand, cand.document_id, cand.fields, None))
        ctx.metadata.update(
            {"field": params.field, "documents_in": len(candidates), "documents_out": len(out), **counts}
        )
        return out

    def _emit(
        self, cand: Candidate, document_id: str, fields: dict[str, Any], index: int | None
    ) -> Candidate:
        """A copy of ``cand`` with the given id and fields plus the source id (and index) fields."""
        fields = {**fields, SOURCE_FIELD: cand.document_id}
        if self.params.include_array_index:
            fields[self.params.index_field] = index
        return dataclasses.replace(
            cand,
            document_id=document_id,
            fields=fields,
            internal=dict(cand.internal),
            scores=dict(cand.scores),
        )
