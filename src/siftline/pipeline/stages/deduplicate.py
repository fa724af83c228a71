"""``deduplicate``: drop candidates that duplicate another one, by key fields or by vector similarity.

Exactly one mode is given (the Mixpeek SDK has no model for this stage; ``DedupStrategy`` is about
batch ingestion, so the parameters are Siftline's own):

* ``fields``: a list of dotted paths. Two candidates are duplicates when every one of those values
  is equal. Equality follows the filter language's ``eq``, but case-sensitive: numbers numerically
  (``1`` equals ``1.0``), strings exactly, booleans apart from numbers, ``null`` equals only ``null``;
  lists and objects compare by canonical JSON. A candidate missing one of the fields (or holding
  NaN) equals nothing, so it is never dropped.
* ``feature_uri`` (a feature URI or name) with ``threshold``: two candidates are duplicates when the
  cosine similarity of their vectors for that feature is at least ``threshold``, whatever metric the
  feature is searched with. Vectors the candidates carry are used; the others are loaded with one
  ``get_documents(..., with_vectors=True)`` call per collection. A candidate without a vector (its
  collection lacks the feature, or the document has none) is never dropped.

``keep`` (``first`` | ``last``) says which duplicate survives, in the current candidate order. The
scan is greedy: candidates are visited in that order (reversed for ``last``) and one is dropped when
it duplicates a candidate already kept. The output is a subsequence of the input in the same order,
and running the stage twice gives what running it once does (no two kept candidates are duplicates).
Kept candidates are returned as they came in; loaded vectors are not attached to them.

Metadata: ``mode``, ``keep``, ``input_count``, ``returned``, ``duplicates_dropped``, ``groups``
(kept candidates that had at least one duplicate dropped), ``without_key`` (candidates that lack a
field or a vector and so take no part).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from siftline.errors import ValidationError
from siftline.filters import MISSING, get_path
from siftline.pipeline.candidates import Candidate
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.base import PlanContext, Stage, StageParams
from siftline.pipeline.stages.group_by import group_key


class DeduplicateParams(StageParams):
    """Key fields or a vector feature (exactly one), the similarity threshold, and which duplicate to keep."""

    fields: list[str] | None = Field(
        default=None, min_length=1, description="Dotted paths; duplicates have equal values at all of them."
    )
    feature_uri: str | None = Field(
        default=None,
        min_length=1,
        description="Feature (URI or name) whose vectors define content similarity.",
    )
    threshold: float = Field(
        default=0.95, ge=-1.0, le=1.0, description="Cosine similarity at or above which two are duplicates."
    )
    keep: Literal["first", "last"] = Field(
        default="first", description="Which of a set of duplicates is kept, in the current order."
    )

    @field_validator("fields")
    @classmethod
    def _paths(cls, value: list[str] | None) -> list[str] | None:
        for path in value or []:
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"field '{path}' must be a dotted path such as 'metadata.url'")
        return value

    @model_validator(mode="after")
    def _one_mode(self) -> DeduplicateParams:
        if (self.fields is None) == (self.feature_uri is None):
            raise ValueError(
                "give exactly one of 'fields' (key fields) or 'feature_uri' (content similarity)"
            )
        return self


def value_key(value: Any) -> tuple[str, Any] | None:
    """A hashable key equal for equal JSON values (``group_by``'s keys); None for a value that equals
    nothing (missing or NaN), so such documents are never duplicates."""
    if value is MISSING or (isinstance(value, float) and math.isnan(value)):
        return None
    return group_key(value)


class Deduplicate(Stage[DeduplicateParams]):
    """Keep one candidate of each set of duplicates (equal key fields or near-identical vectors)."""

    stage_id: ClassVar[str] = "deduplicate"
    category: ClassVar[str] = "reduce"
    description: ClassVar[str] = (
        "Drop duplicate documents: equal values at the given fields, or vectors of a feature with cosine "
        "similarity at or above threshold; keep the first or last of each set in the current order."
    )
    Params: ClassVar[type[DeduplicateParams]] = DeduplicateParams

    @classmethod
    def check(cls, params: DeduplicateParams, plan: PlanContext, loc: list[str | int]) -> None:
        uri = params.feature_uri
        if uri is None:
            return
        if not any((f := c.feature(uri)) is not None and f.kind == "dense" for c in plan.collections):
            known = sorted({f.uri for c in plan.collections for f in c.features if f.kind == "dense"})
            raise ValidationError.at(
                [*loc, "feature_uri"],
                f"no collection of this retriever has a dense feature '{uri}'; available: "
                f"{', '.join(known) or 'none'}",
            )

    def run(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        order = list(range(len(candidates)))
        if self.params.keep == "last":
            order.reverse()
        if self.params.fields is not None:
            dropped, groups, without = self._by_fields(candidates, order, self.params.fields)
        else:
            dropped, groups, without = self._by_vectors(ctx, candidates, order)
        out = [c for i, c in enumerate(candidates) if i not in dropped]
        ctx.metadata.update(
            {
                "mode": "fields" if self.params.fields is not None else "similarity",
                "keep": self.params.keep,
                "input_count": len(candidates),
                "returned": len(out),
                "duplicates_dropped": len(dropped),
                "groups": groups,
                "without_key": without,
            }
        )
        return out

    @staticmethod
    def _by_fields(
        candidates: list[Candidate], order: list[int], fields: list[str]
    ) -> tuple[set[int], int, int]:
        seen: dict[tuple[Any, ...], int] = {}
        dropped: set[int] = set()
        grouped: set[int] = set()
        without = 0
        for i in order:
            view = candidates[i].view()
            parts = [value_key(get_path(view, path)) for path in fields]
            if any(p is None for p in parts):
                without += 1
                continue
            key = tuple(parts)
            if key in seen:
                dropped.add(i)
                grouped.add(seen[key])
            else:
                seen[key] = i
        return dropped, len(grouped), without

    def _by_vectors(
        self, ctx: ExecutionContext, candidates: list[Candidate], order: list[int]
    ) -> tuple[set[int], int, int]:
        vectors = self._vectors(ctx, candidates)
        kept: list[tuple[int, np.ndarray]] = []
        dropped: set[int] = set()
        grouped: set[int] = set()
        for i in order:
            vec = vectors.get(i)
            if vec is None:
                continue
            match = next(
                (k for k, o in kept if o.shape == vec.shape and float(vec @ o) >= self.params.threshold), None
            )
            if match is None:
                kept.append((i, vec))
            else:
                dropped.add(i)
                grouped.add(match)
        return dropped, len(grouped), len(candidates) - len(vectors)

    def _vectors(self, ctx: ExecutionContext, candidates: list[Candidate]) -> dict[int, np.ndarray]:
        """Unit vectors by candidate index; candidates without a (non-zero) vector are left out."""
        assert self.params.feature_uri is not None
        raw: dict[int, list[float]] = {}
        to_load: dict[str, list[int]] = {}
        for i, cand in enumerate(candidates):
            collection = ctx.collection(cand.collection_id)
            feature = collection.feature(self.params.feature_uri) if collection is not None else None
            if feature is None:
                continue
            if cand.vectors is not None and feature.name in cand.vectors:
                raw[i] = cand.vectors[feature.name]
            else:
                to_load.setdefault(cand.collection_id, []).append(i)
        for collection_id, indexes in to_load.items():
            collection = ctx.collection(collection_id)
            assert collection is not None
            feature = collection.feature(self.params.feature_uri)
            assert feature is not None
            ids = list(dict.fromkeys(candidates[i].document_id for i in indexes))
            docs = ctx.storage.get_documents(collection, ids, with_vectors=True)
            found = {d.document_id: d.vectors for d in docs}
            for i in indexes:
                stored = found.get(candidates[i].document_id)
                if stored is not None and feature.name in stored:
                    raw[i] = list(stored[feature.name])
        out: dict[int, np.ndarray] = {}
        for i, values in raw.items():
            vec = np.asarray(values, dtype=np.float64)
            norm = float(np.linalg.norm(vec))
            if norm > 0 and math.isfinite(norm):
                out[i] = vec / norm
        return out
