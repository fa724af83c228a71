"""feature_search: dense and BM25 searches over the collections' features, fused into one ranking.

Each search names a feature URI and a query: text (embedded by the built-in model for a dense
feature, matched with BM25 for a bm25 feature), a vector, or a stored document whose vector is used
("document" mode). Searches run over every target collection that has the feature; a search's hits
are its ``top_k`` best across those collections (scores of one feature are comparable), after
``min_score``. Two or more searches are fused (``rrf`` | ``weighted`` | ``dbsf`` | ``max``, see
``pipeline/fusion.py``) with their ``weight``; one search keeps its raw scores. The fused list is cut
to ``final_top_k``. With no searches the stage is a filter-only scan. Stage ``pre_filters`` and the
request's ``filters`` restrict every search; ``facets`` count field values over every document the
searches examined.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import ConfigDict, Field, field_validator, model_validator

from siftline.errors import BadRequestError, ValidationError
from siftline.filters import MISSING, get_path
from siftline.models import VECTOR_COMPONENT_MAX, Collection, Document, Feature
from siftline.pipeline import learned, lineage, parallel, pushdown
from siftline.pipeline.candidates import Candidate, rank_key
from siftline.pipeline.context import ExecutionContext
from siftline.pipeline.fusion import fuse
from siftline.pipeline.learned import LearningConfig
from siftline.pipeline.stages.base import PlanContext, Stage, StageParams
from siftline.pipeline.stages.group_by import GroupBy, GroupByParams, group_key

Key = tuple[str, str]  # (collection_id, document_id)
MAX_TOP_K = 5000  # per search and after fusion; larger requests are clamped and reported in `limits`
MAX_REQUESTED = 1_000_000  # larger still is a 422: a bound on what a request may ask


class DocumentRef(StageParams):
    document_id: str
    collection_id: str | None = Field(None, description="Collection id or name; default: the searched ones.")


class SearchQuery(StageParams):
    """``text`` (``value`` or legacy ``text``), ``vector`` (``value``), or ``document`` (``document_ref``)."""

    input_mode: Literal["text", "vector", "document"] = "text"
    value: str | list[float] | None = None
    text: str | None = None
    vector: list[float] | None = None
    document_ref: DocumentRef | None = None
    embedding_task: str | None = Field(None, description="Accepted for compatibility; MiniLM has no tasks.")

    @field_validator("value", "vector")
    @classmethod
    def _components(cls, value: Any) -> Any:
        if isinstance(value, list) and not all(abs(x) <= VECTOR_COMPONENT_MAX for x in value):
            raise ValueError(f"a query vector's components are numbers with |x| ≤ {VECTOR_COMPONENT_MAX:.0e}")
        return value

    @model_validator(mode="after")
    def _shape(self) -> SearchQuery:
        if self.input_mode == "document" and self.document_ref is None:
            raise ValueError("input_mode 'document' needs document_ref: {document_id, collection_id}")
        if self.input_mode == "vector" and self.value is not None and not isinstance(self.value, list):
            raise ValueError("input_mode 'vector' takes value: a list of numbers")
        if self.input_mode == "text" and isinstance(self.value, list):
            raise ValueError("input_mode 'text' takes value: a string (use input_mode 'vector' for a vector)")
        return self

    def text_value(self) -> str | None:
        return self.value if isinstance(self.value, str) else self.text

    def vector_value(self) -> list[float] | None:
        return self.value if isinstance(self.value, list) else self.vector


class SearchConfig(StageParams):
    feature_uri: str = Field(
        description="mixpeek://extractor@version/output, as GET /v1/collections/{c}/features lists."
    )
    query: SearchQuery
    top_k: int = Field(
        100,
        ge=1,
        le=MAX_REQUESTED,
        description=f"Hits kept from this search (at most {MAX_TOP_K}; more, up to {MAX_REQUESTED:,}, is clamped).",
    )
    min_score: float | None = Field(
        None, ge=-1e30, le=1e30, description="Hits scoring below are dropped (a finite number)."
    )
    weight: float = Field(
        1.0, ge=0.0, le=1e6, description="Weight in weighted/rrf/dbsf/max fusion, 0 to 1,000,000."
    )
    lexical: bool = Field(
        False, description="Search the BM25 feature of the same extractor with the query text."
    )
    on_empty: Literal["error", "skip"] = Field(
        "error", description="An empty query: fail, or leave the search out."
    )
    optional: bool = Field(False, description="Skip this search when no target collection has the feature.")
    collection_identifiers: list[str] | None = None

    @field_validator("query", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str) or value is None:
            return {"input_mode": "text", "value": value}
        if isinstance(value, list):
            return {"input_mode": "vector", "value": value}
        return value


class FacetConfig(StageParams):
    key: str
    limit: int = Field(10, ge=1, le=1000)
    exact: bool = Field(False, description="Counts are always exact here.")


class SearchGroupBy(StageParams):
    """Group the fused results by a field (the group_by stage's semantics, ``limit`` groups)."""

    model_config = ConfigDict(populate_by_name=True)

    field_path: str = Field(alias="field", description="Dotted field to group by.")
    max_per_group: int = Field(1, ge=1, le=100)
    limit: int = Field(25, ge=1, le=500, description="Groups returned; replaces final_top_k.")
    output_mode: Literal["first", "all", "flatten"] = "all"


class FeatureSearchParams(StageParams):
    SDK_IGNORED: ClassVar[frozenset[str]] = frozenset(
        {
            "auto_preprocess",
            "degrade_retry",
            "hard_timeout_ms",
            "interactive",
            "query_preprocessing",
        }
    )
    searches: list[SearchConfig] = Field(default_factory=list, max_length=10)
    final_top_k: int = Field(
        25,
        ge=1,
        le=MAX_REQUESTED,
        description=f"Documents kept after fusion (at most {MAX_TOP_K}; more, up to {MAX_REQUESTED:,}, is clamped).",
    )
    fusion: Literal["rrf", "weighted", "dbsf", "max", "learned"] = "rrf"
    learning_config: LearningConfig | None = Field(
        None,
        description="With fusion 'learned': how weights are learned from interactions (see docs/LEARNED_FUSION.md).",
    )
    rrf_k: int = Field(60, ge=1, le=1_000_000, description="The k of reciprocal rank fusion, 1 to 1,000,000.")
    collection_identifiers: list[str] | None = None
    facets: list[FacetConfig] | None = None
    group_by: SearchGroupBy | None = None

    @model_validator(mode="after")
    def _learning(self) -> FeatureSearchParams:
        if self.learning_config is not None and self.fusion != "learned":
            raise ValueError("learning_config applies to fusion 'learned' only")
        if self.fusion == "learned" and self.learning_config is None:
            self.learning_config = LearningConfig()
        return self


def _resolve_feature(collection: Collection, search: SearchConfig) -> Feature | None:
    feature = collection.feature(search.feature_uri)
    if feature is not None and search.lexical and feature.kind == "dense":
        return next(
            (f for f in collection.features if f.kind == "bm25" and f.extractor == feature.extractor), None
        )
    return feature


class FeatureSearch(Stage[FeatureSearchParams]):
    stage_id: ClassVar[str] = "feature_search"
    category: ClassVar[str] = "filter"
    description: ClassVar[str] = (
        "Dense (MiniLM or your vectors) and BM25 searches over collection features, fused by rrf, weighted, "
        "dbsf or max; with no searches, a filter-only scan."
    )
    Params: ClassVar[type[FeatureSearchParams]] = FeatureSearchParams
    accepts_pre_filter: ClassVar[bool] = True

    @classmethod
    def check(cls, params: FeatureSearchParams, plan: PlanContext, loc: list[str | int]) -> None:
        for i, search in enumerate(params.searches):
            targets = _targets(
                plan.collections, search.collection_identifiers or params.collection_identifiers
            )
            features = [f for c in targets if (f := _resolve_feature(c, search)) is not None]
            for feature in features[:1]:
                problem = _query_problem(search.query, feature)
                if problem:
                    raise ValidationError.at([*loc, "searches", i, "query"], problem)
            if search.optional:
                continue
            if not features:
                known = sorted({f.uri for c in plan.collections for f in c.features})
                raise ValidationError.at(
                    [*loc, "searches", i, "feature_uri"],
                    f"no collection of this retriever has feature '{search.feature_uri}'"
                    f"{' (for lexical search: a bm25 feature)' if search.lexical else ''}; "
                    f"available: {', '.join(known) or 'none'}",
                )

    def units(self) -> int:
        return max(len(self.params.searches), 1)

    def max_documents(self, ctx: ExecutionContext, candidates: list[Candidate]) -> int:
        """Charged per document returned: at most final_top_k (or the groups' documents), at most the
        searches' hits, at most the documents the searched collections hold."""
        p = self.params
        group = p.group_by
        bound = (
            p.final_top_k
            if group is None
            else group.limit * (group.max_per_group if group.output_mode == "flatten" else 1)
        )
        if p.searches:
            bound = min(bound, sum(s.top_k for s in p.searches))
        held = sum(
            ctx.storage.count_documents(c) for c in _targets(ctx.collections, p.collection_identifiers)
        )
        return min(bound, held)

    def _clamp(self, ctx: ExecutionContext) -> FeatureSearchParams:
        """Caps applied to this run, each reported in ``ctx.limits``."""
        p = self.params
        searches = []
        for i, search in enumerate(p.searches):
            if search.top_k > MAX_TOP_K:
                ctx.limits.append(_limit(f"searches[{i}].top_k", search.top_k, MAX_TOP_K, self.name))
                search = search.model_copy(update={"top_k": MAX_TOP_K})
            searches.append(search)
        final = p.final_top_k
        if final > MAX_TOP_K:
            ctx.limits.append(_limit("final_top_k", final, MAX_TOP_K, self.name))
            final = MAX_TOP_K
        return p.model_copy(update={"searches": searches, "final_top_k": final})

    def run(self, ctx: ExecutionContext, candidates: list[Candidate]) -> list[Candidate]:
        self.params = p = self._clamp(ctx)
        targets = _targets(ctx.collections, p.collection_identifiers)
        filt = ctx.search_filter
        if not p.searches:
            scanned = self._scan(ctx, targets)
            if ctx.explain:
                lineage.attach_scan(scanned, self.name)
            return self._group(ctx, scanned, p.group_by) if p.group_by else scanned
        used: list[str] = []  # the legs' feature URIs (the learned weights are per leg)
        ran: list[lineage.Leg] = []  # the searches that ran, with their hits
        weights: list[float] = []
        report: list[dict[str, Any]] = []

        def leg(
            i: int, search: SearchConfig
        ) -> Callable[[], tuple[list[tuple[Key, float]] | None, dict[str, Any]]]:
            cols = (
                _targets(targets, search.collection_identifiers) if search.collection_identifiers else targets
            )
            return lambda: self._search(ctx, cols, search, filt, i)

        found = parallel.run_all([leg(i, search) for i, search in enumerate(p.searches)])
        for i, (search, (hits, info)) in enumerate(zip(p.searches, found, strict=True)):
            report.append(info)
            if hits is None:
                continue
            weights.append(search.weight)
            used.append(search.feature_uri if search.feature_uri not in used else f"{search.feature_uri}#{i}")
            ran.append(lineage.Leg(i, search.feature_uri, str(info.get("kind")), hits))
        legs = [leg.hits for leg in ran]
        examined = {key for leg in legs for key, _ in leg}
        applied: tuple[str, list[float]] | None = None  # the fusion that ran and its weights
        if len(legs) == 1:
            fused = legs[0]
        else:
            fused, applied = self._fuse(ctx, legs, weights, used)
        embedded = [r["embedding_cache"] for r in report if "embedding_cache" in r]
        ctx.stage_cache_hit = bool(embedded) and all(e == "hit" for e in embedded)
        ctx.metadata.update(
            {
                "searches": report,
                "fusion": p.fusion if len(legs) > 1 else None,
                "candidates_examined": len(examined),
                "final_top_k": p.final_top_k,
                "filtered": filt is not None,
            }
        )
        if p.group_by is None and (ctx.absorbed or ctx.pushed_post_filter is not None or ctx.page_window):
            out = pushdown.run(ctx, self, fused[: p.final_top_k], legs)  # hydrates only what is kept
        else:
            out = self._hydrate(ctx, fused if p.group_by else fused[: p.final_top_k], legs)
        if ctx.explain and ran:
            method, used_weights = applied or (None, [1.0])
            label = p.fusion if applied is not None else None
            lineage.attach_search(out, self.name, label, method, ran, used_weights, p.rrf_k)
        if p.facets:
            ctx.metadata["facets"] = self._facets(ctx, examined, p.facets)
        if p.group_by:
            out = self._group(ctx, out, p.group_by)
        return out

    def _fuse(
        self,
        ctx: ExecutionContext,
        legs: list[list[tuple[Key, float]]],
        weights: list[float],
        uris: list[str],
    ) -> tuple[list[tuple[Key, float]], tuple[str, list[float]]]:
        """The fused list and the fusion that made it (method and weights; learned fusion runs rrf or
        weighted with the drawn weights)."""
        p = self.params
        if p.fusion != "learned":
            return fuse(p.fusion, legs, weights, rrf_k=p.rrf_k), (p.fusion, weights)
        assert p.learning_config is not None
        recorded = ctx.pinned_draws.get(self.name)
        if recorded is not None and recorded.get("feature_uris") == uris:  # a replay: the same draw
            context = {**{k: v for k, v in recorded.items() if k != "ranks"}, "replayed_draw": True}
            served = recorded.get("served") == "learned"
            drawn = [float(recorded["sampled_weights"][u]) for u in uris] if served else None
        else:
            drawn, context = learned.resolve(ctx, self.name, p.learning_config, uris, time.time())
        # static: the legs' own weights, reciprocal rank fusion; learned: the drawn weights over min-max
        # normalised scores (measured best: docs/BENCHMARKS.md)
        applied = ("rrf", weights) if drawn is None else ("weighted", drawn)
        fused = fuse(applied[0], legs, applied[1], rrf_k=p.rrf_k)
        shown = {key for key, _ in fused[: p.final_top_k]}
        ranks: dict[str, list[int | None]] = {}
        for i, leg in enumerate(legs):
            for rank, (key, _) in enumerate(leg):
                if key in shown:
                    ranks.setdefault(key[1], [None] * len(legs))[i] = rank
        ctx.learned.append(
            {**context, "ranks": ranks, "config": p.learning_config.model_dump(), "scope": ctx.fusion_scope}
        )
        ctx.metadata["learned_fusion"] = {
            k: context[k] for k in ("context_level", "sampled_weights", "served")
        }
        return fused, applied

    def _group(self, ctx: ExecutionContext, out: list[Candidate], config: SearchGroupBy) -> list[Candidate]:
        grouping = GroupByParams(
            group_by_field=config.field_path,
            max_per_group=config.max_per_group,
            output_mode=config.output_mode,
        )
        grouped = GroupBy(f"{self.name}.group_by", grouping).run(ctx, out)
        if config.output_mode == "flatten":  # keep the documents of the first `limit` groups
            order = list(dict.fromkeys(group_key(get_path(c.view(), config.field_path)) for c in grouped))
            allowed = set(order[: config.limit])
            return [c for c in grouped if group_key(get_path(c.view(), config.field_path)) in allowed]
        return grouped[: config.limit]

    # -- searching ----------------------------------------------------------------------------

    def _search(
        self, ctx: ExecutionContext, cols: list[Collection], search: SearchConfig, filt: Any, index: int
    ) -> tuple[list[tuple[Key, float]] | None, dict[str, Any]]:
        info: dict[str, Any] = {"index": index, "feature_uri": search.feature_uri, "top_k": search.top_k}
        pairs = [(c, f) for c in cols if (f := _resolve_feature(c, search)) is not None]
        if not pairs:
            info["skipped"] = "no target collection has this feature"
            return None, info
        kind = pairs[0][1].kind
        info["kind"] = kind
        info["path"] = "bm25" if kind == "bm25" else "exact"
        if kind != "bm25":
            info.update({"ef_search": None, "candidates_examined": 0})
        text = search.query.text_value()
        if search.query.input_mode == "text" and not (text and text.strip()):
            if search.on_empty == "skip":
                info["skipped"] = "empty query"
                return None, info
            raise BadRequestError(
                f"Search {index} ({search.feature_uri}) has an empty query; pass the input it reads "
                "or set on_empty: 'skip'."
            )
        hits: list[tuple[Key, float]] = []
        for collection, feature in pairs:
            if feature.kind == "bm25":
                if search.query.input_mode != "text":
                    raise BadRequestError(f"Search {index}: a bm25 feature takes a text query.")
                found = ctx.storage.text_search(collection, feature, text or "", search.top_k, filt)
            else:
                vector = self._query_vector(ctx, collection, feature, search, index, info)
                stats: dict[str, Any] = {}
                found = ctx.storage.vector_search(collection, feature, vector, search.top_k, filt, stats)
                _merge_stats(info, stats)
            hits += [((collection.collection_id, doc_id), score) for doc_id, score in found]
        hits.sort(key=lambda h: (-h[1], h[0][1], h[0][0]))
        below = 0
        if search.min_score is not None:
            kept = [h for h in hits if h[1] >= search.min_score]
            below, hits = len(hits) - len(kept), kept
        hits = hits[: search.top_k]
        info.update({"results": len(hits), "below_min_score": below})
        return hits, info

    def _query_vector(
        self,
        ctx: ExecutionContext,
        collection: Collection,
        feature: Feature,
        search: SearchConfig,
        index: int,
        info: dict[str, Any],
    ) -> np.ndarray:
        query = search.query
        if query.input_mode == "text":
            if feature.extractor != "text_extractor":
                raise BadRequestError(
                    f"Search {index}: feature '{feature.uri}' holds your own vectors; send input_mode 'vector'."
                )
            text = query.text_value() or ""
            embedded, hit = ctx.query_cache.get(text, lambda: ctx.embed_query(text))
            info["embedding_cache"] = "hit" if hit else "miss"
            return embedded
        if query.input_mode == "vector":
            values = query.vector_value()
            if not values:
                raise BadRequestError(f"Search {index}: input_mode 'vector' needs a non-empty value.")
            if len(values) != feature.dimension:
                raise BadRequestError(
                    f"Search {index}: the query vector has {len(values)} dimensions; "
                    f"'{feature.uri}' has {feature.dimension}."
                )
            return np.asarray(values, dtype=np.float32)
        ref = query.document_ref
        assert ref is not None
        if ref.collection_id:
            sources = [c for c in [ctx.collection(ref.collection_id)] if c is not None]
        else:  # the searched collection first, then the others of the retriever
            sources = [collection, *(c for c in ctx.collections if c is not collection)]
        vector = None
        for source in sources:
            found = ctx.storage.get_documents(source, [ref.document_id], with_vectors=True)
            if found:
                vector = (found[0].vectors or {}).get(feature.name)
                break
        if vector is None:
            raise BadRequestError(
                f"Search {index}: document '{ref.document_id}' was not found or has no '{feature.name}' vector."
            )
        return np.asarray(vector, dtype=np.float32)

    # -- results ------------------------------------------------------------------------------

    def _hydrate(
        self, ctx: ExecutionContext, fused: list[tuple[Key, float]], legs: list[list[tuple[Key, float]]]
    ) -> list[Candidate]:
        per_leg = [dict(leg) for leg in legs]
        by_collection: dict[str, list[str]] = {}
        for (col_id, doc_id), _ in fused:
            by_collection.setdefault(col_id, []).append(doc_id)
        docs: dict[Key, Document] = {}
        for col_id, ids in by_collection.items():
            collection = ctx.collection(col_id)
            if collection is None:
                continue
            for doc in ctx.storage.get_documents(collection, ids, with_vectors=ctx.return_vectors):
                docs[(col_id, doc.document_id)] = doc
        out = []
        for key, score in fused:
            found = docs.get(key)
            if found is None:  # deleted between search and fetch
                continue
            cand = Candidate.from_document(found, score)
            cand.scores = {f"search_{i}": leg[key] for i, leg in enumerate(per_leg) if key in leg}
            out.append(cand)
        return out

    def _scan(self, ctx: ExecutionContext, targets: list[Collection]) -> list[Candidate]:
        out: list[Candidate] = []
        for collection in targets:
            page = ctx.storage.list_documents(
                collection,
                filter=ctx.search_filter,
                limit=self.params.final_top_k,
                with_vectors=ctx.return_vectors,
            )
            out += [Candidate.from_document(doc, 1.0) for doc in page.documents]
        out.sort(key=rank_key)
        ctx.metadata.update(
            {"searches": [], "mode": "filter_only", "filtered": ctx.search_filter is not None}
        )
        return out[: self.params.final_top_k]

    def _facets(
        self, ctx: ExecutionContext, keys: set[Key], facets: list[FacetConfig]
    ) -> list[dict[str, Any]]:
        by_collection: dict[str, list[str]] = {}
        for col_id, doc_id in keys:
            by_collection.setdefault(col_id, []).append(doc_id)
        views = []
        for col_id, ids in by_collection.items():
            collection = ctx.collection(col_id)
            if collection is not None:
                views += [d.as_dict() for d in ctx.storage.get_documents(collection, ids)]
        results = []
        for facet in facets:
            counts: Counter[tuple[str, Any]] = Counter()
            shown: dict[tuple[str, Any], Any] = {}
            for view in views:
                value = get_path(view, facet.key)
                for v in value if isinstance(value, list) else [value]:
                    if v is MISSING or v is None or isinstance(v, dict):
                        continue
                    bucket = _facet_bucket(v)
                    counts[bucket] += 1
                    # a bucket of 0 and 0.0 shows the integer, whichever document came first
                    if bucket not in shown or (isinstance(v, int) and not isinstance(shown[bucket], int)):
                        shown[bucket] = v
            ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(shown[kv[0]]), kv[0][0]))
            values = [{"value": shown[b], "count": n} for b, n in ordered[: facet.limit]]
            results.append({"key": facet.key, "values": values})
        return results


def _facet_bucket(value: Any) -> tuple[str, Any]:
    """The bucket a facet counts a value in: booleans apart from numbers (``False`` is not ``0``), numbers
    by value (``0`` and ``0.0`` together, as filters compare them), strings apart from both, lists by
    their JSON text."""
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    return ("json", json.dumps(value, sort_keys=True, default=str))


def _merge_stats(info: dict[str, Any], stats: dict[str, Any]) -> None:
    """One search's report over several collections: hnsw if any used it, counts added up."""
    if stats.get("path") == "hnsw":
        info["path"], info["ef_search"] = "hnsw", stats.get("ef_search")
    for key in ("candidates_examined", "pending_scanned"):
        info[key] = info.get(key, 0) + int(stats.get(key, 0))
    if "filter_passes" in stats:
        info["filter_passes"] = info.get("filter_passes", 0) + int(stats["filter_passes"])


def _limit(name: str, requested: int, ceiling: int, stage: str) -> dict[str, Any]:
    return {"name": name, "requested": requested, "applied": ceiling, "ceiling": ceiling, "stage": stage}


def _query_problem(query: SearchQuery, feature: Feature) -> str | None:
    """Why this query can never search this feature (None when it can)."""
    if feature.kind == "bm25" and query.input_mode != "text":
        return f"'{feature.uri}' is a BM25 feature: it takes a text query"
    if query.input_mode == "text" and feature.kind == "dense" and feature.extractor != "text_extractor":
        return f'\'{feature.uri}\' holds your own vectors: send {{"input_mode": "vector", "value": [...]}}'
    vector = query.vector_value() if query.input_mode == "vector" else None
    if vector and feature.dimension is not None and len(vector) != feature.dimension:
        return f"the query vector has {len(vector)} dimensions; '{feature.uri}' has {feature.dimension}"
    return None


def _targets(collections: list[Collection], identifiers: list[str] | None) -> list[Collection]:
    if not identifiers:
        return list(collections)
    wanted = set(identifiers)
    return [c for c in collections if c.collection_id in wanted or c.collection_name in wanted]
