"""``mmr`` (sort): reorder the candidates for diversity by Maximal Marginal Relevance.

Greedy selection: the next document is the unselected one maximising
``lambda * relevance - (1 - lambda) * max similarity to the documents already selected`` (the first
pick has no similarity term, so it is the most relevant). ``top_k`` documents are selected; the rest
are dropped. Ties (equal MMR value) go to the earlier document in ``rank_key`` order (score
descending, then document id, then collection id), so ``lambda: 1`` returns exactly that order.

* Relevance: the value at ``score_field`` (default ``score``; a dotted path into the document as
  filters see it), min-max normalised over the input to [0, 1]. Equal values all get 1; a
  non-numeric or missing value gets 0.
* Similarity over the vector feature ``diversity_feature_uri`` (a URI or a feature name; when
  omitted, each collection's only dense feature). Vectors come from ``candidate.vectors``; the
  others are loaded with one ``get_documents(..., with_vectors=True)`` call per collection.
  ``cosine`` (in [-1, 1]), ``dot`` (raw inner product) or ``euclidean`` as ``1 / (1 + distance)``
  (in (0, 1], 1 = identical). A document with no vector (or one of another dimension than most)
  has similarity 0 to every other: it is ranked by relevance alone. The metadata counts them.
* Output: the selected documents in selection order, ``score`` unchanged; the MMR value is also
  written at ``mmr_score_field`` (``scores.<name>`` keeps it with the per-stage scores, another
  dotted path writes a document field, null skips it).

Left out of the SDK's ``StageParamsMmr``: ``diversity_features`` (multi-feature fusion),
``diversity_fields`` and ``diversity_field_weights`` (attribute mode), and auto-detection of the
feature from the previous ``feature_search`` (here: the collection's only dense feature).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import ConfigDict, Field, field_validator, model_validator

from siftline.errors import ValidationError
from siftline.filters import get_path
from siftline.models import Collection
from siftline.pipeline.candidates import Candidate, rank_key
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.stages.base import PlanContext, Stage, StageParams


class MmrParams(StageParams):
    """Parameters of ``mmr``; names and defaults follow the SDK's ``StageParamsMmr``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    lambda_: float = Field(
        default=0.7, ge=0.0, le=1.0, alias="lambda", description="1: pure relevance; 0: pure diversity."
    )
    top_k: int = Field(default=25, ge=1, le=500, description="Documents returned after reordering.")
    diversity_feature_uri: str | None = Field(
        default=None,
        description="Vector feature (URI or name) similarity is measured in; omitted: each "
        "collection's only dense feature.",
    )
    score_field: str = Field(default="score", min_length=1, description="Dotted path of the relevance.")
    mmr_score_field: str | None = Field(
        default="scores.mmr", description="Where the MMR value is stored ('scores.<name>' or a field path)."
    )
    similarity_metric: Literal["cosine", "dot", "euclidean"] = Field(default="cosine")

    @model_validator(mode="before")
    @classmethod
    def _sdk_null(cls, data: Any) -> Any:
        """The SDK sends the string 'null' for an unset value: read it as null."""
        if isinstance(data, dict):
            return {k: None if k == "diversity_feature_uri" and v == "null" else v for k, v in data.items()}
        return data

    @field_validator("mmr_score_field")
    @classmethod
    def _target(cls, value: str | None) -> str | None:
        if value is not None and (
            any(not part for part in value.split("."))
            or value == "scores"
            or value.split(".")[0] in ("score", "document_id", "collection_id", "_internal")
        ):
            raise ValueError(f"mmr_score_field cannot be {value!r}: use 'scores.<name>' or a field path")
        return value


def _feature_name(collection: Collection | None, uri: str | None) -> str | None:
    if collection is None:
        return None
    if uri is None:
        dense = collection.dense_features
        return dense[0].name if len(dense) == 1 else None
    feature = collection.feature(uri)
    return feature.name if feature is not None and feature.kind == "dense" else None


class Mmr(Stage[MmrParams]):
    """Greedy Maximal Marginal Relevance over a vector feature."""

    stage_id: ClassVar[str] = "mmr"
    category: ClassVar[str] = "sort"
    description: ClassVar[str] = (
        "Reorder for diversity (Maximal Marginal Relevance): pick documents greedily by "
        "lambda * relevance - (1 - lambda) * similarity to those already picked, keep top_k."
    )
    Params: ClassVar[type[MmrParams]] = MmrParams

    @classmethod
    def check(cls, params: MmrParams, plan: PlanContext, loc: list[str | int]) -> None:
        uri = params.diversity_feature_uri
        if uri is not None and ("{{" in uri or "{%" in uri):
            return
        if uri is None:
            ambiguous = [c.collection_name for c in plan.collections if len(c.dense_features) > 1]
            if ambiguous:
                raise ValidationError.at(
                    [*loc, "diversity_feature_uri"],
                    f"collection(s) {ambiguous} have several dense features: name one",
                )
        if plan.collections and not any(_feature_name(c, uri) for c in plan.collections):
            what = f"dense feature '{uri}'" if uri else "dense feature"
            raise ValidationError.at([*loc, "diversity_feature_uri"], f"no collection has a {what}")

    def run(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        p = self.params
        ordered = sorted(candidates, key=rank_key)
        n, k = len(ordered), min(p.top_k, len(ordered))
        relevance = self._relevance(ordered)
        vectors, loaded = self._vectors(ctx, ordered)
        sim, missing = self._similarity(vectors)
        mmr_values = np.zeros(n)
        max_sim = np.zeros(n)
        chosen = np.zeros(n, dtype=bool)
        picks: list[int] = []
        for step in range(k):
            values = p.lambda_ * relevance - (1.0 - p.lambda_) * (max_sim if step else 0.0)
            values = np.where(chosen, -np.inf, values)
            pick = int(np.argmax(values))  # the first maximum: rank_key order breaks ties
            picks.append(pick)
            chosen[pick] = True
            mmr_values[pick] = values[pick]
            max_sim = sim[pick] if step == 0 else np.maximum(max_sim, sim[pick])
        by_relevance = list(np.argsort(-relevance, kind="stable")[:k])
        ctx.metadata.update(
            {
                "lambda": p.lambda_,
                "similarity_metric": p.similarity_metric,
                "diversity_feature_uri": p.diversity_feature_uri,
                "input_count": n,
                "returned": k,
                "vectors_loaded": loaded,
                "documents_without_vector": missing,
                "moved": sum(a != b for a, b in zip(picks, by_relevance, strict=True)),
                "mean_similarity_returned": _mean_pairwise(sim, picks),
                "mean_similarity_by_relevance": _mean_pairwise(sim, by_relevance),
            }
        )
        if n and missing == n:
            ctx.warnings.append(
                f"Stage '{self.name}' (mmr): no document had a vector for the diversity feature, "
                "so the order is by relevance only; check 'diversity_feature_uri'."
            )
        return [self._with_value(ordered[i], float(mmr_values[i])) for i in picks]

    def _relevance(self, cands: list[Candidate]) -> np.ndarray:
        raw = [get_path(c.view(), self.params.score_field) for c in cands]
        vals = [float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None for v in raw]
        known = [v for v in vals if v is not None and np.isfinite(v)]
        if not known:
            return np.zeros(len(cands))
        lo, hi = min(known), max(known)
        half_span = hi / 2 - lo / 2  # halves: no overflow for any finite scores
        out = []
        for v in vals:
            if v is None or np.isnan(v):
                out.append(0.0)
            elif half_span == 0:
                out.append(0.0 if v == -np.inf else 1.0)
            else:
                out.append(float(np.clip((v / 2 - lo / 2) / half_span, 0.0, 1.0)))
        return np.asarray(out, dtype=np.float64)

    def _vectors(self, ctx: ExecutionContext, cands: list[Candidate]) -> tuple[list[Any], int]:
        """Each candidate's vector (or None), and how many were loaded from storage."""
        uri = self.params.diversity_feature_uri
        out: list[Any] = [None] * len(cands)
        wanted: dict[str, list[int]] = {}
        names: dict[str, str | None] = {}
        for i, cand in enumerate(cands):
            if cand.collection_id not in names:
                names[cand.collection_id] = _feature_name(ctx.collection(cand.collection_id), uri)
            name = names[cand.collection_id]
            if name is None:
                continue
            if cand.vectors is not None and name in cand.vectors:
                out[i] = cand.vectors[name]
            else:
                wanted.setdefault(cand.collection_id, []).append(i)
        loaded = 0
        for collection_id, idx in wanted.items():
            collection = ctx.collection(collection_id)
            name = names[collection_id]
            assert collection is not None and name is not None
            docs = ctx.storage.get_documents(
                collection, [cands[i].document_id for i in idx], with_vectors=True
            )
            found = {d.document_id: (d.vectors or {}).get(name) for d in docs}
            for i in idx:
                out[i] = found.get(cands[i].document_id)
                loaded += out[i] is not None
        return out, loaded

    def _similarity(self, vectors: list[Any]) -> tuple[np.ndarray, int]:
        """The pairwise similarity matrix; rows of documents without a usable vector are 0."""
        n = len(vectors)
        dims = Counter(len(v) for v in vectors if v is not None)
        dim = dims.most_common(1)[0][0] if dims else 0
        ok = [i for i, v in enumerate(vectors) if v is not None and len(v) == dim and dim > 0]
        sim = np.zeros((n, n))
        if ok:
            m = np.asarray([vectors[i] for i in ok], dtype=np.float64)
            metric = self.params.similarity_metric
            if metric == "euclidean":
                sq = np.maximum(((m[:, None, :] - m[None, :, :]) ** 2).sum(-1), 0.0)
                block = 1.0 / (1.0 + np.sqrt(sq))
            else:
                if metric == "cosine":
                    norms = np.linalg.norm(m, axis=1, keepdims=True)
                    m = np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)
                block = m @ m.T
            sim[np.ix_(ok, ok)] = np.nan_to_num(block, nan=0.0, posinf=1e300, neginf=-1e300)
        return sim, n - len(ok)

    def _with_value(self, cand: Candidate, value: float) -> Candidate:
        target = self.params.mmr_score_field
        return cand if target is None else cand.with_value(target, value)


def _mean_pairwise(sim: np.ndarray, idx: list[int]) -> float | None:
    if len(idx) < 2:
        return None
    block = sim[np.ix_(idx, idx)]
    return round(float((block.sum() - np.trace(block)) / (len(idx) * (len(idx) - 1))), 6)
